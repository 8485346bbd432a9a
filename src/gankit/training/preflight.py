"""Checks before a run writes anything, so that it does not fail hours in: will the output disk hold
the checkpoints and the exported model, and will the training step fit in memory (the kernel's OOM
killer ends a process with a silent SIGKILL)?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gankit.errors import DiskSpaceError, MemoryLimitError
from gankit.io import free_bytes, list_checkpoints
from gankit.models.base import Model, nested_tensor_bytes
from gankit.runtime import available_memory, resident_memory

MARGIN = 4 << 20
"""Room for config, losses, report pages and the serialisation overhead of each file."""


@dataclass(frozen=True)
class DiskBudget:
    checkpoint: int
    """Bytes of one checkpoint: networks, optimizer moments and the model's extra state at their
    largest during the run."""
    weights: int
    """Bytes of model.safetensors."""
    new_checkpoints: int
    """Checkpoints that will be on disk at once beyond those already there (the newest is written
    before the oldest is pruned)."""

    @property
    def needed(self) -> int:
        return self.new_checkpoints * self.checkpoint + self.weights + MARGIN


def _optimizer_state_bytes(opt) -> int:
    """Bytes of an optimizer's state once every parameter has been stepped: Adam-family optimizers
    keep two moments per parameter; others are counted as they are now."""
    held = nested_tensor_bytes(list(opt.state.values()))
    params = sum(p.numel() * p.element_size() for g in opt.param_groups for p in g["params"])
    moments = 2 if "betas" in opt.defaults else 1
    return max(held, moments * params)


def disk_budget(model: Model, run_dir: Path) -> DiskBudget:
    networks = sum(nested_tensor_bytes(net.state_dict()) for net in model.networks().values())
    optimizers = sum(_optimizer_state_bytes(o) for o in model.optimizers().values())
    checkpoint = networks + optimizers + model.extra_state_bytes()
    exported = model.exported or tuple(model.networks())
    weights = sum(nested_tensor_bytes(n.state_dict()) for k, n in model.networks().items() if k in exported)
    present = len(list_checkpoints(run_dir / "checkpoints"))
    c = model.config
    in_between = 1 if c.checkpoint_minutes > 0 else 0  # the newest timed one, kept beside the schedule
    return DiskBudget(checkpoint, weights, max(1, c.keep_checkpoints + in_between + 1 - present))


def check_disk_space(model: Model, run_dir: Path) -> DiskBudget:
    """Refuse to start when the disk under ``run_dir`` cannot hold the run's checkpoints and model
    (:class:`~gankit.errors.DiskSpaceError`, one line with the sizes)."""
    budget = disk_budget(model, run_dir)
    free = free_bytes(run_dir)
    if free is not None and free < budget.needed:
        mb = 1 / 1e6
        raise DiskSpaceError(
            f"{run_dir}: not enough disk space: the run needs about {budget.needed * mb:,.1f} MB "
            f"({budget.new_checkpoints} checkpoint(s) of {budget.checkpoint * mb:,.1f} MB, the model "
            f"{budget.weights * mb:,.1f} MB and {MARGIN * mb:.1f} MB of logs), {free * mb:,.1f} MB are free; free "
            "space, choose another --out or lower --keep-checkpoints"
        )
    return budget


@dataclass(frozen=True)
class MemoryEstimate:
    resident: int
    """The process now: libraries, data, the networks' weights."""
    gradients: int
    optimizer: int
    extra: int
    activations: int
    workspace: int = 0
    """What the first steps add beyond tensors: kernels compiled on first use, per-thread scratch,
    freed memory the allocator keeps (:data:`STEP_WORKSPACE`)."""

    @property
    def peak(self) -> int:
        return self.resident + self.gradients + self.optimizer + self.extra + self.activations + self.workspace


STEP_WORKSPACE = 300 * 2**20
"""Measured (benchmarks/memory_estimate.py): without it the estimate fell 0.13–0.32 GiB short of the
peak resident memory of 64 and 128 px CycleGAN steps, whose tensors are small."""


def estimate_memory(model: Model) -> MemoryEstimate | None:
    """Peak memory of the training step, or None when the model cannot estimate its activations.
    Measured against ``/usr/bin/time``'s peak RSS for CycleGAN (docs/reliability.md)."""
    activations = model.activation_bytes()
    if activations is None:
        return None
    params = sum(p.numel() * p.element_size() for net in model.networks().values() for p in net.parameters())
    optimizers = sum(_optimizer_state_bytes(o) for o in model.optimizers().values())
    return MemoryEstimate(resident_memory(), params, optimizers, model.extra_state_bytes(), activations,
                          STEP_WORKSPACE)  # fmt: skip


def check_memory(model: Model, log) -> MemoryEstimate | None:
    """Refuse to start (:class:`~gankit.errors.MemoryLimitError`) when the estimated peak exceeds the
    memory available, warn above 80 % of it; ``--no-memory-check`` turns the refusal into a warning."""
    estimate = estimate_memory(model)
    if estimate is None:
        return None
    available, gb = available_memory(), 1 / 2**30
    c, ranks = model.config, model.shard.local_world
    peak = estimate.peak * ranks
    on = f" for {ranks} ranks on this machine" if ranks > 1 else ""
    what = (f"estimated peak memory {peak * gb:.1f} GiB{on} (activations {estimate.activations * gb:.1f} GiB at "
            f"batch {c.batch_size}), {available * gb:.1f} GiB available")  # fmt: skip
    if peak > available and c.memory_check:
        raise MemoryLimitError(f"{what}: the run would be killed by the OS; lower --batch-size or the image size, "
                               "or pass --no-memory-check to try anyway")  # fmt: skip
    log(f"warning: {what}: the run may be killed by the OS" if peak > 0.8 * available else f"memory: {what}")
    return estimate
