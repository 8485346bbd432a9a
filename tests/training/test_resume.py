"""Exact resume for every model kind: N steps in one go == a run SIGKILLed after its first
checkpoint, resumed, and run to N (bit-identical weights of every network, optimizer states and
loss log), in --deterministic mode, on the CPU and (where one is present; CI has none) on a CUDA GPU."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

from .harness import (
    EXACT,
    KINDS,
    assert_same_state,
    checkpoint_steps,
    gankit,
    kill_after_first_checkpoint,
    kind_of,
    resume_run,
)

STEPS, HALF = 12, 6
COMMON = ["--steps", str(STEPS), "--checkpoint-every", str(HALF), "--log-every", "2", *EXACT]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on CI)")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("kind", list(KINDS))
def test_sigkill_and_resume_is_bit_identical(shared_data, tmp_path, kind, device, request):
    if (kind, device) == ("progan", "cuda"):  # seen on an H200 (torch 2.11): two straight runs agree bit for bit
        request.applymarker(pytest.mark.xfail(reason="ProGAN's resumed G differs on CUDA (open)", strict=False))
    args = ["train", kind_of(kind), "--data-root", str(shared_data), *KINDS[kind], *COMMON, "--device", device]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(gankit(*args, "--out", str(straight)), check=True, capture_output=True, env=os.environ)
    kill_after_first_checkpoint(gankit(*args, "--out", str(killed)), killed)
    assert not (killed / "model.safetensors").exists()
    assert checkpoint_steps(killed) == [HALF]
    resumed = resume_run(killed)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from step {HALF}" in resumed.stdout
    assert_same_state(straight, killed, STEPS)
