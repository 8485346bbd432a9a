"""Atomic, pickle-free checkpoints (written through :mod:`gankit.io`). Checkpoints hold only tensors
and plain Python values, so they load with ``torch.load(weights_only=True)`` and can never run
pickled code."""

from __future__ import annotations

import io
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.errors import CheckpointError
from gankit.io import atomic_write_bytes, atomic_write_text  # noqa: F401 (part of this module's API)

CHECKPOINT_RE = re.compile(r"step_(\d+)\.pt$")


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


def rng_state() -> dict[str, Any]:
    """Global RNG states (Python, NumPy, torch CPU and CUDA) as pickle-free values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of ``step_*.pt`` files, oldest first."""
    found = []
    for p in Path(folder).glob("step_*.pt"):
        m = CHECKPOINT_RE.search(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune_checkpoints(folder: Path, keep: int) -> None:
    for _, p in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        p.unlink(missing_ok=True)
