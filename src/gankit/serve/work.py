"""What the server computes, as plain functions of a model and its inputs (no web code): they run in a
worker thread once the request queue grants a slot, and the tests call them directly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from gankit.data.grid import make_grid
from gankit.data.images import uint8_to_unit
from gankit.inference.translate import plan_tile, translate_image
from gankit.models.base import Model, Translator, latent_lines
from gankit.serve.errors import Unprocessable

DIGIT_SIZE = 28
DIGIT_BOX = 20
"""MNIST digits are scaled into a 20 × 20 box centred in 28 × 28 (LeCun et al. 1998); uploads are too."""


def other_direction(direction: str) -> str:
    return "b2a" if direction == "a2b" else "a2b"


def check_direction(model: Translator, direction: str) -> str:
    """``direction``, or :class:`Unprocessable` (422) naming the directions the model translates."""
    if direction not in model.directions:
        kind = getattr(model, "kind", type(model).__name__)
        raise Unprocessable(f"unknown direction {direction!r}: this {kind} model translates "
                            f"{' and '.join(model.directions)} only")  # fmt: skip
    return direction


@dataclass(frozen=True)
class Translation:
    image: Image.Image
    roundtrip: Image.Image | None
    """The translation translated back (None for one-sided models or when not asked for)."""
    tile: int
    """Tile size used (0: one piece)."""


def translate(model: Translator, image: Image.Image, direction: str, *, roundtrip: bool = False,
              max_memory: int | None = None) -> Translation:  # fmt: skip
    """Translate one upright "L"/"RGB" image at its own size, tiled exactly as ``gankit translate``
    tiles it (whole-image statistics, so no seams) when a one-piece pass would not fit ``max_memory``."""
    generator = model.generator(check_direction(model, direction))
    in_channels = model.channels(direction)[0]
    tile = plan_tile(generator, (in_channels, image.height, image.width), None, max_memory)
    fake = translate_image(generator, image, in_channels, tile=tile, max_memory=max_memory)
    back = other_direction(direction)
    rec = None
    if roundtrip and back in model.directions:
        rec = translate_image(model.generator(back), fake, model.channels(back)[0], tile=tile, max_memory=max_memory)
    return Translation(fake, rec, tile)


# --- companion models ------------------------------------------------------------------------------------
def check_digit(label: int) -> int:
    if not 0 <= int(label) <= 9:
        raise Unprocessable(f"digit {label}: expected 0–9")
    return int(label)


def digit_grid(model: Model, label: int, n: int = 16, seed: int = 0) -> Image.Image:
    """``n`` images of the digit ``label`` from a conditional GAN."""
    with torch.no_grad():
        return model.sample(n=n, label=check_digit(label), seed=seed)


def samples(model: Model, n: int = 16, seed: int = 0) -> Image.Image:
    """A grid of ``n`` random images of a generative model."""
    with torch.no_grad():
        return model.sample(n=n, seed=seed)


def interpolation_strip(model: Model, steps: int = 8, seed: int = 0) -> Image.Image:
    """One row of ``steps`` images along a great circle between two random latent points (a
    progressive GAN's latents are normal, so the path keeps their norm; White 2016)."""
    z = latent_lines(1, steps, model.config.latent_dim, torch.Generator().manual_seed(seed), spherical=True)
    with torch.no_grad():
        x = model.generate(z)
    return make_grid([list(x)], min_height=64)


def digit_tensor(image: Image.Image) -> torch.Tensor:
    """A gray upload → uint8 (1, 1, 28, 28) in MNIST's form: a light digit on black, scaled into a
    20 × 20 box and centred. Dark-on-light drawings are inverted; MNIST images pass unchanged."""
    gray = image.convert("L")
    a = np.asarray(gray)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if border.mean() > 127:
        gray = ImageOps.invert(gray)
    if gray.size != (DIGIT_SIZE, DIGIT_SIZE):
        box = gray.point(lambda v: 255 if v > 32 else 0).getbbox() or (0, 0, *gray.size)
        ink = gray.crop(box)
        scale = DIGIT_BOX / max(ink.size)
        size = (max(1, round(ink.width * scale)), max(1, round(ink.height * scale)))
        ink = ink.resize(size, Image.Resampling.LANCZOS)
        canvas = Image.new("L", (DIGIT_SIZE, DIGIT_SIZE), 0)
        canvas.paste(ink, ((DIGIT_SIZE - ink.width) // 2, (DIGIT_SIZE - ink.height) // 2))
        gray = canvas
    return torch.from_numpy(np.asarray(gray).copy())[None, None]


def classify_digit(model: Model, image: Image.Image) -> dict[str, float]:
    """The semi-supervised GAN's class probabilities for one uploaded digit, as {"0": p0, …}."""
    x = digit_tensor(image)
    net = model.classifier
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            probs = torch.softmax(net(uint8_to_unit(x).to(model.device)).float(), dim=1)[0].cpu()
    finally:
        net.train(was_training)
    return {str(k): float(p) for k, p in enumerate(probs)}
