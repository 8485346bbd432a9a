"""One kill/resume harness for the resume and fault tests: start ``gankit`` in a subprocess, stop it
with a signal at a chosen moment, resume it, and compare its final state with an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gankit.io import list_checkpoints
from gankit.models.persist import read_checkpoint
from gankit.models.registry import model_class

# tiny, deterministic settings of every registered kind: seconds per run on one thread
KINDS = {
    "cyclegan": ["--dataset", "apple2orange", "--size", "32", "--load-size", "36", "--blocks", "1", "--ngf", "8",
                 "--ndf", "8", "--pool-size", "3", "--dropout", "0.2", "--workers", "1"],
    "cyclegan-augmented": ["--dataset", "apple2orange", "--size", "32", "--load-size", "36", "--blocks", "1", "--ngf",
                           "8", "--ndf", "8", "--pool-size", "3", "--dropout", "0.2", "--workers", "1",
                           "--latent-dim", "4", "--encoder-width", "8", "--cycle-noise", "0.1"],
    "cyclegan-semantic": ["--dataset", "mnist-usps", "--blocks", "1", "--ngf", "8", "--ndf", "8", "--pool-size",
                          "3", "--workers", "1", "--semantic-loss", "--semantic-source", "b", "--semantic-steps",
                          "10", "--cycle-noise", "0.1"],
    "cut": ["--dataset", "apple2orange", "--size", "32", "--load-size", "36", "--blocks", "2", "--ngf", "8", "--ndf",
            "8", "--nce-layers", "input", "down1", "down2", "block2", "--nce-patches", "16", "--nce-dim", "16",
            "--workers", "1"],
    "fastcut": ["--dataset", "apple2orange", "--size", "32", "--load-size", "36", "--blocks", "2", "--ngf", "8",
                "--ndf", "8", "--nce-layers", "input", "down2", "block1", "--nce-patches", "16", "--nce-dim", "16",
                "--workers", "1"],
    "cgan": ["--z-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8", "--n-critic", "2"],
    "sgan": ["--z-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8", "--baseline-steps", "1"],
    "progan": ["--dataset", "mnist", "--latent-dim", "8", "--fmap-base", "32", "--fmap-max", "8", "--batch-size", "4"],
}  # fmt: skip
VARIANTS = {"cyclegan-augmented": "cyclegan", "cyclegan-semantic": "cyclegan"}
"""Entries of KINDS that train a registered kind with an option (Augmented CycleGAN is `cyclegan --latent-dim`)."""
EXACT = ["--seed", "3", "--deterministic", "--threads", "1", "--no-progress", "--sample-every", "1000"]


def kind_of(name: str) -> str:
    """The model kind `gankit train` takes for the entry ``name`` of KINDS."""
    return VARIANTS.get(name, name)


def step_class(name: str) -> type:
    """The class whose ``train_step`` a run of the entry ``name`` calls (a variant has its own)."""
    if name == "cyclegan-augmented":
        from gankit.models.augmented import AugmentedCycleGANModel

        return AugmentedCycleGANModel
    return model_class(kind_of(name))


def gankit(*args: str) -> list[str]:
    return [sys.executable, "-m", "gankit", *args]


def checkpoint_steps(run: Path) -> list[int]:
    return [s for s, _ in list_checkpoints(run / "checkpoints")]


def logged_steps(run: Path) -> int:
    csv = run / "losses.csv"
    return max(0, len(csv.read_text().splitlines()) - 1) if csv.is_file() else 0


def start_and_signal(argv: list[str], ready: Callable[[], bool], sig: int = signal.SIGKILL, delay: float = 0.0,
                     timeout: float = 120) -> subprocess.CompletedProcess:  # fmt: skip
    """Run ``argv``; once ``ready()`` holds (and ``delay`` seconds more) send ``sig``; wait for the end."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def kill_after_first_checkpoint(argv: list[str], run: Path) -> None:
    """SIGKILL ``argv`` as soon as a checkpoint exists (so mid-run, maybe mid-write)."""
    done = start_and_signal(argv, lambda: bool(list_checkpoints(run / "checkpoints")))
    assert done.returncode == -signal.SIGKILL, "training finished before it could be killed"


def resume_run(run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(gankit("train", "--resume", str(run), "--no-progress", *extra), capture_output=True,
                          text=True, env=os.environ)  # fmt: skip


def assert_same_state(a: Path, b: Path, step: int) -> None:
    """The newest checkpoints of two runs hold bit-identical networks and optimizer states at ``step``,
    and their loss logs are equal."""
    sa = read_checkpoint(list_checkpoints(a / "checkpoints")[-1][1])
    sb = read_checkpoint(list_checkpoints(b / "checkpoints")[-1][1])
    assert sa["step"] == sb["step"] == step
    for net, state in sa["networks"].items():
        assert all(torch.equal(v, sb["networks"][net][k]) for k, v in state.items()), f"{net} differs after resume"
    for name, opt in sa["optimizers"].items():
        for k, s in opt["state"].items():
            assert all(
                torch.equal(v, sb["optimizers"][name]["state"][k][n]) for n, v in s.items() if torch.is_tensor(v)
            )
    assert (a / "losses.csv").read_text() == (b / "losses.csv").read_text()
