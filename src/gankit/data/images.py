"""Reading images of any kind into the two modes the networks use ("L" and "RGB"), and the
tensor conversion CycleGAN expects (CHW in [-1, 1], the ``Normalize((0.5,), (0.5,))`` of the
official pytorch-CycleGAN-and-pix2pix code, Zhu et al. 2017).

Real image folders hold palette PNGs, transparent logos, CMYK JPEGs, 16-bit scans, phone photos
with an EXIF rotation, and the odd truncated download. Every such case is handled here, once, so
that datasets and the ``translate`` command see clean "L"/"RGB" images or an ``ImageReadError``
that names the file.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from gankit.errors import DataError, ImageReadError

IMAGE_EXTENSIONS = frozenset(
    (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"),
)

_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_WHITE = (255, 255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_PROFILED_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}
"""Modes whose embedded ICC profile is applied, and the mode of the sRGB result."""


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (colour), got {channels!r}")


def _wide_to_uint8(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float gray -> 8-bit "L", scaled by the bit depth, never clipped.

    Clipping (what ``convert("L")`` does for "I") turns almost every 16-bit image white. The
    depth is the mode's own for "I;16*" (65535 -> 255, 32768 -> 128). Mode "I" does not say
    how many bits are used (Pillow opens 16-bit PNGs as "I"), so the smallest of 8/16/32 bits
    that holds the maximum is taken. Floats in [0, 1] are taken as fractions, else as "I".
    """
    a = np.asarray(img)
    if img.mode.startswith("I;16"):
        peak = 65535.0
    else:
        a = a.astype(np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        a = np.clip(a, 0, None)
        top = float(a.max()) if a.size else 0.0
        if img.mode == "F" and top <= 1.0:
            peak = 1.0
        else:
            peak = 255.0 if top <= 255 else 65535.0 if top <= 65535 else 2.0**32 - 1
    out = np.clip(np.rint(a.astype(np.float64) * (255.0 / peak)), 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def to_srgb(im: Image.Image) -> Image.Image:
    """``im`` with its embedded ICC colour profile (Adobe RGB, Display P3, a CMYK press profile…)
    converted to sRGB, what the networks were trained on; images without a profile, or with one that
    does not describe their mode, are returned as they are. EXIF and the other metadata are kept, so
    orientation is applied afterwards as for any image."""
    icc = im.info.get("icc_profile")
    out_mode = _PROFILED_MODES.get(im.mode)
    if not icc or out_mode is None:
        return im
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(im, source, _SRGB, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken or mismatched profile: the pixels as stored beat no picture
    out.info = {k: v for k, v in im.info.items() if k != "icc_profile"}
    return out


def convert_image(img: Image.Image, channels: int) -> Image.Image:
    """Any PIL image -> "L" (``channels=1``) or "RGB" (``channels=3``), upright.

    An embedded colour profile is converted to sRGB (:func:`to_srgb`), EXIF orientation is applied
    (phone photos are stored sideways), transparency is composited
    on white (what a viewer shows; black would invent dark borders around logos), and colour to
    gray uses PIL's ITU-R 601 luma ``L = 0.299 R + 0.587 G + 0.114 B``.
    """
    _check_channels(channels)
    img = to_srgb(img)
    with contextlib.suppress(Exception):  # a malformed EXIF block should not cost the picture
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        img = _wide_to_uint8(img)
    elif mode == "1":
        img = img.convert("L")
    elif mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    elif mode not in ("L", "RGB"):
        img = img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def decode_image(data: bytes | BinaryIO, where: str | Path, channels: int) -> Image.Image:
    """Decode image bytes (or a binary file object) fully; errors name ``where``."""
    _check_channels(channels)
    fp = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with Image.open(fp) as im:
            im.load()  # force the full decode so truncated files fail here, not in a worker later
            return convert_image(im, channels)
    except UnidentifiedImageError:
        raise ImageReadError(where, "not an image file (unknown or unsupported format)") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(where, f"image too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        raise ImageReadError(where, f"corrupt or truncated image ({e})") from None


def load_image(path: str | Path, channels: int) -> Image.Image:
    """Read ``path`` as "L" (``channels=1``) or "RGB" (``channels=3``); see :func:`convert_image`.

    Raises ``ImageReadError(path, reason)`` for a missing, empty, non-image or corrupt file.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(path, "empty file (0 bytes)")
        with open(path, "rb") as f:
            return decode_image(f, path, channels)
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None


def is_image_file(path: str | Path) -> bool:
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files in ``folder`` (by extension, hidden files skipped), sorted for reproducibility.

    Raises ``DataError`` naming the folder when it is missing, not a folder, or has no images.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    entries = [p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file()]
    images = sorted((p for p in entries if is_image_file(p)), key=lambda p: p.relative_to(folder).as_posix())
    if not images:
        what = f"holds {len(entries)} file(s) but none" if entries else "is empty: no"
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"{folder}: {what} image files (looked for {exts})")
    return images


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An "L"/"RGB" image -> float tensor CHW in [-1, 1] (other modes are converted first)."""
    if img.mode not in ("L", "RGB"):
        img = convert_image(img, 1 if img.mode in _GRAY_MODES or img.mode.startswith("I;16") else 3)
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    t = torch.from_numpy(a.transpose(2, 0, 1).copy())
    return t.float().div_(127.5).sub_(1.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """CHW (or HW, or 1CHW) tensor in [-1, 1] -> "L" (1 channel) or "RGB" (3 channels); values are
    clamped and NaN shows as mid-gray instead of poisoning the cast."""
    t = torch.nan_to_num(t.detach().float().cpu(), nan=0.0)
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected a CHW tensor with 1 or 3 channels, got shape {tuple(t.shape)}")
    a = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


def center_square_batch(source, size: int, n: int) -> torch.Tensor:
    """``n`` evenly spaced images of ``source``, shorter side to ``size`` then a centred square crop: a
    fixed, undistorted view for sample grids."""

    idx = torch.linspace(0, len(source) - 1, min(n, len(source))).round().long().unique()
    fit = (ImageOps.fit(source.load(int(i)), (size, size), Image.Resampling.BICUBIC) for i in idx)
    return torch.stack([pil_to_tensor(im) for im in fit])


def uint8_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images → float in [-1, 1] (the generators' range)."""
    return x.float().div(127.5).sub(1.0)
