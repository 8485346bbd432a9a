"""File formats and atomic writes.

Writes: a crash, SIGKILL or full disk at any moment leaves either the previous file or the complete
new one under the final name, never a half-written file. Data goes to a temporary file in the same
folder, is fsynced, then renamed over the target (rename is atomic on POSIX), and the folder is
fsynced so the new entry survives a power loss. A failed write (full disk, quota, I/O error) removes
its temporary file and raises :class:`~gankit.errors.WriteError` naming the file, the bytes it needed
and the bytes free.

Reads: checkpoints hold only tensors and plain Python values and load with
``torch.load(weights_only=True)``; weights ship as safetensors. Neither can run pickled code."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gankit.errors import CheckpointError, WriteError

CHECKPOINT_RE = re.compile(r"step_(\d+)\.pt$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write fewer than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def free_bytes(folder: str | Path) -> int | None:
    """Bytes available to this user on the disk holding ``folder`` (its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def fsync_folder(folder: str | Path) -> None:
    """Make a folder's entries (a rename into it) durable. Filesystems that cannot sync a folder
    (EINVAL) are left alone."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            write_all(fd, data)
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would make outputs private
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        fsync_folder(path.parent)
    except OSError as e:
        raise WriteError(path, len(data), free_bytes(path.parent), e.strerror or str(e)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
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


def content_digest(obj: Any) -> str:
    """A BLAKE2b digest of a nest of dicts, lists, tuples, tensors and plain values, independent of
    how it is serialised: stored in a checkpoint, it catches a file that still unpickles but whose
    bytes were damaged (zip records carry no checksum that ``torch.load`` verifies)."""
    h = hashlib.blake2b(digest_size=32)

    def feed(x: Any) -> None:
        if torch.is_tensor(x):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(x.shape)};".encode())
            h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
        elif isinstance(x, dict):
            h.update(f"D{len(x)};".encode())
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(f"L{len(x)};".encode())
            for v in x:
                feed(v)
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())

    feed(obj)
    return "blake2b:" + h.hexdigest()


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` that refuses pickled code and names the file in every error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = sorted(set(_GLOBAL_RE.findall(str(e))))
        what = f" ({', '.join(found)})" if found else ""
        raise CheckpointError(
            f"{path}: refused: it holds Python objects other than tensors and plain values{what}; gankit never "
            "runs code from model files. Use a checkpoint written by gankit or a .safetensors file"
        ) from None
    except (zipfile.BadZipFile, EOFError, RuntimeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({e})") from None
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(e).__name__})") from None


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
