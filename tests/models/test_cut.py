"""CUT and FastCUT: PatchNCE against a hand computation, where its gradients go, flip equivariance,
the model contract (CLI training, translate, export, one-sided errors) and what the config refuses.
Exact resume and preemption of both kinds run with every other kind in tests/training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gankit.cli import main
from gankit.errors import ConfigError
from gankit.losses import patch_nce_loss
from gankit.models.cut import CUTConfig, CUTModel, FastCUTConfig, FastCUTModel, flip_where
from gankit.nn.contrastive import PatchProjector

TINY = dict(channels_a=3, channels_b=3, size=32, ngf=4, ndf=4, blocks=2, nce_layers=["input", "down1", "block2"],
            nce_patches=8, nce_dim=8, device="cpu", conv_algorithms="plain")  # fmt: skip


def tiny(model_class=CUTModel, **fields) -> CUTModel:
    torch.manual_seed(0)
    config = dataclasses.replace(model_class.config_class(), **{**TINY, **fields}).validate()
    return model_class(config, torch.device("cpu"))


def test_patch_nce_matches_a_hand_computation():
    """Two patches of one image, unit features: each row's logits are [q·k⁺, q·k⁻ (own key masked
    with −10)] / τ, and the loss is the cross-entropy of picking the positive."""
    q = torch.tensor([[[0.6, 0.8], [1.0, 0.0]]])
    k = torch.tensor([[[0.0, 1.0], [0.8, 0.6]]])
    tau = 0.5

    def row(pos: float, neg: float) -> float:
        logits = [pos / tau, -10 / tau, neg / tau]  # positive, own key (masked), the other key
        return -logits[0] + math.log(sum(math.exp(x) for x in logits))

    first = row(0.6 * 0.0 + 0.8 * 1.0, 0.6 * 0.8 + 0.8 * 0.6)
    second = row(1.0 * 0.8 + 0.0 * 0.6, 1.0 * 0.0 + 0.0 * 1.0)
    got = patch_nce_loss(q, k, tau)
    assert got.shape == (1,)
    assert got.item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_patch_nce_negatives_come_from_the_same_image_only():
    """A second image in the batch changes nothing about the first image's loss."""
    torch.manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(2, 5, 4), dim=2)
    k = torch.nn.functional.normalize(torch.randn(2, 5, 4), dim=2)
    both = patch_nce_loss(q, k)
    assert torch.allclose(both[0], patch_nce_loss(q[:1], k[:1])[0])
    assert torch.allclose(both[1], patch_nce_loss(q[1:], k[1:])[0])


def test_patch_nce_gradient_reaches_the_generator_and_every_head_but_not_through_the_keys():
    model = tiny(lambda_gan=0.0)
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    forward = model.forward_batch(a, b)
    assert all(not k.requires_grad for k in forward.keys)
    loss, terms = model.generator_loss(forward)
    loss.backward()
    assert terms["NCE"] > 0 and terms["NCE_idt"] > 0
    for name, net in (("g", model.g), ("heads", model.heads)):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), f"{name} has parameters without gradient"
    assert all(p.grad is None or not p.grad.any() for p in model.d.parameters())  # λ_GAN = 0: NCE only


def test_the_keys_are_the_features_of_the_generator_pass_when_nothing_is_flipped():
    model = tiny()
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    forward = model.forward_batch(a, b)
    _, again = model.g.forward_with_taps(torch.cat([a, b]), model.config.nce_layers, encode_only=True)
    assert not forward.flipped.any()
    for k, k2 in zip(forward.keys, again):
        assert torch.equal(k, k2)
    assert torch.allclose(forward.fake, model.g(torch.cat([a, b])), atol=1e-6)


def test_flip_equivariance_translates_flipped_inputs_and_takes_keys_from_the_unflipped_ones():
    model = tiny(FastCUTModel)
    torch.manual_seed(5)
    a, b = torch.rand(8, 3, 32, 32) * 2 - 1, torch.rand(8, 3, 32, 32) * 2 - 1
    forward = model.forward_batch(a, b)
    assert 0 < forward.flipped.sum() < 8 and forward.fake.shape[0] == 8  # FastCUT: no identity pass
    with torch.no_grad():
        _, keys = model.g.forward_with_taps(a, model.config.nce_layers, encode_only=True)
        expected = model.g(flip_where(a, forward.flipped))
    for k, k2 in zip(forward.keys, keys):
        assert torch.allclose(k, k2, atol=1e-6)
    assert torch.allclose(forward.fake, expected, atol=1e-6)


def test_flip_where_flips_only_the_selected_images():
    x = torch.arange(2 * 1 * 1 * 3, dtype=torch.float32).view(2, 1, 1, 3)
    y = flip_where(x, torch.tensor([True, False]))
    assert y[0].flatten().tolist() == [2, 1, 0] and torch.equal(y[1], x[1])


def test_patch_positions_are_distinct_per_image_and_differ_between_images():
    feats = [torch.randn(3, 2, 4, 4)]
    (ids,) = PatchProjector.sample_positions(feats, 6, lambda n, m: torch.rand(n, m))
    assert ids.shape == (3, 6)
    assert all(len(set(row.tolist())) == 6 for row in ids)
    (few,) = PatchProjector.sample_positions(feats, 100, lambda n, m: torch.rand(n, m))
    assert few.shape == (3, 16)  # no more patches than positions


def test_fixed_blur_filters_are_neither_trained_nor_saved():
    model = tiny()
    assert not any("down.4" in k and "weight" in k for k in model.g.state_dict())  # the first blur
    trained = {id(p) for group in model.optimizers()["G"].param_groups for p in group["params"]}
    blurs = [m for m in model.g.modules() if type(m).__name__.startswith("FixedDepthwise")]
    assert len(blurs) == 4 and all(id(m.weight) not in trained for m in blurs)
    assert torch.allclose(blurs[0].weight[0, 0].sum(), torch.tensor(1.0))


def test_defaults_follow_the_paper():
    cut, fast = CUTConfig(), FastCUTConfig()
    assert (cut.lambda_nce, cut.nce_idt, cut.flip_equivariance) == (1.0, True, False)
    assert (fast.lambda_nce, fast.nce_idt, fast.flip_equivariance) == (10.0, False, True)
    assert cut.nce_layers == ["input", "down1", "down2", "block1", "block5"]
    assert (cut.nce_patches, cut.nce_dim, cut.nce_temperature, cut.gan_loss) == (256, 256, 0.07, "lsgan")
    assert cut.antialias and fast.antialias and not hasattr(cut, "pool_size")  # no history pool


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(nce_layers=["block7"]), "--nce-layers 'block7': expected taps of a 2-block generator"),
        (dict(generator="unet", antialias=False), "--generator 'unet': CUT compares resnet generator features"),
        (dict(channels_b=1), "cut needs domains with equal channels"),
    ],
)
def test_the_config_refuses_what_cut_cannot_do(fields, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        tiny(**fields)


@pytest.mark.parametrize("kind", ["cut", "fastcut"])
def test_train_translate_and_export_through_the_cli(shared_data, tmp_path, capsys, kind):
    run = tmp_path / kind
    args = ["train", kind, "--dataset", "apple2orange", "--data-root", str(shared_data), "--size", "32", "--load-size",
            "36", "--blocks", "2", "--ngf", "4", "--ndf", "4", "--nce-layers", "input", "down2", "block2",
            "--nce-patches", "16", "--nce-dim", "8", "--steps", "2", "--log-every", "1", "--no-progress",
            "--out", str(run)]  # fmt: skip
    assert main(args) == 0
    lines = (run / "losses.csv").read_text().splitlines()
    assert "NCE" in lines[0] and len(lines) == 3
    assert ("NCE_idt" in lines[0]) == (kind == "cut")
    image = next((shared_data / "apple2orange" / "testA").iterdir())
    assert main(["translate", str(run), str(image), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / f"{image.stem}_a2b.png").is_file()
    capsys.readouterr()
    assert main(["translate", str(run), str(image), "--direction", "b2a", "--out", str(tmp_path / "x")]) == 2
    assert f"--direction b2a: this {kind} model translates a2b only" in capsys.readouterr().err
    assert main(["translate", str(run), str(image), "--roundtrip", "--out", str(tmp_path / "x")]) == 2
    assert f"--roundtrip: this {kind} model translates a2b only" in capsys.readouterr().err
    assert (
        main(["export", str(run), "--format", "torchscript", "--direction", "b2a", "--out", str(tmp_path / "g.pt")])
        == 2
    )
    assert not (tmp_path / "x").exists() and not (tmp_path / "g.pt").exists()
    if kind == "cut":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]) == 0
        assert "max abs difference to PyTorch" in capsys.readouterr().out
