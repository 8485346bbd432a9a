"""CyCADA's semantic-consistency loss on CycleGAN (``--semantic-loss``)."""

import math
import re

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.models.semantic import (
    SemanticConsistency,
    build_semantic_consistency,
    load_semantic_state,
    match_channels,
    random_recolour,
    random_reshape,
    semantic_state,
    train_task_classifier,
)
from gankit.nn.classifiers import LeNet


class FixedLogits(nn.Module):
    """A 'classifier' of 1-channel images whose logits are the image's first three pixels (a hand case)."""

    in_channels = 1

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * x.flatten(1)[:, :3]


def test_semantic_loss_equals_a_hand_computed_cross_entropy():
    f = FixedLogits()
    sem = SemanticConsistency("a", {"a": f})
    source = torch.tensor([[0.0, 2.0, 1.0, 9.0], [3.0, 0.0, 0.0, 9.0]]).view(2, 1, 2, 2)  # labels 1 and 0
    translated = torch.tensor([[1.0, 0.0, 0.0, 5.0], [0.0, 0.0, 2.0, 5.0]]).view(2, 1, 2, 2)

    def ce(logits, label):
        return -logits[label] + math.log(sum(math.exp(v) for v in logits))

    expected = (ce([1.0, 0.0, 0.0], 1) + ce([0.0, 0.0, 2.0], 0)) / 2
    assert sem.loss("a2b", translated, source).item() == pytest.approx(expected, rel=1e-6)


def test_the_frozen_classifier_gets_no_gradient_but_the_translation_does():
    f = LeNet(1)
    sem = SemanticConsistency("both", {"a": f, "b": LeNet(1)})
    sem.train()
    assert not sem.training and not f.training  # dropout stays off
    translated = torch.randn(4, 1, 32, 32, requires_grad=True)
    sem.loss("a2b", translated, torch.randn(4, 1, 32, 32)).backward()
    assert translated.grad is not None and translated.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in sem.parameters())


def test_the_b2a_term_takes_its_own_weight_when_given():
    from dataclasses import replace

    from gankit.models.cyclegan import CycleGANConfig, semantic_terms

    sem = SemanticConsistency("both", {"a": LeNet(1), "b": LeNet(1)})
    gen = torch.Generator().manual_seed(0)
    images = [torch.randn(3, 1, 32, 32, generator=gen) for _ in range(4)]
    config = CycleGANConfig(semantic_loss=True, lambda_sem=2.0)
    terms, both = semantic_terms(sem, config, *images)
    a2b, b2a = terms["sem_a2b"].item(), terms["sem_b2a"].item()
    assert a2b > 0 and b2a > 0 and both.item() == pytest.approx(2.0 * (a2b + b2a), rel=1e-6)
    _, split = semantic_terms(sem, replace(config, lambda_sem_b2a=0.5), *images)
    assert split.item() == pytest.approx(2.0 * a2b + 0.5 * b2a, rel=1e-6)
    with pytest.raises(ConfigError, match="--lambda-sem-b2a"):
        replace(config, lambda_sem_b2a=-1.0).validate()


def test_each_direction_reads_its_own_source_classifier_under_both():
    a, b = LeNet(1), LeNet(1)
    both, only_a = SemanticConsistency("both", {"a": a, "b": b}), SemanticConsistency("a", {"a": a})
    assert both.classifier_for("a2b") is a and both.classifier_for("b2a") is b
    assert only_a.classifier_for("a2b") is a and only_a.classifier_for("b2a") is a


def test_match_channels_turns_colour_into_luma_and_gray_into_colour():
    rgb = torch.tensor([1.0, -1.0, 0.5]).view(1, 3, 1, 1)
    assert match_channels(rgb, 1).item() == pytest.approx(0.299 - 0.587 + 0.5 * 0.114)
    gray = torch.full((1, 1, 2, 2), 0.25)
    assert torch.equal(match_channels(gray, 3), gray.expand(1, 3, 2, 2))
    assert match_channels(rgb, 3) is rgb


def test_the_task_classifier_learns_real_digits_from_source_labels_only(shared_data):
    from gankit.data.recipes import load_recipe

    train, test = load_recipe("mnist-usps", shared_data, "train"), load_recipe("mnist-usps", shared_data, "test")
    model, held_out = train_task_classifier(train.source_b, test.source_b, 1, 32, seed=5, steps=150)
    assert held_out > 0.7  # USPS digits after 150 steps; chance is 0.1
    assert all(not p.requires_grad for p in model.parameters())
    state = semantic_state(SemanticConsistency("b", {"b": model}))
    again = load_semantic_state("b", state, torch.device("cpu"))
    x = torch.randn(3, 1, 32, 32)
    assert torch.equal(again.classifier_for("a2b")(x), model(x))


def test_the_task_classifier_depends_on_its_seed_not_on_the_global_random_state():
    import numpy as np

    from gankit.data.sources import ArraySource

    rng = np.random.default_rng(0)
    digits = ArraySource(rng.integers(0, 256, (20, 32, 32), dtype=np.uint8), 1, labels=list(range(10)) * 2)
    torch.manual_seed(1)
    first, _ = train_task_classifier(digits, None, 1, 32, seed=3, steps=3)
    torch.rand(7)  # another global state
    again, _ = train_task_classifier(digits, None, 1, 32, seed=3, steps=3)
    other, _ = train_task_classifier(digits, None, 1, 32, seed=4, steps=3)
    state = torch.get_rng_state()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in first.state_dict().items())
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is left alone


def test_random_recolour_keeps_the_digit_and_varies_the_colours():
    gray = torch.full((64, 1, 32, 32), -1.0)
    gray[:, :, 8:24, 14:18] = 1  # a "1"
    out = random_recolour(gray, torch.Generator().manual_seed(0))
    assert out.shape == (64, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, random_recolour(gray, torch.Generator().manual_seed(0)))  # seeded
    stroke, ground = out[:, :, 8:24, 14:18].mean((2, 3)), out[:, :, :, :8].mean((2, 3))
    assert ((stroke - ground).abs().amax(1) > 0.3).all()  # the stroke still stands out in some channel
    assert (out.std(1).mean((1, 2)) > 0.05).sum() > 8  # many images are coloured, not gray
    assert (stroke.mean(1) < ground.mean(1)).sum() > 8  # some are dark digits on light grounds


def test_random_reshape_warps_and_changes_stroke_width_on_a_dark_ground():
    gray = torch.full((256, 1, 32, 32), -1.0)
    gray[:, :, 8:24, 13:19] = 1  # a thick "1"
    out = random_reshape(gray, torch.Generator().manual_seed(0))
    assert out.shape == gray.shape and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, random_reshape(gray, torch.Generator().manual_seed(0)))  # seeded
    assert torch.equal(out[:, :, :2, :2], gray[:, :, :2, :2])  # the corners stay background
    ink = (out + 1).sum((1, 2, 3)) / (gray + 1).sum((1, 2, 3))
    assert (ink > 1.4).sum() > 20 and (ink < 0.7).sum() > 20  # some grow (scale, dilation), some shrink
    rows = (out > 0).any(3).sum((1, 2)).float()  # the stroke's height in pixels, 16 before
    assert rows.min() < 14 and rows.max() > 20


def test_a_reshaped_classifier_trains_and_is_logged_as_such(shared_data):
    from gankit.data.recipes import load_recipe

    train, test = load_recipe("mnist-usps", shared_data, "train"), load_recipe("mnist-usps", shared_data, "test")
    messages = []
    sem = build_semantic_consistency("b", {"a": (train.source_a, None, 1), "b": (train.source_b, test.source_b, 1)},
                                     32, seed=5, steps=150, reshape=True, log=messages.append)  # fmt: skip
    assert "reshaped" in messages[0]
    held_out = float(re.search(r"([\d.]+)% on its held-out split", messages[1]).group(1)) / 100
    assert held_out > 0.6 and sem.classifiers["b"].in_channels == 1


def test_a_recoloured_classifier_reads_colour_and_still_reads_its_gray_source(shared_data):
    from gankit.data.recipes import load_recipe
    from gankit.errors import DataError

    train, test = load_recipe("mnist-usps", shared_data, "train"), load_recipe("mnist-usps", shared_data, "test")
    model, held_out = train_task_classifier(train.source_b, test.source_b, 1, 32, seed=5, steps=150, recolour=True)
    assert model.in_channels == 3 and held_out > 0.5
    again = load_semantic_state("a", semantic_state(SemanticConsistency("a", {"a": model})), torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(again.classifier_for("a2b")(x), model(x))
    with pytest.raises(DataError, match=re.escape(f"{train.source_b.description}: recolouring needs gray")):
        train_task_classifier(train.source_b, None, 3, 32, seed=5, steps=1, recolour=True)


def test_recolour_applies_to_gray_sources_whose_other_domain_is_in_colour():
    import numpy as np

    from gankit.data.sources import ArraySource

    rng = np.random.default_rng(0)
    gray = ArraySource(rng.integers(0, 256, (20, 32, 32), dtype=np.uint8), 1, labels=list(range(10)) * 2)
    colour = ArraySource(rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), 3, labels=list(range(10)) * 2)
    quiet = dict(seed=0, steps=2, recolour=True, log=lambda msg: None)
    mixed = build_semantic_consistency("both", {"a": (gray, None, 1), "b": (colour, None, 3)}, 32, **quiet)
    assert mixed.classifiers["a"].in_channels == 3 and mixed.classifiers["b"].in_channels == 3
    both_gray = build_semantic_consistency("a", {"a": (gray, None, 1), "b": (gray, None, 1)}, 32, **quiet)
    assert both_gray.classifiers["a"].in_channels == 1


def _semantic_model(shared_data, **fields):
    from gankit.models.cyclegan import CycleGANModel, cyclegan_config

    fields = {"semantic_reader": "source"} | fields  # the source classifiers alone unless a test asks for readers
    config = cyclegan_config(dataset="mnist-usps", data_root=str(shared_data), blocks=1, ngf=8, ndf=8, workers=0,
                             semantic_loss=True, semantic_steps=5, **fields)  # fmt: skip
    return CycleGANModel(config, torch.device("cpu"))


def test_the_classifier_is_state_of_the_run_not_a_trainable_network(shared_data):
    model = _semantic_model(shared_data, semantic_source="b")  # USPS only: 7,291 digits load fast
    source = model.training_data()
    model.prepare(log=lambda msg: None)
    assert set(model.networks()) == {"g_ab", "g_ba", "d_a", "d_b"}
    optimized = {id(p) for opt in model.optimizers().values() for g in opt.param_groups for p in g["params"]}
    assert not optimized & {id(p) for p in model.semantic.parameters()}
    state = model.extra_state()["semantic"]
    assert set(k.split(".")[1] for k in state) == {"b"}
    assert model.labels_seen_in_training == {"b"}  # eval flags b2a's reverse, a2b, as not label-free
    batch = source.next()
    terms = model.train_step([batch], 1)
    assert {"sem_a2b", "sem_b2a"} <= set(terms) and all(torch.isfinite(terms[k]) for k in ("sem_a2b", "sem_b2a"))
    restored = _semantic_model(shared_data, semantic_source="b")
    restored.load_extra_state(model.extra_state())
    restored.prepare(log=lambda msg: pytest.fail(f"trained again after a restore: {msg}"))
    assert all(torch.equal(v, restored.semantic.state_dict()[k]) for k, v in model.semantic.state_dict().items())


def test_semantic_reshape_flows_from_the_config_to_the_classifier(shared_data):
    model = _semantic_model(shared_data, semantic_source="b", semantic_reshape=True)
    model.training_data()
    messages = []
    model.prepare(log=messages.append)
    assert "reshaped" in messages[0] and "(digits reshaped)" in model.describe()["semantic loss"]


def test_semantic_loss_on_unlabelled_data_is_refused_naming_the_flag(tmp_path):
    from PIL import Image

    from gankit.models.cyclegan import CycleGANModel, cyclegan_config

    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        for i in range(2):
            Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(tmp_path / d / f"{i}.png")
    config = cyclegan_config(domain_a=[str(tmp_path / "a")], domain_b=[str(tmp_path / "b")], blocks=1, ngf=8,
                             ndf=8, workers=0, size=32, semantic_loss=True)  # fmt: skip
    model = CycleGANModel(config, torch.device("cpu"))
    model.training_data()
    said = []
    with pytest.raises(ConfigError, match="--semantic-loss: .*no labels") as refused:
        model.prepare(log=said.append)
    assert str(tmp_path / "a") in str(refused.value)  # names the unlabelled folder
    assert not any("labelled images" in line for line in said), said  # refused before any classifier trains


class ReversedLogits(FixedLogits):
    """A second hand-case 'classifier': the first three pixels in reverse order."""

    def forward(self, x):
        return self.scale * x.flatten(1)[:, :3].flip(1)


def test_target_readers_judge_the_translations_and_the_source_classifier_labels_the_sources():
    source_reader, target_reader = FixedLogits(), ReversedLogits()
    sem = SemanticConsistency("a", {"a": source_reader, "b_from_a": target_reader})
    source = torch.tensor([[0.0, 2.0, 1.0, 9.0], [3.0, 0.0, 0.0, 9.0]]).view(2, 1, 2, 2)  # A labels 1 and 0
    translated = torch.tensor([[1.0, 0.0, 0.0, 5.0], [0.0, 0.0, 2.0, 5.0]]).view(2, 1, 2, 2)  # read reversed

    def ce(logits, label):
        return -logits[label] + math.log(sum(math.exp(v) for v in logits))

    expected = (ce([0.0, 0.0, 1.0], 1) + ce([2.0, 0.0, 0.0], 0)) / 2
    assert sem.loss("a2b", translated, source).item() == pytest.approx(expected, rel=1e-6)
    # B → A with A's labels only: B's reader labels the real B image, A's classifier reads its translation
    assert sem.label_reader("b2a") is target_reader and sem.classifier_for("b2a") is source_reader
    expected_b2a = (ce([1.0, 0.0, 0.0], 1) + ce([0.0, 0.0, 2.0], 2)) / 2  # B labels by the reversed reader: 1 and 2
    assert sem.loss("b2a", translated, source).item() == pytest.approx(expected_b2a, rel=1e-6)
    a, b, b_from_a, a_from_b = LeNet(1), LeNet(1), LeNet(1), LeNet(1)
    both = SemanticConsistency("both", {"a": a, "b": b, "b_from_a": b_from_a, "a_from_b": a_from_b})
    assert (both.label_reader("a2b"), both.classifier_for("a2b")) == (a, b_from_a)
    assert (both.label_reader("b2a"), both.classifier_for("b2a")) == (b, a_from_b)


def test_a_target_reader_learns_the_other_handwriting_without_its_labels(shared_data):
    from gankit.data.recipes import load_recipe
    from gankit.data.sources import SubsetSource
    from gankit.models.semantic import accuracy, images_tensor, source_tensor, train_target_reader

    train, test = load_recipe("mnist-usps", shared_data, "train"), load_recipe("mnist-usps", shared_data, "test")
    usps, usps_labels = source_tensor(SubsetSource(train.source_b, range(2000)), 32)
    mnist = images_tensor(SubsetSource(train.source_a, range(2000)), 32)
    reader, kept = train_target_reader(usps, usps_labels, mnist, seed=3, steps=150)
    assert reader.in_channels == 1 and 0 < kept <= 1
    assert all(not p.requires_grad for p in reader.parameters()) and not reader.training
    mnist_test, mnist_test_labels = source_tensor(SubsetSource(test.source_a, range(1000)), 32)
    source_only, _ = train_task_classifier(SubsetSource(train.source_b, range(2000)), None, 1, 32, seed=3, steps=150)
    read, read_by_source = (accuracy(m, mnist_test, mnist_test_labels) for m in (reader, source_only))
    assert read > 0.6 and read > read_by_source + 0.05, (read, read_by_source)  # 0.65 against 0.55 when written


def test_target_readers_are_saved_and_restored_with_their_channels():
    import numpy as np

    from gankit.data.sources import ArraySource

    rng = np.random.default_rng(0)
    gray = ArraySource(rng.integers(0, 256, (40, 32, 32), dtype=np.uint8), 1, labels=list(range(10)) * 4)
    colour = ArraySource(rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), 3)  # unlabelled target
    messages = []
    sem = build_semantic_consistency("a", {"a": (gray, None, 1), "b": (colour, None, 3)}, 32, seed=0, steps=2,
                                     target_readers=True, log=messages.append)  # fmt: skip
    assert set(sem.classifiers) == {"a", "b_from_a"} and sem.classifiers["b_from_a"].in_channels == 3
    assert any("reader of domain B from domain A's labels" in m for m in messages)
    again = load_semantic_state("a", semantic_state(sem), torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(again.classifier_for("a2b")(x), sem.classifier_for("a2b")(x))
    assert again.label_reader("b2a") is again.classifiers["b_from_a"]


def test_semantic_reader_flows_from_the_config_and_is_the_target_where_channels_match(shared_data):
    from gankit.models.cyclegan import CycleGANConfig

    assert CycleGANConfig(channels_a=1, channels_b=1).target_readers  # the default, auto: MNIST ↔ USPS
    assert not CycleGANConfig(channels_a=1, channels_b=3).target_readers  # MNIST ↔ MNIST-M: source readers
    assert CycleGANConfig(channels_a=1, channels_b=3, semantic_reader="target").target_readers
    model = _semantic_model(shared_data, semantic_source="b", semantic_reader="target")
    model.training_data()
    messages = []
    model.prepare(log=messages.append)
    assert set(model.semantic.classifiers) == {"b", "a_from_b"} and model.labels_seen_in_training == {"b"}
    assert "target domain" in model.describe()["semantic loss"]
    assert set(k.split(".")[1] for k in model.extra_state()["semantic"]) == {"b", "a_from_b"}
    restored = _semantic_model(shared_data, semantic_source="b", semantic_reader="target")
    restored.load_extra_state(model.extra_state())
    restored.prepare(log=lambda msg: pytest.fail(f"trained again after a restore: {msg}"))
    assert restored.semantic.classifier_for("b2a") is restored.semantic.classifiers["a_from_b"]
    assert all(torch.equal(v, restored.semantic.state_dict()[k]) for k, v in model.semantic.state_dict().items())


def test_runs_saved_before_the_target_readers_keep_their_source_readers():
    from gankit.models.cyclegan import CycleGANConfig
    from gankit.models.persist import make_config

    before = {"semantic_loss": True, "dataset": "mnist-usps"}  # what a run saved before the option held
    assert make_config("cyclegan", before, "old/config.yaml").semantic_reader == "source"
    since = CycleGANConfig(semantic_loss=True).to_dict()
    assert make_config("cyclegan", since, "new/config.yaml").semantic_reader == "auto"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on CI)")
@pytest.mark.parametrize("options", [{}, {"reshape": True}, {"recolour": True}])
def test_classifiers_train_on_the_gpu_and_leave_its_random_stream_alone(shared_data, options):
    """A GPU run trains its classifiers and readers on the GPU (the CPU would be its slowest part)."""
    from gankit.data.recipes import load_recipe
    from gankit.data.sources import SubsetSource
    from gankit.models.semantic import images_tensor, source_tensor, train_target_reader

    train, test = load_recipe("mnist-usps", shared_data, "train"), load_recipe("mnist-usps", shared_data, "test")
    usps = SubsetSource(train.source_b, range(2000))
    state = torch.cuda.get_rng_state()
    model, held_out = train_task_classifier(usps, test.source_b, 1, 32, seed=5, steps=150, device="cuda", **options)
    assert next(model.parameters()).is_cuda and held_out > 0.7
    assert torch.equal(torch.cuda.get_rng_state(), state)
    images, labels = source_tensor(usps, 32)
    mnist = images_tensor(SubsetSource(train.source_a, range(2000)), 32).cuda()
    reader, kept = train_target_reader(images, labels, mnist, seed=3, steps=150)
    assert next(reader.parameters()).is_cuda and 0 < kept <= 1
