"""Learning-rate schedules as pure functions of the step (nothing to checkpoint but the step)."""

from __future__ import annotations


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


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
