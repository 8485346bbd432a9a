"""The ``gankit`` console script. It sets process-level OpenMP options, which only take effect when
set before PyTorch loads its OpenMP runtime, then runs :mod:`gankit.cli`. Nothing here imports torch."""

from __future__ import annotations

import os
import sys

OPENMP_SPIN_COUNT = "10000"


def prefer_short_openmp_spin() -> bool:
    """Let idle OpenMP threads spin ~10⁴ rather than libgomp's default 3·10⁵ iterations before they sleep.

    :class:`gankit.nn.conv.TunedConv2d` alternates oneDNN (OpenMP threads) with NNPACK (its own
    thread pool). With the default, OpenMP's workers keep spinning for milliseconds after each
    region and take the cores NNPACK's threads need: in an A/B run at 256 px a training step took 10.9 s
    instead of 9.95 s (plain PyTorch convolutions: 11.7–11.9 s under both settings). Leaves the
    environment alone when the user set ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` or torch is
    already imported; returns whether it set it."""
    if "torch" in sys.modules or "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT
    return True


def main(argv: list[str] | None = None) -> int:
    prefer_short_openmp_spin()
    # No fixed mmap threshold here (the evaluators set one for themselves): for training it turns every
    # large tensor into a fresh mmap whose pages fault in again, 1.6x slower steps (measured, 128 px).
    from gankit.cli import main as cli_main

    return cli_main(argv)
