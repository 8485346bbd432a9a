"""File formats and atomic writes.

Writes: a crash, SIGKILL or full disk at any moment leaves either the previous file or the complete
new one under the final name, never a half-written file. Data goes to a temporary file in the same
folder, is fsynced, then renamed over the target (rename is atomic on POSIX).

Reads: checkpoints hold only tensors and plain Python values and load with
``torch.load(weights_only=True)``; weights ship as safetensors. Neither can run pickled code."""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gankit.errors import CheckpointError

CHECKPOINT_RE = re.compile(r"step_(\d+)\.pt$")


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


def atomic_torch_save(obj: Any, path: Path) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` that refuses pickled code and names the file in every error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({e})") from None
    except Exception as e:  # UnpicklingError for files with code, anything else unreadable
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(e).__name__}: {e})") from None


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    return atomic_write_bytes(path, data)


def load_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except Exception as e:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({e})") from None


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of ``step_*.pt`` files, oldest first."""
    found = []
    for p in Path(folder).glob("step_*.pt"):
        m = CHECKPOINT_RE.search(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)
