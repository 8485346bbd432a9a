"""Training and evaluation preprocessing, following ``get_transform`` of the official
pytorch-CycleGAN-and-pix2pix code (Zhu et al. 2017): resize to ``load_size`` (286), random crop
``crop_size`` (256), random horizontal flip, then scale to [-1, 1].

Unlike the official code, all randomness comes from an ``rng`` passed in, never from global
state, so a sample is a pure function of its seed: runs are reproducible whatever the number of
DataLoader workers, and a resumed run sees exactly the crops the uninterrupted one would have.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from gankit.data.images import pil_to_tensor
from gankit.errors import ConfigError

PREPROCESS_CHOICES = (
    "resize_and_crop",
    "crop",
    "scale_width",
    "scale_width_and_crop",
    "scale_shortside_and_crop",
    "none",
)
BICUBIC = Image.Resampling.BICUBIC

Rng = random.Random | np.random.Generator


def _randint(rng: Rng, high: int) -> int:
    """Uniform integer in [0, high]."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, high + 1))
    return rng.randint(0, high)


def _coin(rng: Rng) -> bool:
    return bool(rng.random() < 0.5)


def _pad_reflect(img: Image.Image, width: int, height: int) -> Image.Image:
    """Grow to at least width x height by reflecting the borders (no black bars to learn from)."""
    w, h = img.size
    if w >= width and h >= height:
        return img
    a = np.asarray(img)
    dy, dx = max(0, height - h), max(0, width - w)
    pad = [(dy // 2, dy - dy // 2), (dx // 2, dx - dx // 2)] + [(0, 0)] * (a.ndim - 2)
    return Image.fromarray(np.pad(a, pad, mode="reflect" if min(w, h) > 1 else "edge"))


def _random_crop(img: Image.Image, size: int, rng: Rng) -> Image.Image:
    img = _pad_reflect(img, size, size)
    w, h = img.size
    x, y = _randint(rng, w - size), _randint(rng, h - size)
    return img.crop((x, y, x + size, y + size))


def _scale_width(img: Image.Image, width: int, crop_size: int) -> Image.Image:
    """Official ``__scale_width``: width to ``width``, height in proportion but at least ``crop_size``."""
    w, h = img.size
    if w == width and h >= crop_size:
        return img
    return img.resize((width, int(max(width * h / w, crop_size))), BICUBIC)


def _scale_shortside(img: Image.Image, short: int) -> Image.Image:
    """Shorter side to ``short``, aspect kept: crops of large photos show real detail, undistorted."""
    w, h = img.size
    if min(w, h) == short:
        return img
    s = short / min(w, h)
    return img.resize((max(short, round(w * s)), max(short, round(h * s))), BICUBIC)


def _multiple_of_4(img: Image.Image) -> Image.Image:
    """Official ``__make_power_2(base=4)``: the generators downsample twice, so sizes must divide by 4."""
    w, h = img.size
    nw, nh = max(4, round(w / 4) * 4), max(4, round(h / 4) * 4)
    return img if (nw, nh) == (w, h) else img.resize((nw, nh), BICUBIC)


@dataclass
class TrainTransform:
    """PIL image + rng -> tensor CHW in [-1, 1].

    ``preprocess`` (official names): ``resize_and_crop`` square-resize to ``load_size`` then
    random ``crop_size`` crop (the official default, 286 → 256); ``crop`` random crop only (images
    smaller than the crop are reflect-padded); ``scale_width`` width to ``load_size`` keeping the
    aspect, no crop; ``scale_width_and_crop`` the same then crop; ``scale_shortside_and_crop``
    shorter side to ``load_size`` then crop; ``none`` only round sizes to a multiple of 4.
    """

    load_size: int
    crop_size: int
    flip: bool = True
    preprocess: str = "resize_and_crop"

    def __post_init__(self):
        if self.preprocess not in PREPROCESS_CHOICES:
            raise ConfigError(f"preprocess={self.preprocess!r} is not one of {PREPROCESS_CHOICES}")
        if self.crop_size < 1 or self.load_size < 1:
            raise ConfigError(f"sizes must be positive: load={self.load_size}, crop={self.crop_size}")
        if "crop" in self.preprocess and self.preprocess != "crop" and self.load_size < self.crop_size:
            raise ConfigError(f"load_size {self.load_size} is smaller than crop_size {self.crop_size}")

    def __call__(self, img: Image.Image, rng: Rng) -> torch.Tensor:
        p = self.preprocess
        if p == "resize_and_crop":
            img = img.resize((self.load_size, self.load_size), BICUBIC)
        elif p.startswith("scale_width"):
            img = _scale_width(img, self.load_size, self.crop_size)
        elif p == "scale_shortside_and_crop":
            img = _scale_shortside(img, self.load_size)
        if "crop" in p:
            img = _random_crop(img, self.crop_size, rng)
        else:
            img = _multiple_of_4(img)
        if self.flip and _coin(rng):
            img = ImageOps.mirror(img)
        return pil_to_tensor(img)


@dataclass
class EvalTransform:
    """Deterministic: square-resize to ``size`` (bicubic) when given, else keep the size."""

    size: int | None = None

    def __call__(self, img: Image.Image, rng: Rng | None = None) -> torch.Tensor:
        if self.size is not None and img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), BICUBIC)
        return pil_to_tensor(img)
