"""Exact resume: N steps in one go == N/2 steps, SIGKILL, resume, N/2 more (bit-identical weights)."""

import os
import signal
import subprocess
import sys
import time

import torch

from gankit.io import list_checkpoints, load_safetensors, safe_torch_load

STEPS, HALF = 40, 20


def train_args(data_root, out):
    return [
        sys.executable, "-m", "gankit.cli", "train", "cyclegan", "--dataset", "apple2orange",
        "--data-root", str(data_root), "--size", "32", "--load-size", "36", "--steps", str(STEPS),
        "--generator", "resnet", "--blocks", "1", "--ngf", "8", "--ndf", "8", "--pool-size", "5",
        "--seed", "3", "--deterministic", "--checkpoint-every", str(HALF), "--sample-every", "1000",
        "--log-every", "5", "--threads", "1", "--out", str(out), "--no-progress", "--dropout", "0.2",
    ]  # fmt: skip


def test_sigkill_and_resume_is_bit_identical(shared_data, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = tmp_path / "straight"
    subprocess.run(train_args(shared_data, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_args(shared_data, killed), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not list_checkpoints(killed / "checkpoints") and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (killed / "model.safetensors").exists()
    assert [s for s, _ in list_checkpoints(killed / "checkpoints")] == [HALF]

    resumed = subprocess.run(
        [sys.executable, "-m", "gankit.cli", "train", "--resume", str(killed), "--no-progress"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"from step {HALF}" in resumed.stdout

    a, _ = load_safetensors(straight / "model.safetensors")
    b, _ = load_safetensors(killed / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "generator weights differ after resume"
    sa = safe_torch_load(list_checkpoints(straight / "checkpoints")[-1][1])
    sb = safe_torch_load(list_checkpoints(killed / "checkpoints")[-1][1])
    assert sa["step"] == sb["step"] == STEPS
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])  # discriminators too
    assert (straight / "losses.csv").read_text() == (killed / "losses.csv").read_text()
