"""Atomic file writes: a crash, SIGKILL or full disk at any moment leaves either the previous file or
the complete new one under the final name, never a half-written file. Data goes to a temporary file
in the same folder, is fsynced, then renamed over the target (rename is atomic on POSIX)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp's 0600 would make outputs private
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def encode_image(img: Image.Image, suffix: str) -> bytes:
    """Bytes of ``img`` in the format a file suffix names (``.png``, ``.jpg``, ``.webp``…)."""
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from suffix {suffix!r}")
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def save_image_atomic(img: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    try:
        data = encode_image(img, path.suffix)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return atomic_write_bytes(path, data)
