"""The GPU paths (skipped where no CUDA GPU is present, as on CI): a run trained on the GPU is portable
(it loads and translates on a CPU-only machine, as the same networks do on the GPU), and bf16 / fp16
autocast train with finite losses. Exact resume on the GPU is in test_resume.py."""

from __future__ import annotations

import csv
import math
import os
import subprocess

import pytest
import torch

from gankit.api import CycleGAN

from .harness import EXACT, KINDS, gankit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on CI)")


def train_on_cuda(shared_data, out, *extra: str) -> None:
    args = ["train", "cyclegan", "--data-root", str(shared_data), *KINDS["cyclegan"], *EXACT, "--steps", "6",
            "--log-every", "1", "--device", "cuda", "--out", str(out), *extra]  # fmt: skip
    done = subprocess.run(gankit(*args), capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, done.stderr


def test_a_run_trained_on_the_gpu_translates_alike_on_the_cpu(shared_data, tmp_path):
    train_on_cuda(shared_data, tmp_path / "run")
    on_cpu, on_gpu = CycleGAN.load(tmp_path / "run", "cpu"), CycleGAN.load(tmp_path / "run", "cuda")
    assert next(on_gpu.parameters()).is_cuda and not next(on_cpu.parameters()).is_cuda
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        cpu, gpu = on_cpu.generator("a2b")(x), on_gpu.generator("a2b")(x.cuda()).cpu()
    assert cpu.abs().mean() > 0.01  # a real output, not zeros
    assert torch.allclose(cpu, gpu, atol=1e-3), (cpu - gpu).abs().max()


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_on_the_gpu_trains_with_finite_losses(shared_data, tmp_path, amp):
    train_on_cuda(shared_data, tmp_path / "run", "--amp", amp)
    with open(tmp_path / "run" / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    values = [float(v) for row in rows for k, v in row.items() if k != "step"]
    assert len(values) >= 6 * 8 and all(math.isfinite(v) for v in values)
