"""The optimized CycleGAN training step computes the same losses and gradients as the
straightforward one: passes of one network over different images share a batch (exact with
instance norm), and ``compile: true`` runs the networks through torch.compile."""

from __future__ import annotations

import itertools
import shutil

import pytest
import torch
from torch import nn

from gankit.config import CycleGANConfig
from gankit.nn import conv
from gankit.training.loop import Trainer


def _trainer(tmp_path, name: str, reference: bool, **fields) -> Trainer:
    base = dict(channels_a=3, channels_b=3, size=32, generator="resnet", blocks=1, ngf=8, ndf=8, steps=100,
                device="cpu", threads=1, batch_size=2, pool_size=50, conv_algorithms="plain")  # fmt: skip
    trainer = Trainer(CycleGANConfig(**(base | fields)).validate(), tmp_path / name, pair=None, progress=False)
    trainer.model.batch_passes = not reference
    return trainer


def _cancelled_biases(model: nn.Module) -> set[str]:
    """Conv biases followed by a non-affine instance norm: the norm subtracts them again, so their
    gradient is rounding noise and they never change any output."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            kids = list(module.named_children())
            for (name, layer), (_, after) in itertools.pairwise(kids):
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(after, nn.InstanceNorm2d):
                    names.add(f"{prefix}.{name}.bias".lstrip("."))
    return names


def _assert_same_gradients(fast: Trainer, ref: Trainer) -> None:
    """The gradients the last step applied (G's from the G step, D's from the D step) agree. They are
    compared rather than the updated weights: Adam's first steps move each weight by about ±lr
    whatever its gradient's size, so a gradient of rounding-noise size may differ by 2·lr in sign."""
    skip = _cancelled_biases(ref.model)
    assert skip  # the resnet generator and PatchGAN have such biases
    got = dict(fast.model.named_parameters())
    compared = 0
    for key, p in ref.model.named_parameters():
        if key in skip or p.grad is None:
            continue
        scale = p.grad.abs().max().item()
        torch.testing.assert_close(got[key].grad.to(p.dtype), p.grad, rtol=1e-3, atol=1e-4 * scale + 1e-12)
        compared += 1
    assert compared > 10


def _batches(n: int):
    gen = torch.Generator().manual_seed(1)
    for _ in range(n):
        yield torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1, torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1


def _assert_same_losses(got: dict, want: dict, rel: float) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].item() == pytest.approx(want[key].item(), rel=rel, abs=1e-6), key


@pytest.mark.parametrize("fields", [{}, {"lambda_id": 0.0}, {"n_critic": 2}, {"gan_loss": "wgan-gp"}])
def test_batched_passes_match_the_reference_step(tmp_path, fields):
    fast, ref = _trainer(tmp_path, "fast", False, **fields), _trainer(tmp_path, "ref", True, **fields)
    for a, b in _batches(3):
        torch.manual_seed(7)  # wgan-gp draws its interpolation weights
        got = fast.train_step(a, b)
        torch.manual_seed(7)
        _assert_same_losses(got, ref.train_step(a, b), rel=1e-4)
        _assert_same_gradients(fast, ref)


def _gradient_errors(trainer: Trainer, reference: Trainer) -> dict[str, float]:
    skip = _cancelled_biases(reference.model)
    got = dict(trainer.model.named_parameters())
    return {key: ((got[key].grad.double() - p.grad).abs().max() / p.grad.abs().max()).item()
            for key, p in reference.model.named_parameters() if key not in skip and p.grad is not None}  # fmt: skip


@pytest.mark.parametrize("algorithms", ["nnpack", "winograd", "tuned"])
def test_tuned_convolutions_are_as_accurate_as_plain_ones(tmp_path, algorithms):
    """One step in float32 with tuned convs and with PyTorch's, both against the plain step in float64.
    ``nnpack`` forces Winograd/FFT into every conv it applies to, whatever the timings say; ``winograd``
    the Winograd weight gradient of every 3×3 conv as well."""
    tuned, plain = _trainer(tmp_path, "t", False, conv_algorithms=algorithms), _trainer(tmp_path, "p", False)
    exact = _trainer(tmp_path, "x", False)
    exact.model.double()
    assert tuned.model.conv_tuner is not None and plain.model.conv_tuner is None
    a, b = next(_batches(1))
    losses = {}
    for name, trainer, dtype in (("tuned", tuned, torch.float32), ("plain", plain, torch.float32),
                                 ("exact", exact, torch.float64)):  # fmt: skip
        torch.manual_seed(7)
        losses[name] = trainer.train_step(a.to(dtype), b.to(dtype))
    _assert_same_losses(losses["tuned"], losses["exact"], rel=1e-4)
    err_tuned, err_plain = _gradient_errors(tuned, exact), _gradient_errors(plain, exact)
    worse = {k: (err_tuned[k], err_plain[k]) for k in err_tuned if err_tuned[k] > max(2 * err_plain[k], 5e-5)}
    assert not worse, f"tuned gradients less accurate than plain ones: {worse}"
    chosen = set(tuned.model.conv_tuner.choices.values())
    if algorithms != "tuned" and conv.nnpack_available():
        assert "nnpack" in chosen
    if algorithms != "tuned":  # forced: Winograd weight gradients exactly when asked for
        assert ("winograd" in chosen) == (algorithms == "winograd")


def test_batch_norm_models_keep_one_pass_per_input(tmp_path):
    assert not _trainer(tmp_path, "bn", False, norm="batch").model.shares_batches
    assert _trainer(tmp_path, "in", False).model.shares_batches


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_compiled_step_matches_eager(tmp_path):
    """Compared with the eager step run in float64 (the float32 eager step itself is measured up to
    ~3e-3 off float64 in some generator gradients of this tiny model; the compiled one ~3e-6)."""
    fast, ref = _trainer(tmp_path, "compiled", False, compile=True), _trainer(tmp_path, "eager64", True)
    ref.model.double()
    assert fast.model.state_dict().keys() == ref.model.state_dict().keys()  # checkpoints unchanged
    (a, b), (a2, b2) = _batches(2)
    _assert_same_losses(fast.train_step(a, b), ref.train_step(a.double(), b.double()), rel=1e-4)
    _assert_same_gradients(fast, ref)
    # later steps start from weights that may differ by 2·lr in a few elements (see above), which
    # GAN dynamics amplify as between any two implementations: looser check
    _assert_same_losses(fast.train_step(a2, b2), ref.train_step(a2.double(), b2.double()), rel=1e-2)
    with torch.no_grad():  # sample grids run the eager networks
        fast.model.eval()
        out = fast.model.cycle(a[:1], b[:1])
    assert out.fake_b.shape == a[:1].shape
