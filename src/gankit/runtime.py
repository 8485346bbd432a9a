"""Run-time environment: device, threads, determinism, random seeds, autocast (used by training and
inference alike)."""

from __future__ import annotations

import contextlib
import functools
import os
import random

import numpy as np
import torch

from gankit.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_runtime(*, threads: int | None, deterministic: bool) -> None:
    """Thread count and deterministic kernels. Deterministic mode makes two runs (or a run and its
    resumed continuation) bit-identical on the same machine and thread count."""
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 autocast or None. ``auto`` picks bf16 on CUDA GPUs that support it and nothing on
    CPU, where bf16 autocast was measured slower without AMX (see docs/benchmarks.md)."""
    if amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("--amp fp16: needs a CUDA device; use --amp bf16 on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -3, -4, -8  # glibc mallopt parameters
GLIBC_MMAP_MAX = 65536
"""glibc's default ``M_MMAP_MAX`` (``DEFAULT_MMAP_MAX``)."""
GLIBC_TRIM_THRESHOLD = 128 * 1024
"""glibc's default ``M_TRIM_THRESHOLD``."""
KEEP_FREED = 2**31 - 1
"""The highest trim threshold ``mallopt`` takes (an int): freed memory stays with the process."""
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
"""The highest threshold glibc's own adjustment reaches on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``)."""


class HeapPolicy:
    """The process's glibc mmap threshold, which evaluators set and their training loops relax.

    glibc raises its mmap threshold each time a large mmapped block is freed, after which large
    tensors come from the heap, whose freed space is fragmented and rarely returned: streaming 2,500
    image pairs of 256 px through PSNR/SSIM then peaked at 2.2 GB resident instead of ~0.5 GB
    (1,200 pairs: 1,154 MB vs 450 MB with a fixed threshold, measured). :meth:`bound` fixes the
    threshold, which turns that adjustment off. A training loop of same-sized batches is the opposite
    case: with a low fixed threshold every activation is a fresh mmap whose pages fault in again (the
    64 px domain classifier of the demo spent 61 of its 115 CPU-s in the kernel, 13 of 65 without), so
    :meth:`reusing_heap` serves allocations up to ``MMAP_THRESHOLD_MAX`` from the heap while it runs.
    Evaluators call ``HEAP.bound()`` first. One instance per process (:data:`HEAP`), because the setting
    it mirrors is per process."""

    def __init__(self):
        self.threshold: int | None = None

    @contextlib.contextmanager
    def for_training(self):
        """Inside: every allocation comes from the one main heap and freed memory stays there (no mmap,
        no trimming, one arena); after: glibc's mmap and trim defaults again, the free heap returned to
        the system, and the mmap threshold where it was (bound) or where glibc's own adjustment ends.

        A training step allocates the same tensors every step. glibc serves each one of 32 MiB or
        more (its highest mmap threshold) with a fresh mmap whose pages fault in again on every step:
        CUT at 256 px (128 channels × 256² × batch 2 = 64 MiB maps) spent ~25 % of its step on that
        (``benchmarks/translator_speed.py --heaps training glibc``). One arena keeps the threads'
        allocations in the one heap the next step reuses. The loop enters this after the first step,
        whose convolution tuning makes temporaries that would otherwise stay in the heap (CUT at
        256 px: 4.1 GB resident instead of 3.4 GB)."""
        if not _mallopt(M_MMAP_MAX, 0):  # not glibc
            yield
            return
        _mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
        _mallopt(M_ARENA_MAX, 1)
        try:
            yield
        finally:
            _mallopt(M_ARENA_MAX, 0)
            _mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
            _mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)
            _mallopt(M_MMAP_THRESHOLD, self.threshold or MMAP_THRESHOLD_MAX)
            _malloc_trim()

    def bound(self, threshold: int = 128 * 1024) -> bool:
        """Serve allocations ≥ ``threshold`` bytes with mmap from now on (glibc only); whether applied."""
        applied = _set_mmap_threshold(threshold)
        if applied:
            self.threshold = threshold
        return applied

    @contextlib.contextmanager
    def reusing_heap(self):
        """Inside: heap allocations up to ``MMAP_THRESHOLD_MAX``, when the threshold was bound (unbound,
        glibc adapts by itself and nothing changes); after: the bound threshold again."""
        if self.threshold is None or not _set_mmap_threshold(MMAP_THRESHOLD_MAX):
            yield
            return
        try:
            yield
        finally:
            _set_mmap_threshold(self.threshold)


@functools.cache
def _libc():
    """glibc, or None elsewhere; looked up once (``find_library`` runs ``ldconfig`` in a subprocess)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _mallopt(parameter: int, value: int) -> bool:
    libc = _libc()
    return bool(libc is not None and hasattr(libc, "mallopt") and libc.mallopt(parameter, value))


def _malloc_trim() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _set_mmap_threshold(threshold: int) -> bool:
    return _mallopt(M_MMAP_THRESHOLD, threshold)


HEAP = HeapPolicy()


def available_memory() -> int:
    """Bytes of memory available to new work: ``MemAvailable`` of /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def resident_memory() -> int:
    """Bytes of this process's resident memory now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
