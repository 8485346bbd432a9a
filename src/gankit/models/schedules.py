"""Learning-rate schedules as pure functions of the step (nothing to checkpoint but the step)."""

from __future__ import annotations

import math


def lr_factor(
    step: int, total_steps: int, kind: str = "linear", *, decay_start: float = 0.5, time_decay: float = 0.0
) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based).

    - ``linear``: constant for the first ``decay_start`` share of training, then linear decay to 0
      (CycleGAN §4: 100 epochs constant + 100 decaying).
    - ``constant``: 1.
    - ``inverse-time``: 1 / (1 + time_decay · step), the Keras ``decay`` argument used by seed 000.
    """
    if kind == "constant":
        return 1.0
    if kind == "inverse-time":
        return 1.0 / (1.0 + time_decay * step)
    if kind == "linear":
        start = int(total_steps * decay_start)
        if step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start) / max(1, total_steps - start))
    raise ValueError(f"unknown schedule {kind!r}")


def global_batch_factor(scaling: str, ranks: int, warmup_steps: int, step: int) -> float:
    """Multiplier of every learning rate at ``step`` (1-based) for a global batch of ``ranks`` times
    the batch the rates were tuned for: ``linear`` scales by ``ranks`` (Goyal et al. 2017, "Accurate,
    large minibatch SGD"), ``sqrt`` by its square root (Krizhevsky 2014), ``none`` leaves them; a
    warm-up ramps the multiplier linearly from 1/warmup_steps of it to all of it over the first
    ``warmup_steps`` steps (a pure function of the step, so resume stays exact)."""
    target = {"none": 1.0, "linear": float(ranks), "sqrt": math.sqrt(ranks)}[scaling]
    return target * min(1.0, step / warmup_steps) if warmup_steps > 0 else target


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
