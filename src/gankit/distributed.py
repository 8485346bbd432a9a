"""Data-parallel training on ``torch.distributed``, launched by ``torchrun`` (one process per rank).

The contract is *the same computation*: N ranks with ``--batch-size b`` train on exactly the global
batch of N·b items that one process with ``--batch-size N·b`` sees at the same step. A
:class:`Shard` tells a model which part of each global batch is its own: batch sources take the
rank's slice of the global order, random draws are made at the global size on every rank (their
generators stay in lockstep) and sliced, gradients are averaged over ranks after each backward pass,
and batch norm normalises with the statistics of the global batch (:class:`GlobalBatchNorm`). Losses
are means over each rank's b items, so the average of the ranks' gradients is the gradient of the
mean over the global batch.

Gradients are averaged in one flat all-reduce per optimizer step, after the backward pass (the
reduction does not overlap with the backward pass, as DistributedDataParallel's buckets do; on CPU
with gloo and few ranks the difference is small, see docs/distributed.md). Each optimizer averages
only its own parameters, so G and D are reduced separately and a frozen network's parameters are
never touched. The step's loss travels in the same buffer, so every rank sees the same non-finite
loss and refuses it together.
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gankit.errors import GankitError

TIMEOUT_SECONDS = 120
"""How long a collective waits for a rank that has stopped answering before failing."""


class PeerLost(GankitError):
    """Another rank stopped (crashed, killed, or stuck past the timeout)."""


def _collective(fn):
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:
            raise PeerLost(f"lost contact with the other ranks ({str(e).splitlines()[0]})") from None

    return wrapped


@dataclass(frozen=True)
class Shard:
    """This process's part of a data-parallel run: ``rank`` of ``world`` processes
    (``Shard()``: a single process, where every method is the identity)."""

    rank: int = 0
    world: int = 1
    local_world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def virtual(self, k: int, n: int) -> Shard:
        """The ``k``-th of ``n`` ranks this process stands for when it accumulates ``n`` batches per
        update (``--accumulate n``): rank ``rank·n + k`` of ``world·n``, whose draws and batch rows
        are those of that rank in a run with ``n`` times the processes."""
        return Shard(self.rank * n + k, self.world * n, self.local_world * n)

    # --- the rank's part of global draws and batches -----------------------------------------------
    def take(self, global_batch: torch.Tensor) -> torch.Tensor:
        """The rank's rows of a global batch of ``world · b`` rows."""
        if not self.distributed:
            return global_batch
        b = len(global_batch) // self.world
        return global_batch[self.rank * b : (self.rank + 1) * b]

    def randn(self, n: int, *shape: int, device: torch.device | str | None = None) -> torch.Tensor:
        """``torch.randn(n, *shape)`` as rows ``rank·n … (rank+1)·n`` of one global draw of
        ``world·n`` rows from the global generator (the same on every rank)."""
        return self.take(torch.randn(n * self.world, *shape, device=device))

    def randint(self, low: int, high: int, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        return self.take(torch.randint(low, high, (n * self.world,), device=device))

    def rand(self, n: int, *shape: int, device: torch.device | str | None = None) -> torch.Tensor:
        return self.take(torch.rand(n * self.world, *shape, device=device))

    # --- collectives --------------------------------------------------------------------------------
    @_collective
    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    @_collective
    def any(self, flags: Sequence[bool]) -> list[bool]:
        """Element-wise OR of boolean flags over ranks (decisions every rank must take together)."""
        if not self.distributed:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def mean_values(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of each value (every rank passes the same keys)."""
        if not self.distributed:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=_collective_device())
        self.all_reduce_sum_(t)
        return {k: v / self.world for k, v in zip(values, t.tolist())}

    @_collective
    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` (tensors and plain values) as a list on rank 0, None on the others.
        Sent as ``torch.save`` bytes and read back with ``weights_only=True``."""
        if not self.distributed:
            return [obj]
        buf = io.BytesIO()
        torch.save(obj, buf)
        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(buf.getvalue(), out, dst=0)
        return [torch.load(io.BytesIO(b), weights_only=True) for b in out] if out is not None else None

    def average_gradients(self, parameters: Iterable[nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
        """Average the gradients of ``parameters`` over ranks in one flat all-reduce and return the
        mean of ``loss`` over ranks (sent in the same buffer)."""
        if not self.distributed:
            return loss.detach()
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [loss.detach().reshape(1).float()])
        self.all_reduce_sum_(flat).div_(self.world)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        return flat[-1]


SINGLE = Shard()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str) -> Shard:
    """Join the process group torchrun set up in the environment (``gloo`` on CPU, ``nccl`` on CUDA):
    the :class:`Shard` of this process, or :data:`SINGLE` outside torchrun."""
    if not launched_by_torchrun():
        return SINGLE
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        timeout = datetime.timedelta(seconds=TIMEOUT_SECONDS)
        backend = "nccl" if use_cuda else "gloo"
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # the launcher's store, under a prefix of this restart: a restarted group never reads the
            # addresses its failed predecessor published
            store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False,
                                  timeout=timeout)  # fmt: skip
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            prefixed = dist.PrefixStore(f"gankit/attempt_{attempt}", store)
            dist.init_process_group(backend, store=prefixed, rank=rank, world_size=world, timeout=timeout)
        else:
            dist.init_process_group(backend, timeout=timeout)
    return Shard(rank, world, local_world)


def device_for(shard: Shard, device: str) -> str:
    """Each rank on its own GPU (``cuda:LOCAL_RANK``) when the run asks for CUDA or auto on a GPU machine."""
    if shard.distributed and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    return device


def threads_for(shard: Shard, threads: int | None) -> int | None:
    """Ranks on one machine share its cores: each gets ``cores // local ranks`` threads unless the run
    says otherwise."""
    if threads or not shard.distributed:
        return threads
    return max(1, (os.cpu_count() or 1) // shard.local_world)


def run_torchrun(nproc: int, gankit_args: list[str]) -> int:
    """``gankit train … --nproc N``: run ``torchrun --standalone --nproc_per_node N -m gankit …`` and
    return its exit status; SIGTERM and SIGINT are passed on to it (it passes them to the ranks, which
    checkpoint and stop), and then the status is 143 / 130 as for one process."""
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "gankit", *gankit_args]  # fmt: skip
    proc = subprocess.Popen(cmd)
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:  # the ranks checkpointed and stopped; torchrun itself reports a stop by signal as a failure
        return 128 + received[0]
    return 128 - code if code < 0 else code


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# --- batch norm over the global batch -------------------------------------------------------------------------
class _GlobalBatchNormFunction(torch.autograd.Function):
    """Batch norm (Ioffe & Szegedy 2015) with statistics summed over ranks; the backward pass sums the
    two reductions of the incoming gradient over ranks too (as torch's SyncBatchNorm does on CUDA)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, shard):
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = shard.all_reduce_sum_(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        shape = [1, c] + [1] * (x.dim() - 2)
        invstd = torch.rsqrt(var + eps)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.shard, ctx.n, ctx.shape = shard, n, shape
        out = xhat * weight.view(shape) + bias.view(shape) if weight is not None else xhat
        unbiased = var * n / (n - 1).clamp_min(1)
        ctx.mark_non_differentiable(mean, unbiased)
        return out, mean, unbiased

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        xhat, invstd, weight = ctx.saved_tensors
        dims = [0, *range(2, grad_out.dim())]
        sum_dy, sum_dy_xhat = grad_out.sum(dims), (grad_out * xhat).sum(dims)
        c = len(sum_dy)
        total = ctx.shard.all_reduce_sum_(torch.cat([sum_dy, sum_dy_xhat]))
        shape, n = ctx.shape, ctx.n
        scale = invstd if weight is None else invstd * weight
        grad_x = scale.view(shape) * (grad_out - (total[:c] / n).view(shape) - xhat * (total[c:] / n).view(shape))
        grad_w = sum_dy_xhat if weight is not None else None
        grad_b = sum_dy if weight is not None else None
        return grad_x, grad_w, grad_b, None, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A drop-in for ``nn.BatchNorm1d/2d/3d`` whose training-mode statistics are those of the global
    batch over all ranks, on any backend (torch's SyncBatchNorm accepts only CUDA tensors). Same
    parameters, buffers and state-dict keys; in eval mode it is plain batch norm."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, shard: Shard):
        super().__init__(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            setattr(self, name, getattr(bn, name))  # the same tensors: optimizers keep stepping them
        self.shard = shard

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.track_running_stats:
            return super().forward(x)
        out, mean, var = _GlobalBatchNormFunction.apply(x, self.weight, self.bias, self.eps, self.shard)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
                self.running_var.lerp_(var.to(self.running_var.dtype), m)
        return out


def globalise_batch_norm(module: nn.Module, shard: Shard) -> int:
    """Replace every batch-norm layer in ``module`` (in place) by one that sees the global batch:
    :class:`torch.nn.SyncBatchNorm` on CUDA, :class:`GlobalBatchNorm` otherwise. Returns how many."""
    if not shard.distributed:
        return 0
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            on_cuda = next(iter(child.buffers()), torch.empty(0)).is_cuda
            setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child) if on_cuda else
                    GlobalBatchNorm(child, shard))  # fmt: skip
            replaced += 1
        else:
            replaced += globalise_batch_norm(child, shard)
    return replaced
