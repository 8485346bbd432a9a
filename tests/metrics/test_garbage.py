"""Garbage-image generators: shapes, ranges, determinism, and what each one keeps or destroys."""

from __future__ import annotations

import pytest
import torch

from gankit.metrics.garbage import (
    GARBAGE_KINDS,
    HELD_OUT_KINDS,
    TRAIN_KINDS,
    colour_scramble,
    constant_mean_colour,
    heavy_blur,
    make_garbage,
    patch_shuffle,
    pink_noise,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _ref(shape=(3, 3, 32, 32), seed=1):
    """Smooth-ish images with fine detail, in [-1, 1]."""
    g = _gen(seed)
    base = torch.nn.functional.interpolate(torch.rand(shape[0], shape[1], 4, 4, generator=g), size=shape[-2:])
    return (base + 0.5 * torch.rand(shape, generator=g)) / 1.5 * 2 - 1


def _high_freq_energy(x: torch.Tensor) -> torch.Tensor:
    """Energy of horizontal and vertical pixel differences per image."""
    return x.diff(dim=-1).pow(2).flatten(1).sum(1) + x.diff(dim=-2).pow(2).flatten(1).sum(1)


def test_split_covers_the_registry():
    assert set(TRAIN_KINDS) | set(HELD_OUT_KINDS) == set(GARBAGE_KINDS)
    assert not set(TRAIN_KINDS) & set(HELD_OUT_KINDS)
    assert {"pink_noise", "constant"} <= set(HELD_OUT_KINDS) and len(TRAIN_KINDS) >= 5
    with pytest.raises(ValueError, match="unknown garbage kind"):
        make_garbage("nope", _ref(), _gen())


@pytest.mark.parametrize("kind", sorted(GARBAGE_KINDS))
@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (2, 1, 20, 28)])
def test_shape_range_dtype_and_determinism(kind, shape):
    ref = _ref(shape)
    a = make_garbage(kind, ref, _gen(5))
    assert a.shape == ref.shape and a.dtype == ref.dtype
    assert a.min() >= -1 and a.max() <= 1 and torch.isfinite(a).all()
    assert torch.equal(a, make_garbage(kind, ref, _gen(5)))
    assert torch.equal(ref, _ref(shape))  # input untouched
    deterministic = kind in ("heavy_blur", "constant") or (kind == "colour_scramble" and shape[1] == 1)
    if not deterministic:
        b = make_garbage(kind, ref, _gen(6))
        assert not torch.equal(a, b)
    assert not torch.equal(a, ref)
    assert make_garbage(kind, ref.double(), _gen(5)).dtype == torch.float64


@pytest.mark.parametrize("grid", [4, 8])
def test_patch_shuffle_preserves_histogram_and_moves_patches(grid):
    ref = _ref((2, 3, 32, 36))
    out = patch_shuffle(ref, _gen(), grid=grid)
    for i in range(2):
        for c in range(3):
            assert torch.equal(out[i, c].flatten().sort().values, ref[i, c].flatten().sort().values)
    ph, pw = 32 // grid, 36 // grid

    def cells(t):  # (n, c, grid², ph, pw)
        return t[:, :, : ph * grid, : pw * grid].unfold(2, ph, ph).unfold(3, pw, pw).flatten(2, 3)

    src, dst = cells(ref), cells(out)
    for i in range(2):
        # every output cell is one input cell, and the arrangement is not the identity
        matches = [
            next(j for j in range(grid * grid) if torch.equal(dst[i, :, k], src[i, :, j])) for k in range(grid**2)
        ]
        assert sorted(matches) == list(range(grid * grid)) and matches != list(range(grid * grid))
    with pytest.raises(ValueError):
        patch_shuffle(ref[..., :3, :3], _gen(), grid=4)


def test_blur_reduces_high_frequency_energy():
    ref = _ref((2, 3, 64, 64))
    blurred = heavy_blur(ref, _gen())
    assert (_high_freq_energy(blurred) < 0.05 * _high_freq_energy(ref)).all()
    assert torch.allclose(blurred.mean((-2, -1)), ref.mean((-2, -1)), atol=0.1)  # colours roughly kept
    small = heavy_blur(ref[..., :8, :8], _gen(), sigma_fraction=1.0)  # kernel wider than the image
    assert small.shape == (2, 3, 8, 8)


def test_pink_noise_has_a_falling_spectrum():
    x = pink_noise(torch.zeros(4, 1, 64, 64), _gen())
    power = torch.fft.rfft2(x).abs().pow(2).mean((0, 1))
    low, high = power[1:4, 1:4].mean(), power[16:32, 16:32].mean()
    assert low > 20 * high
    assert x.abs().amax((-2, -1)).allclose(torch.ones(4, 1))


def test_colour_scramble_keeps_structure_and_constant_is_flat():
    ref = _ref((4, 3, 16, 16))
    out = colour_scramble(ref, _gen())
    for i in range(4):
        # each output channel is ± one input channel
        for c in range(3):
            assert any(torch.equal(out[i, c], s * ref[i, j]) for j in range(3) for s in (1, -1))
    gray = ref[:, :1]
    assert torch.equal(colour_scramble(gray, _gen()), -gray)
    flat = constant_mean_colour(ref, _gen())
    assert torch.allclose(flat, ref.mean((-2, -1), keepdim=True).expand_as(ref))


@pytest.mark.parametrize("n", [1, 2, len(TRAIN_KINDS) - 1, len(TRAIN_KINDS) + 2])
def test_garbage_like_takes_turns_even_with_fewer_images_than_kinds(n):
    """A tiny training set (fewer images than garbage kinds) still gets garbage, one kind per image in turn."""
    from gankit.metrics.classifier import garbage_like

    images = ((_ref((n, 3, 32, 32)) + 1) * 127.5).round().to(torch.uint8)
    junk = garbage_like(images, TRAIN_KINDS, seed=0)
    assert junk.shape == images.shape and junk.dtype == torch.uint8
    assert not torch.equal(junk, images)
    assert torch.equal(junk, garbage_like(images, TRAIN_KINDS, seed=0))
