"""The semi-supervised GAN: the real/fake head, the labelled split, a training step, the baseline,
and the CLI on real MNIST."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from gankit.cli import main
from gankit.data.images import uint8_to_unit
from gankit.data.mnist import balanced_subset
from gankit.data.streams import BatchStream, StreamSource
from gankit.errors import ConfigError
from gankit.losses import GAN_LOSSES
from gankit.models.schedules import lr_factor
from gankit.models.sgan import (
    SemiSupervisedGAN,
    SGANConfig,
    random_affine,
    random_shift,
    real_fake_logit,
    real_probability,
)
from gankit.nn.dcgan import MLPDiscriminator, MLPGenerator
from gankit.training.loop import next_batches

TINY = dict(z_dim=8, d_hidden=[32, 16], d_width=4, g_hidden=[16], g_width=4, batch_size=10, labels=20, threads=1)


def tiny_model(**kw) -> SemiSupervisedGAN:
    return SemiSupervisedGAN(SGANConfig(**(TINY | kw)).validate(), torch.device("cpu"))


def tiny_source() -> StreamSource:
    """20 labelled and 20 unlabelled random uint8 "digits", laid out as the model's own source."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=gen)
    return StreamSource("40 random digits", labelled=BatchStream(x[:20], torch.arange(20) % 10, batch_size=10, seed=0),
                        unlabelled=BatchStream(x[20:], batch_size=10, seed=1))  # fmt: skip


def one_step(model: SemiSupervisedGAN, step: int = 1, source: StreamSource | None = None) -> dict:
    """What the loop does for one step: draw ``batches_per_step`` batches, train on them."""
    terms = model.train_step(next_batches(model, source or tiny_source()), step)
    model.precision.update()
    return terms


def test_real_fake_head_is_one_minus_one_over_sum_exp_plus_one():
    logits = torch.randn(64, 10, dtype=torch.float64) * 3
    z = logits.exp().sum(1)
    assert torch.allclose(real_probability(logits), 1 - 1 / (z + 1), atol=1e-12)
    assert torch.allclose(real_fake_logit(logits), z.log(), atol=1e-12)


def test_real_fake_head_is_stable_for_extreme_logits():
    logits = torch.tensor([[1000.0] * 10, [-1000.0] * 10, [1000.0] + [-1000.0] * 9])
    p = real_probability(logits)
    assert torch.isfinite(real_fake_logit(logits)).all()
    assert p[0] == 1 and p[1] == 0 and p[2] == 1
    model = tiny_model()
    loss = model.unsupervised_loss(logits, logits.flip(0))
    assert torch.isfinite(loss)


def test_vanilla_game_is_the_salimans_loss():
    model = tiny_model(gan_loss="vanilla")
    real, fake = torch.randn(16, 10), torch.randn(16, 10)
    lse_r, lse_f = real_fake_logit(real), real_fake_logit(fake)
    # −log D(x) − log(1 − D(G(z))) with D = Z/(Z+1)
    expected = -lse_r.mean() + F.softplus(lse_r).mean() + F.softplus(lse_f).mean()
    assert torch.allclose(model.unsupervised_loss(real, fake), expected, atol=1e-6)


def test_network_shapes():
    d, g = MLPDiscriminator((32, 16)), MLPGenerator(8, (16,))
    x = g(torch.randn(4, 8))
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1
    assert d(x).shape == (4, 10) and d.features(x).shape == (4, 16)
    d.eval()
    assert torch.equal(d(x), d(x))  # no noise in eval mode
    d.train()
    assert not torch.equal(d(x), d(x))


def test_labelled_subset_is_balanced_and_seeded():
    labels = torch.arange(1000) % 10
    a, b = balanced_subset(labels, 100, 0), balanced_subset(labels, 100, 1)
    assert len(a) == 100 and torch.bincount(labels[a]).tolist() == [10] * 10
    assert not torch.equal(a, b) and torch.equal(a, balanced_subset(labels, 100, 0))
    with pytest.raises(ConfigError, match="labels"):
        SGANConfig(labels=55).validate()


@pytest.mark.parametrize("game", GAN_LOSSES)
@pytest.mark.parametrize("generator_loss", ["feature-matching", "adversarial"])
@pytest.mark.parametrize("generator", ["mlp", "dcgan"])
def test_one_step_changes_both_networks(game, generator_loss, generator):
    model = tiny_model(gan_loss=game, generator_loss=generator_loss, generator=generator)
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in model.networks().items()}
    terms = one_step(model, 1)
    assert {"D", "D_sup", "D_unsup", "G"} <= set(terms)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in terms.values())
    for name, net in model.networks().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), name
    assert all(p.requires_grad for p in model.D.parameters())


def test_dcgan_generator_option():
    model = tiny_model(generator="dcgan", g_width=4)
    assert model.G(torch.randn(3, 8)).shape == (3, 1, 28, 28)
    before = [p.detach().clone() for p in model.G.parameters()]
    one_step(model, 1)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.G.parameters()))


@pytest.mark.parametrize("discriminator", ["conv", "mlp"])
def test_discriminator_options(discriminator):
    model = tiny_model(discriminator=discriminator)
    assert model.D(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    before = [p.detach().clone() for p in model.D.parameters()]
    one_step(model, 1)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.D.parameters()))
    assert isinstance(model.make_classifier(), type(model.D))  # the baseline uses the same network


def test_random_shift_translates_each_image_within_the_limit():
    x = torch.full((64, 1, 28, 28), -1.0)
    x[:, :, 10:18, 10:18] = 1.0  # an 8 × 8 square in the middle
    torch.manual_seed(0)
    y = random_shift(x, 2)
    assert y.shape == x.shape and torch.equal(random_shift(x, 0), x)
    assert ((y == 1).sum((1, 2, 3)) == 64).all()  # moved, not cropped: the square stays whole
    rows = (y[:, 0] == 1).any(2).float().argmax(1) - 10
    cols = (y[:, 0] == 1).any(1).float().argmax(1) - 10
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) > 10  # per-image shifts


def test_random_affine_rotates_and_scales_each_image_about_its_centre():
    x = torch.full((32, 1, 28, 28), -1.0)
    x[:, :, 6:22, 13:15] = 1.0  # a vertical bar through the centre
    assert torch.equal(random_affine(x, 0, 0), x)
    torch.manual_seed(0)
    y = random_affine(x, 40, 0.0)
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    assert y[:, 0, 13:15, 13:15].min() > 0.5  # the centre stays put
    ink = (y > 0).float()
    tilt = (ink[:, 0, 6:10].sum(1) * torch.arange(28)).sum(1) / ink[:, 0, 6:10].sum((1, 2))
    assert tilt.std() > 1  # per-image angles move the bar's top left and right
    grown = random_affine(x, 0, 0.3)
    assert not torch.equal((grown > 0).sum((1, 2, 3)), (x > 0).sum((1, 2, 3)))
    with pytest.raises(ConfigError):
        SGANConfig(augment_scale=1.0).validate()


def test_weight_average_tracks_the_discriminator_and_is_evaluated():
    model = tiny_model(ema=0.5)
    assert set(model.networks()) == {"G", "D", "D_ema"} and model.classifier is model.D_ema
    assert not any(p.requires_grad for p in model.D_ema.parameters())
    before = [p.detach().clone() for p in model.D_ema.parameters()]
    source = tiny_source()
    one_step(model, 1, source)
    one_step(model, 2, source)
    for old, avg, cur in zip(before, model.D_ema.parameters(), model.D.parameters()):
        assert not torch.equal(avg, old) and not torch.equal(avg, cur)
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    expected = model.D_ema.eval()(uint8_to_unit(x)).argmax(1)
    assert torch.equal(model.classify(x), expected)
    # a model saved without the average loads its raw D as the average
    weights = {k: v for k, v in model.weights().items() if not k.startswith("D_ema.")}
    fresh = tiny_model(ema=0.5)
    fresh.load_weights(weights, "test")
    for a, b in zip(fresh.D_ema.parameters(), model.D.parameters()):
        assert torch.equal(a, b)
    assert tiny_model(ema=0).classifier is not None and "D_ema" not in tiny_model(ema=0).networks()


def test_learning_rate_decays_linearly_to_zero_at_the_end():
    model = tiny_model(lr=1e-3, steps=10, lr_decay=0.5)
    assert model.set_learning_rate(5) == 1.0 and model.optimizers()["D"].param_groups[0]["lr"] == 1e-3
    factors = [model.set_learning_rate(s) for s in range(6, 11)]
    # the shared schedule, on 0-based steps: constant for the first half, then linear towards 0
    assert factors == [lr_factor(s - 1, 10, "linear", decay_start=0.5) for s in range(6, 11)]
    assert factors == sorted(factors, reverse=True) and len(set(factors)) == len(factors) and factors[-1] > 0
    drops = [a - b for a, b in itertools.pairwise(factors)]
    assert drops == pytest.approx([drops[0]] * len(drops))  # linear ...
    assert factors[-1] - drops[0] == pytest.approx(0, abs=1e-12)  # ... reaching 0 just after the last step
    assert model.optimizers()["G"].param_groups[0]["lr"] == 1e-3 * factors[-1]
    assert model.optimizers()["D"].param_groups[0]["lr"] == 1e-3 * factors[-1]
    assert tiny_model(steps=10, lr_decay=0).set_learning_rate(10) == 1.0
    with pytest.raises(ConfigError, match="lr-decay"):
        SGANConfig(lr_decay=1.5).validate()
    with pytest.raises(ConfigError, match="ema"):
        SGANConfig(ema=1.0).validate()


def test_consistency_weight_ramps_up_then_holds():
    model = tiny_model(consistency=10.0, consistency_rampup=0.5, steps=100)
    weights = [model.consistency_weight(s) for s in range(0, 101, 10)]
    assert weights[0] == pytest.approx(10 * torch.e**-5) and weights[5:] == [10.0] * 6
    assert weights[:6] == sorted(weights[:6])
    assert tiny_model(consistency=3.0, consistency_rampup=0.0).consistency_weight(0) == 3.0
    with pytest.raises(ConfigError):
        SGANConfig(consistency=-1).validate()


def test_consistency_loss_compares_student_with_the_averaged_teacher():
    model = tiny_model(consistency=1.0, consistency_kind="mse", input_noise=0.0, dropout=0.0, ema=0.5)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        model.D_ema.load_state_dict(model.D.state_dict())
    logits = model.D(x)
    assert model.consistency_loss(logits, x).item() == pytest.approx(0.0, abs=1e-12)
    shifted = torch.roll(x, 3, dims=3)
    loss = model.consistency_loss(logits, shifted)
    expected = F.mse_loss(F.softmax(logits, 1), F.softmax(model.D_ema(shifted), 1))
    assert loss.item() == pytest.approx(expected.item()) and loss.item() > 0
    loss.backward()  # the gradient reaches the student only
    assert model.D.head.weight.grad is not None and model.D_ema.head.weight.grad is None
    terms = one_step(tiny_model(consistency=1.0), 1)
    assert "D_cons" in terms and torch.isfinite(terms["D_cons"])
    assert "D_cons" not in one_step(tiny_model(consistency=0.0), 1)


def test_pseudo_label_consistency_counts_only_sure_teacher_digits():
    model = tiny_model(consistency_kind="pseudo-label", confidence=0.0, input_noise=0.0, dropout=0.0)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    logits = model.D(x)
    teacher = model.classifier(x).argmax(1)
    torch.testing.assert_close(model.consistency_loss(logits, x), F.cross_entropy(logits, teacher))
    model.config.confidence = 1.0  # no softmax output reaches 1 here: nothing is sure
    assert model.consistency_loss(logits, x).item() == 0.0


def test_sampling():
    model = tiny_model().eval()
    assert model.sample(n=16).size[0] > 0 and model.sample(n=8, interpolate=True).size[0] > 0
    with pytest.raises(ConfigError):
        model.sample(n=4, label=3)


def test_labelled_split_on_real_mnist(shared_data):
    config = SGANConfig(**(TINY | dict(labels=100, label_seed=5, data_root=str(shared_data)))).validate()
    model = SemiSupervisedGAN(config, torch.device("cpu"))
    x_lab, y_lab, _, x_unl = model.labelled_data(str(shared_data))
    assert len(x_lab) == 100 and torch.bincount(y_lab).tolist() == [10] * 10
    assert len(x_unl) == 60000 - 100
    source = model.training_data()  # the same split, from config.data_root
    assert "100 labelled" in source.description and set(source.streams) == {"labelled", "unlabelled"}
    labelled, unlabelled = source.streams["labelled"].tensors, source.streams["unlabelled"].tensors
    assert torch.equal(labelled[1], y_lab) and len(unlabelled[0]) == len(x_unl)
    assert one_step(model, 1, source)["D_sup"] > 0


def test_cli_train_sample_eval_on_real_mnist(shared_data, tmp_path, eval_digit_run):
    run, ev = tmp_path / "run", tmp_path / "eval"
    argv = [
        "train",
        "sgan",
        "--dataset",
        "mnist",
        "--data-root",
        str(shared_data),
        "--out",
        str(run),
        "--steps",
        "3",
        "--seed",
        "1",
        "--labels",
        "100",
        "--batch-size",
        "20",
        "--d-width",
        "4",
        "--g-hidden",
        "16",
        "--g-width",
        "4",
        "--baseline-steps",
        "3",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert main(["sample", str(run), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    metrics = eval_digit_run(run, ev)
    for key in ("test_accuracy", "supervised_baseline_accuracy", "fid_cls"):
        assert key in metrics
    assert 0 <= metrics["test_accuracy"] <= 1 and 0 <= metrics["supervised_baseline_accuracy"] <= 1


def test_resume_reproduces_an_uninterrupted_run(shared_data, tmp_path):
    from gankit.models.persist import load_model
    from gankit.training.loop import resume, train

    # lr_decay follows --steps, which differs between the two runs here (2, then 4): keep the lr constant
    cfg = dict(TINY, data_root=str(shared_data), checkpoint_every=2, log_every=1, sample_every=100, lr_decay=0)
    quiet = dict(progress=False, log=lambda *_: None)
    straight = train(SGANConfig(**cfg, steps=4, out=str(tmp_path / "a")).validate(), **quiet)
    train(SGANConfig(**cfg, steps=2, out=str(tmp_path / "b")).validate(), **quiet)
    resumed = resume(tmp_path / "b", steps=4, **quiet)
    assert straight.step == resumed.step == 4
    assert straight.losses == resumed.losses
    a, b = load_model(tmp_path / "a", device="cpu"), load_model(tmp_path / "b", device="cpu")
    for k, v in a.weights().items():
        assert torch.equal(v, b.weights()[k]), k
