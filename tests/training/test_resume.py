"""Exact resume for every model kind: N steps in one go == a run SIGKILLed after its first
checkpoint, resumed, and run to N (bit-identical weights of every network, optimizer states and
loss log), in --deterministic mode. One kill/resume harness for all kinds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gankit.io import list_checkpoints
from gankit.models.persist import read_checkpoint

STEPS, HALF = 12, 6
COMMON = ["--steps", str(STEPS), "--checkpoint-every", str(HALF), "--sample-every", "1000", "--log-every", "2",
          "--seed", "3", "--deterministic", "--threads", "1", "--no-progress"]  # fmt: skip
KINDS = {
    "cyclegan": ["--dataset", "apple2orange", "--size", "32", "--load-size", "36", "--blocks", "1", "--ngf", "8",
                 "--ndf", "8", "--pool-size", "3", "--dropout", "0.2", "--workers", "1"],
    "cgan": ["--z-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8", "--n-critic", "2"],
    "sgan": ["--z-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8", "--baseline-steps", "1"],
    "progan": ["--dataset", "mnist", "--latent-dim", "8", "--fmap-base", "32", "--fmap-max", "8", "--batch-size", "4"],
}  # fmt: skip


def gankit(*args: str) -> list[str]:
    return [sys.executable, "-m", "gankit", *args]


def kill_after_first_checkpoint(argv: list[str], run: Path, timeout: float = 120) -> None:
    """Start ``argv``, SIGKILL it as soon as a checkpoint exists (so mid-run, maybe mid-write)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not list_checkpoints(run / "checkpoints") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"


def assert_same_state(a: Path, b: Path) -> None:
    sa = read_checkpoint(list_checkpoints(a / "checkpoints")[-1][1])
    sb = read_checkpoint(list_checkpoints(b / "checkpoints")[-1][1])
    assert sa["step"] == sb["step"] == STEPS
    for net, state in sa["networks"].items():
        assert all(torch.equal(v, sb["networks"][net][k]) for k, v in state.items()), f"{net} differs after resume"
    for name, opt in sa["optimizers"].items():
        for k, s in opt["state"].items():
            assert all(
                torch.equal(v, sb["optimizers"][name]["state"][k][n]) for n, v in s.items() if torch.is_tensor(v)
            )
    assert (a / "losses.csv").read_text() == (b / "losses.csv").read_text()


@pytest.mark.parametrize("kind", list(KINDS))
def test_sigkill_and_resume_is_bit_identical(shared_data, tmp_path, kind):
    args = ["train", kind, "--data-root", str(shared_data), *KINDS[kind], *COMMON]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(gankit(*args, "--out", str(straight)), check=True, capture_output=True, env=os.environ)
    kill_after_first_checkpoint(gankit(*args, "--out", str(killed)), killed)
    assert not (killed / "model.safetensors").exists()
    assert [s for s, _ in list_checkpoints(killed / "checkpoints")] == [HALF]
    resumed = subprocess.run(gankit("train", "--resume", str(killed), "--no-progress"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from step {HALF}" in resumed.stdout
    assert_same_state(straight, killed)
