"""The optimized CycleGAN training step computes the same losses and gradients as the
straightforward one: passes of one network over different images share a batch (exact with
instance norm), and ``compile: true`` runs the networks through torch.compile."""

from __future__ import annotations

import copy
import itertools
import shutil

import pytest
import torch
from torch import nn

from gankit.models.cyclegan import CycleGANModel, cyclegan_config
from gankit.models.persist import build_model
from gankit.nn import conv
from gankit.runtime import seed_everything


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny networks (the shared one-thread fixture)."""


def _model(reference: bool, **fields) -> CycleGANModel:
    """A CycleGAN as the training loop builds it (seeded, so every model here starts from the same
    weights; compiled with ``compile: true``); ``reference`` forces one pass per input."""
    base = dict(channels_a=3, channels_b=3, size=32, generator="resnet", blocks=1, ngf=8, ndf=8, steps=100,
                device="cpu", threads=1, batch_size=2, pool_size=50, conv_algorithms="plain")  # fmt: skip
    config = cyclegan_config(**(base | fields))
    seed_everything(config.seed)
    model = build_model(config, "cyclegan", "cpu")
    if config.compile:
        model.compile_for_training()
    model.nets.batch_passes = not reference
    return model.train()


def _continue_from(model: CycleGANModel, reference: CycleGANModel) -> None:
    """Put ``model`` in ``reference``'s exact training state (weights, optimizer moments, pools)."""
    model.nets.load_state_dict(reference.nets.state_dict())
    for name, opt in model.optimizers().items():
        opt.load_state_dict(copy.deepcopy(reference.optimizers()[name].state_dict()))
    model.load_extra_state(copy.deepcopy(reference.extra_state()))


def _step(model: CycleGANModel, batches: list[tuple[torch.Tensor, torch.Tensor]], step: int) -> dict:
    """One training step on ``batches`` (one (A, B) pair per discriminator update), as the loop runs it."""
    terms = model.train_step([{"A": a, "B": b} for a, b in batches], step)
    model.precision.update()
    return terms


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


def _assert_same_gradients(fast: CycleGANModel, ref: CycleGANModel) -> None:
    """The gradients the last step applied (G's from the G step, D's from the D step) agree. They are
    compared rather than the updated weights: Adam's first steps move each weight by about ±lr
    whatever its gradient's size, so a gradient of rounding-noise size may differ by 2·lr in sign."""
    skip = _cancelled_biases(ref.nets)
    assert skip  # the resnet generator and PatchGAN have such biases
    got = dict(fast.nets.named_parameters())
    compared = 0
    for key, p in ref.nets.named_parameters():
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


def _steps(n: int, per_step: int):
    """The batches of ``n`` steps of ``per_step`` discriminator updates each."""
    pairs = list(_batches(n * per_step))
    return [pairs[i : i + per_step] for i in range(0, len(pairs), per_step)]


def _assert_same_losses(got: dict, want: dict, rel: float) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].item() == pytest.approx(want[key].item(), rel=rel, abs=1e-6), key


@pytest.mark.parametrize("fields", [{}, {"lambda_id": 0.0}, {"n_critic": 2}, {"gan_loss": "wgan-gp"}])
def test_batched_passes_match_the_reference_step(fields):
    fast, ref = _model(False, **fields), _model(True, **fields)
    assert fast.batches_per_step == ref.batches_per_step == fields.get("n_critic", 1)
    for step, batches in enumerate(_steps(3, fast.batches_per_step), 1):
        # each step from the same state: rounding differences of earlier steps (~2e-6 relative in the
        # gradients) would otherwise grow, as GAN dynamics amplify any two implementations' (~2e-3 by step 2)
        _continue_from(fast, ref)
        torch.manual_seed(7)  # wgan-gp draws its interpolation weights
        got = _step(fast, batches, step)
        torch.manual_seed(7)
        _assert_same_losses(got, _step(ref, batches, step), rel=1e-4)
        _assert_same_gradients(fast, ref)


def _gradient_errors(model: CycleGANModel, reference: CycleGANModel) -> dict[str, float]:
    skip = _cancelled_biases(reference.nets)
    got = dict(model.nets.named_parameters())
    return {key: ((got[key].grad.double() - p.grad).abs().max() / p.grad.abs().max()).item()
            for key, p in reference.nets.named_parameters() if key not in skip and p.grad is not None}  # fmt: skip


def _smooth_activations(model: CycleGANModel) -> CycleGANModel:
    """ReLUs and LeakyReLUs replaced by ELUs, whose slope is continuous at 0. With a kink, a
    pre-activation within rounding of 0 takes either side depending on the last bit, which any two
    float32 convolutions may round differently: the gradient through that one pixel then differs by
    its whole size (seen on an AVX2 CPU: an instance-norm output of 1.6e-7 against −0 moved the
    weight gradients by 0.4 %), an accident of where the kink lies, not of the convs' accuracy."""
    for module in list(model.nets.modules()):
        for name, child in module.named_children():
            if isinstance(child, (nn.ReLU, nn.LeakyReLU)):
                setattr(module, name, nn.ELU())
    return model


@pytest.mark.parametrize("algorithms", ["nnpack", "winograd", "tuned"])
def test_tuned_convolutions_are_as_accurate_as_plain_ones(algorithms):
    """One step in float32 with tuned convs and with PyTorch's, both against the plain step in float64.
    ``nnpack`` forces Winograd/FFT into every conv it applies to, whatever the timings say; ``winograd``
    the Winograd weight gradient of every 3×3 conv as well. The activations are smooth here (see
    :func:`_smooth_activations`), so that only the convolutions' rounding separates the three."""
    tuned, plain = _smooth_activations(_model(False, conv_algorithms=algorithms)), _smooth_activations(_model(False))
    exact = _smooth_activations(_model(False))
    exact.nets.double()
    assert tuned.conv_tuner is not None and plain.conv_tuner is None
    a, b = next(_batches(1))
    losses = {}
    for name, model, dtype in (("tuned", tuned, torch.float32), ("plain", plain, torch.float32),
                               ("exact", exact, torch.float64)):  # fmt: skip
        torch.manual_seed(7)
        losses[name] = _step(model, [(a.to(dtype), b.to(dtype))], 1)
    _assert_same_losses(losses["tuned"], losses["exact"], rel=1e-4)
    err_tuned, err_plain = _gradient_errors(tuned, exact), _gradient_errors(plain, exact)
    worse = {k: (err_tuned[k], err_plain[k]) for k in err_tuned if err_tuned[k] > max(2 * err_plain[k], 5e-5)}
    assert not worse, f"tuned gradients less accurate than plain ones: {worse}"
    chosen = set(tuned.conv_tuner.choices.values())
    if algorithms != "tuned" and conv.nnpack_available():
        assert "nnpack" in chosen
    if algorithms != "tuned":  # forced: Winograd weight gradients exactly when asked for
        assert ("winograd" in chosen) == (algorithms == "winograd")


def test_batch_norm_models_keep_one_pass_per_input():
    assert not _model(False, norm="batch").nets.shares_batches
    assert _model(False).nets.shares_batches
    assert not _model(True).nets.shares_batches  # the reference path


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_compiled_step_matches_eager():
    """Compared with the eager step run in float64 (the float32 eager step itself is measured up to
    ~3e-3 off float64 in some generator gradients of this tiny model; the compiled one ~3e-6)."""
    fast, ref = _model(False, compile=True), _model(True)
    ref.nets.double()
    assert fast.nets.state_dict().keys() == ref.nets.state_dict().keys()  # checkpoints unchanged
    assert fast.weights().keys() == ref.weights().keys()
    (a, b), (a2, b2) = _batches(2)
    _assert_same_losses(_step(fast, [(a, b)], 1), _step(ref, [(a.double(), b.double())], 1), rel=1e-4)
    _assert_same_gradients(fast, ref)
    # later steps start from weights that may differ by 2·lr in a few elements (see above), which
    # GAN dynamics amplify as between any two implementations: looser check
    _assert_same_losses(_step(fast, [(a2, b2)], 2), _step(ref, [(a2.double(), b2.double())], 2), rel=1e-2)
    with torch.no_grad():  # sample grids run the eager networks
        fast.eval()
        out = fast.nets.cycle(a[:1], b[:1])
    assert out.fake_b.shape == a[:1].shape
