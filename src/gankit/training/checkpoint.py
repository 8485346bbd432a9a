"""Training-state helpers: RNG states as pickle-free values (so a checkpoint restores every random
stream) and pruning of old checkpoints. File formats live in :mod:`gankit.io`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.io import list_checkpoints


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


def prune_checkpoints(folder: Path, keep: int, every: int = 0, last_step: int | None = None) -> None:
    """Keep the newest ``keep`` checkpoints at multiples of ``every`` or at the run's ``last_step`` (the
    schedule a user asked for, which evaluations at fixed intervals read) and, of those written in between (by the
    ``--checkpoint-minutes`` timer or a stop), only the newest, while it is newer than every scheduled
    one: a slow or starved run must not push its scheduled checkpoints out. ``every`` 0: the newest
    ``keep`` of all."""
    found = list_checkpoints(folder)
    on_schedule = {s for s, _ in found if every <= 0 or s % every == 0 or s == last_step}
    scheduled = [(s, p) for s, p in found if s in on_schedule]
    between = [(s, p) for s, p in found if s not in on_schedule]
    doomed = scheduled[:-keep] if keep > 0 else []
    if between:
        newest_scheduled = scheduled[-1][0] if scheduled else -1
        doomed += between[:-1] if between[-1][0] > newest_scheduled else between
    for _, p in doomed:
        p.unlink(missing_ok=True)
