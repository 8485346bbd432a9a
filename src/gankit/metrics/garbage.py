""" "Garbage" images: floors for quality metrics (a metric that rates noise well can be fooled) and the
'neither' class of domain classifiers.

Every generator is a pure function ``(reference, generator) -> images`` of a reference batch (N, C, H, W) in
[-1, 1] and a ``torch.Generator``; it returns a batch of the same shape, dtype and device in [-1, 1] that is
deterministic given the generator's state. Random numbers are drawn on the generator's device (CPU for
``torch.Generator()``) and then moved to the reference's device.

``TRAIN_KINDS`` are for training a classifier's garbage class; ``HELD_OUT_KINDS`` (pink noise, constant
images, untrained U-Nets) stay out of training, to test that it generalises to garbage it has not seen."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

GarbageFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

__all__ = [
    "GARBAGE_KINDS",
    "HELD_OUT_KINDS",
    "TRAIN_KINDS",
    "GarbageFn",
    "colour_scramble",
    "constant_mean_colour",
    "gaussian_noise",
    "heavy_blur",
    "low_frequency_noise",
    "make_garbage",
    "patch_shuffle",
    "pink_noise",
    "tinted_noise",
    "uniform_noise",
    "untrained_generator",
]


def _check(ref: torch.Tensor) -> None:
    if ref.ndim != 4 or not ref.is_floating_point():
        raise ValueError(f"expected float reference images (N, C, H, W), got {ref.dtype} {tuple(ref.shape)}")


def _rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=gen.device)


def _randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=gen.device)


def _like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return x.clamp(-1, 1).to(device=ref.device, dtype=ref.dtype)


def uniform_noise(ref: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Independent U(-1, 1) pixels."""
    _check(ref)
    return _like(_rand(gen, *ref.shape) * 2 - 1, ref)


def gaussian_noise(ref: torch.Tensor, gen: torch.Generator, std: float = 0.5) -> torch.Tensor:
    """Independent N(0, std²) pixels, clipped to [-1, 1]."""
    _check(ref)
    return _like(_randn(gen, *ref.shape) * std, ref)


def low_frequency_noise(ref: torch.Tensor, gen: torch.Generator, cells: int = 4) -> torch.Tensor:
    """Coloured low-frequency noise: U(-1, 1) on a ``cells`` x ``cells`` grid per channel, bilinearly upsampled
    to (H, W) (smooth colour blobs)."""
    _check(ref)
    n, c, h, w = ref.shape
    small = _rand(gen, n, c, cells, cells) * 2 - 1
    return _like(F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False), ref)


def tinted_noise(ref: torch.Tensor, gen: torch.Generator, max_input_weight: float = 0.5) -> torch.Tensor:
    """Pixel noise with a random colour cast and contrast per image, faintly mixed with the reference:
    ``w·ref + (1 − w)·(μ + a·U(−1, 1))`` with per-channel ``μ ~ U(−0.7, 0.7)``, ``a ~ U(0.2, 1)`` and
    ``w ~ U(0, max_input_weight)``. This is what an image-to-image GAN emits after a few updates: the
    discriminator has pulled the colours towards the target domain before the generator has learned
    any structure, so gray zero-mean noise alone does not teach a classifier to refuse it."""
    _check(ref)
    n, c = ref.shape[:2]
    mean = _rand(gen, n, c, 1, 1) * 1.4 - 0.7
    amplitude = _rand(gen, n, c, 1, 1) * 0.8 + 0.2
    weight = _rand(gen, n, 1, 1, 1) * max_input_weight
    noise = mean + amplitude * (_rand(gen, *ref.shape) * 2 - 1)
    weight = weight.to(ref.device, ref.dtype)
    return _like(weight * ref + (1 - weight) * noise.to(ref.device, ref.dtype), ref)


def pink_noise(ref: torch.Tensor, gen: torch.Generator, exponent: float = 1.0) -> torch.Tensor:
    """1/f ("pink") noise per channel: complex white Gaussian noise shaped by 1 / |f|^exponent in the 2-D
    Fourier domain (amplitude spectrum of natural images, Field 1987), inverse FFT, each plane scaled to
    peak |value| 1 (mean removed)."""
    _check(ref)
    n, c, h, w = ref.shape
    fy = torch.fft.fftfreq(h, device=gen.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=gen.device)[None, :]
    f = torch.sqrt(fx**2 + fy**2)
    amp = torch.where(f > 0, f.clamp_min(1e-12) ** -exponent, torch.zeros_like(f))
    spec = torch.complex(_randn(gen, n, c, h, w // 2 + 1), _randn(gen, n, c, h, w // 2 + 1)) * amp
    x = torch.fft.irfft2(spec, s=(h, w))
    x = x - x.mean((-2, -1), keepdim=True)
    return _like(x / x.abs().amax((-2, -1), keepdim=True).clamp_min(1e-12), ref)


def heavy_blur(ref: torch.Tensor, gen: torch.Generator, sigma_fraction: float = 1 / 16) -> torch.Tensor:
    """Gaussian blur of the reference with σ = ``sigma_fraction`` · max(H, W) px (16 px at 256 px), edges
    replicated; content reduced to colour blobs. Deterministic (``gen`` unused)."""
    _check(ref)
    x = ref.float()
    sigma = max(1.0, sigma_fraction * max(x.shape[-2:]))
    radius = math.ceil(3 * sigma)
    g = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-(g**2) / (2 * sigma**2))
    g = g / g.sum()
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    # replicate-pad one axis at a time: a pad wider than the image is fine for "replicate"
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), g.view(1, 1, -1, 1))
    return _like(x.reshape(n, c, h, w), ref)


def _random_permutation(gen: torch.Generator, n: int) -> torch.Tensor:
    """A random permutation of range(n) that is not the identity (for n >= 2)."""
    while True:
        p = torch.randperm(n, generator=gen, device=gen.device)
        if n < 2 or not torch.equal(p, torch.arange(n, device=p.device)):
            return p


def patch_shuffle(ref: torch.Tensor, gen: torch.Generator, grid: int = 4) -> torch.Tensor:
    """The reference cut into a ``grid`` x ``grid`` grid of patches, randomly permuted per image (never the
    identity). Pixel values and their histogram are unchanged; the global structure is destroyed. When H or W
    is not a multiple of ``grid`` the leftover bottom/right strip stays in place."""
    _check(ref)
    n, c, h, w = ref.shape
    ph, pw = h // grid, w // grid
    if ph < 1 or pw < 1:
        raise ValueError(f"a {grid}x{grid} grid needs images of at least {grid}x{grid} px, got {h}x{w}")
    out = ref.clone()
    core = ref[:, :, : ph * grid, : pw * grid].reshape(n, c, grid, ph, grid, pw)
    core = core.permute(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, c, ph, pw)
    perm = torch.stack([_random_permutation(gen, grid * grid) for _ in range(n)]).to(ref.device)
    core = core[torch.arange(n, device=ref.device)[:, None], perm]
    core = core.reshape(n, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * grid, pw * grid)
    out[:, :, : ph * grid, : pw * grid] = core
    return out


def colour_scramble(ref: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per image, a random non-identity channel permutation and a random inversion (v -> -v) of each channel;
    for one-channel images the channel is always inverted. Structure is kept, colours become implausible."""
    _check(ref)
    n, c = ref.shape[:2]
    perms = torch.stack([_random_permutation(gen, c) for _ in range(n)]).to(ref.device)
    signs = torch.where(_rand(gen, n, c) < 0.5, -1.0, 1.0)
    if c == 1:
        signs = -torch.ones(n, 1, device=gen.device)
    x = ref[torch.arange(n, device=ref.device)[:, None], perms]
    return _like(x * signs.to(x)[..., None, None], ref)


def constant_mean_colour(ref: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image replaced by its mean colour (a flat image). Deterministic (``gen`` unused)."""
    _check(ref)
    return _like(ref.mean((-2, -1), keepdim=True).expand_as(ref).clone(), ref)


@torch.no_grad()
def untrained_generator(ref: torch.Tensor, gen: torch.Generator, architecture: str = "resnet") -> torch.Tensor:
    """The output of a randomly initialised image-to-image generator (N(0, 0.02) weights, as CycleGAN
    starts, a seed drawn from ``gen``): what a translator produces before it has learned anything."""
    from gankit.nn import build_generator, init_weights

    _check(ref)
    c = ref.shape[1]
    seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_generator(architecture, c, c, ngf=8, n_blocks=2, depth=2)
        init_weights(net, "normal", 0.02)
    multiple = int(getattr(net, "size_multiple", 1))
    h, w = ref.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = F.pad(ref.float().cpu(), (0, pw, 0, ph), mode="replicate") if ph or pw else ref.float().cpu()
    return _like(net.eval()(x)[..., :h, :w], ref)


GARBAGE_KINDS: dict[str, GarbageFn] = {
    "uniform_noise": uniform_noise,
    "gaussian_noise": gaussian_noise,
    "low_frequency_noise": low_frequency_noise,
    "tinted_noise": tinted_noise,
    "pink_noise": pink_noise,
    "heavy_blur": heavy_blur,
    "patch_shuffle_4x4": partial(patch_shuffle, grid=4),
    "patch_shuffle_8x8": partial(patch_shuffle, grid=8),
    "colour_scramble": colour_scramble,
    "constant": constant_mean_colour,
    "untrained_resnet": partial(untrained_generator, architecture="resnet"),
    "untrained_unet": partial(untrained_generator, architecture="unet"),
}
HELD_OUT_KINDS: tuple[str, ...] = ("pink_noise", "constant", "untrained_unet")
TRAIN_KINDS: tuple[str, ...] = tuple(k for k in GARBAGE_KINDS if k not in HELD_OUT_KINDS)


def make_garbage(kind: str, ref: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``GARBAGE_KINDS[kind](ref, gen)`` with a helpful error for an unknown kind."""
    try:
        fn = GARBAGE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown garbage kind {kind!r}; known: {', '.join(GARBAGE_KINDS)}") from None
    return fn(ref, gen)
