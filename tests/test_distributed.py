"""Data-parallel training under torchrun (gloo on CPU): the same computation as one process with the
global batch, exact resume of a multi-rank run, restarts, dead ranks, two "nodes" on localhost, and
batch norm over the global batch."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gankit.distributed import SINGLE, GlobalBatchNorm
from gankit.models.persist import read_checkpoint

from .training.harness import assert_same_state, checkpoint_steps, gankit, logged_steps

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
CYCLEGAN = ["cyclegan", "--dataset", "apple2orange", "--size", "32", "--blocks", "1", "--ngf", "8", "--ndf", "8",
            "--seed", "0", "--deterministic", "--threads", "1", "--log-every", "1", "--no-progress"]  # fmt: skip
CGAN = ["cgan", "--z-dim", "8", "--g-width", "4", "--d-width", "4", "--seed", "0", "--deterministic", "--threads", "1",
        "--log-every", "1", "--no-progress"]  # fmt: skip
EXACT = ["--pool-size", "3", "--steps", "12", "--checkpoint-every", "6", "--batch-size", "1"]


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def ranks_of(launcher: int) -> list[int]:
    """The rank processes torchrun started (its children)."""
    return [int(c) for c in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()]


def descendants(pid: int) -> list[int]:
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out += [int(child), *descendants(int(child))]
    return out


def networks(run_dir: Path, step: int) -> dict[str, dict[str, torch.Tensor]]:
    return read_checkpoint(run_dir / "checkpoints" / f"step_{step:07d}.pt")["networks"]


def assert_batch_of_two_computed(a: Path, b: Path, step: int, *, first_rtol: float | None, rtol: float) -> None:
    """Runs ``a`` and ``b`` did the same computation up to float rounding: logged losses within ``rtol``
    (step 1's within ``first_rtol`` when given) and 99 % of the weights at ``step`` within 1e-4 (Adam
    turns the rounding noise of zero-gradient parameters into steps of up to lr)."""
    la = np.genfromtxt(a / "losses.csv", delimiter=",", names=True)
    lb = np.genfromtxt(b / "losses.csv", delimiter=",", names=True)
    for name in la.dtype.names:
        if first_rtol is not None:
            assert abs(la[name][0] - lb[name][0]) <= first_rtol * abs(lb[name][0]), name
        np.testing.assert_allclose(la[name], lb[name], rtol=rtol, err_msg=name)
    wa, wb = networks(a, step), networks(b, step)
    for net, state in wa.items():
        diff = torch.cat([(v.float() - wb[net][k].float()).abs().flatten() for k, v in state.items()])
        assert diff.quantile(0.99) < 1e-4, net


@pytest.fixture(scope="module")
def two_ranks(shared_data, tmp_path_factory) -> Path:
    """A 2-rank CycleGAN run through the `--nproc` shortcut (the pool of 3 fills at step 3)."""
    out = tmp_path_factory.mktemp("dist") / "two-ranks"
    run(gankit("train", *CYCLEGAN, "--data-root", str(shared_data), *EXACT, "--nproc", "2", "--out", str(out)))
    return out


def test_two_ranks_of_batch_1_see_what_one_process_of_batch_2_sees(shared_data, tmp_path):
    """CycleGAN with instance norm, before the history pools fill: losses agree to float rounding at
    every step and weights after 6 steps too. (Adam turns the rounding noise of zero-gradient
    parameters, the convolution biases before instance norm, into steps of up to lr, so the bound
    is on the 99th percentile; a wrong slice of the batch would change step 1's losses by percents.)"""
    common = [*CYCLEGAN, "--data-root", str(shared_data), "--steps", "6", "--checkpoint-every", "6"]
    run([*TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "gankit", "train", *common, "--batch-size", "1",
         "--out", str(tmp_path / "ranks")])  # fmt: skip
    run(gankit("train", *common, "--batch-size", "2", "--out", str(tmp_path / "one")))
    assert_batch_of_two_computed(tmp_path / "ranks", tmp_path / "one", 6, first_rtol=1e-5, rtol=1e-3)


def test_cut_on_two_ranks_draws_the_flips_and_patches_of_one_process(shared_data, tmp_path):
    """CUT with identity NCE and flip equivariance both on: every random draw (flips, patch positions)
    is made per image, so 2 ranks × 1 train as 1 × 2 (losses at every step, weights after 4 steps)."""
    common = ["cut", "--dataset", "apple2orange", "--size", "32", "--blocks", "2", "--ngf", "8", "--ndf", "8",
              "--nce-layers", "input", "down2", "block2", "--nce-patches", "16", "--nce-dim", "16",
              "--flip-equivariance", "--seed", "1", "--deterministic", "--threads", "1", "--log-every", "1",
              "--no-progress", "--data-root", str(shared_data), "--steps", "4", "--checkpoint-every", "4"]  # fmt: skip
    run([*TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "gankit", "train", *common, "--batch-size", "1",
         "--out", str(tmp_path / "ranks")])  # fmt: skip
    run(gankit("train", *common, "--batch-size", "2", "--out", str(tmp_path / "one")))
    assert "NCE_idt" in (tmp_path / "ranks" / "losses.csv").read_text().splitlines()[0]
    assert_batch_of_two_computed(tmp_path / "ranks", tmp_path / "one", 4, first_rtol=None, rtol=1e-4)


@pytest.mark.parametrize("latent", [[], ["--latent-dim", "2"]], ids=["cyclegan", "augmented"])
def test_accumulating_two_batches_is_the_computation_of_two_ranks(shared_data, tmp_path, latent):
    """``--accumulate 2 --batch-size 1`` trains on the rows and random draws (latent codes included) of
    two ranks, summing the gradients before one update: equal to one process of batch 2 up to float
    rounding (bit-identical to ``--nproc 2`` in a 4-step check, not repeated here to save a
    launch), and its resume is exact."""
    common = [*CYCLEGAN, *latent, "--data-root", str(shared_data), "--steps", "4", "--checkpoint-every", "2",
              "--keep-checkpoints", "5"]  # fmt: skip
    run(gankit("train", *common, "--batch-size", "1", "--accumulate", "2", "--out", str(tmp_path / "acc")))
    run(gankit("train", *common, "--batch-size", "2", "--out", str(tmp_path / "one")))
    assert_batch_of_two_computed(tmp_path / "acc", tmp_path / "one", 4, first_rtol=1e-5, rtol=1e-3)
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "acc", resumed)
    (resumed / "checkpoints" / "step_0000004.pt").unlink()
    (resumed / "losses.csv").write_text("".join((tmp_path / "acc" / "losses.csv").read_text().splitlines(True)[:3]))
    run(gankit("train", "--resume", str(resumed), "--no-progress"))
    assert_same_state(tmp_path / "acc", resumed, 4)


def test_accumulating_keeps_the_history_pools_of_the_ranks_it_stands_for(shared_data, two_ranks, tmp_path):
    """With a pool per rank it stands for, ``--accumulate 2`` stays the computation of 2 ranks after
    the pools fill: bit-identical to the 2-rank run at step 12 (weights, optimizer moments, loss log)."""
    acc = tmp_path / "acc"
    run(gankit("train", *CYCLEGAN, "--data-root", str(shared_data), *EXACT, "--accumulate", "2", "--out", str(acc)))
    assert_same_state(two_ranks, acc, 12)


PHOTOS = ["--size", "32", "--dataset", "apple2orange"]


@pytest.mark.parametrize(
    "kind, flags", [("cut", PHOTOS), ("cgan", ["--z-dim", "8"]), ("cyclegan", [*PHOTOS, "--norm", "batch"])]
)
def test_accumulation_that_would_not_equal_ranks_is_refused(shared_data, tmp_path, capsys, kind, flags):
    """CUT and cgan train G against the D updated earlier in the same step, and batch norm would see
    each accumulated batch alone: refused in one line that names the flag and what to use instead."""
    from gankit.cli import main

    status = main(["train", kind, *flags, "--data-root", str(shared_data), "--accumulate", "2", "--steps", "1",
                   "--no-progress", "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("gankit: error: --accumulate 2:") and "--nproc 2" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_two_ranks_of_batch_8_equal_one_of_16_with_batch_norm(shared_data, tmp_path):
    """cgan (batch norm in G and D): the global-batch norm makes 2 × 8 the same computation as 1 × 16."""
    common = [*CGAN, "--data-root", str(shared_data), "--steps", "6", "--checkpoint-every", "6"]
    run(gankit("train", *common, "--batch-size", "8", "--nproc", "2", "--out", str(tmp_path / "ranks")))
    run(gankit("train", *common, "--batch-size", "16", "--out", str(tmp_path / "one")))
    wa, wb = networks(tmp_path / "ranks", 6), networks(tmp_path / "one", 6)
    for net, state in wa.items():
        for k, v in state.items():
            torch.testing.assert_close(v.float(), wb[net][k].float(), atol=1e-5, rtol=1e-4, msg=f"{net}.{k}")


def test_a_two_rank_run_resumes_bit_identically_after_the_pools_fill(shared_data, two_ranks, tmp_path):
    killed = tmp_path / "killed"
    cmd = gankit("train", *CYCLEGAN, "--data-root", str(shared_data), *EXACT, "--nproc", "2", "--out", str(killed))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not checkpoint_steps(killed) and time.time() < deadline:
        time.sleep(0.01)
    for pid in [proc.pid, *descendants(proc.pid)]:  # the launcher and both ranks, as a node failure would
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint_steps(killed) == [6]
    state = read_checkpoint(killed / "checkpoints" / "step_0000006.pt")
    assert [len(r["extra"]["pool_a"]["images"]) for r in state["ranks"]] == [3, 3]  # each rank's own pool
    resumed = run(gankit("train", "--resume", str(killed), "--nproc", "2", "--no-progress"))
    assert "from step 6" in resumed.stdout
    assert_same_state(two_ranks, killed, 12)


def test_two_nodes_on_localhost_equal_one_node_with_two_ranks(shared_data, two_ranks, tmp_path):
    out = tmp_path / "nodes"
    port = 29500 + os.getpid() % 1000
    launchers = [subprocess.Popen([*TORCHRUN, "--nnodes", "2", "--node_rank", str(r), "--nproc_per_node", "1",
                                   "--rdzv_backend", "static", "--master_addr", "127.0.0.1", "--master_port",
                                   str(port), "-m", "gankit", "train", *CYCLEGAN, "--data-root", str(shared_data),
                                   *EXACT, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for r in (0, 1)]  # fmt: skip
    for p in launchers:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-3000:]
    assert_same_state(two_ranks, out, 12)


def test_the_run_folder_of_two_ranks_works_with_every_command(shared_data, two_ranks, tmp_path):
    assert (two_ranks / "model.safetensors").is_file() and logged_steps(two_ranks) == 12
    photo = sorted((shared_data / "apple2orange" / "testA").iterdir())[0]
    run(gankit("translate", str(two_ranks), str(photo), "--out", str(tmp_path / "t")))
    assert list((tmp_path / "t").glob("*.png"))


def test_torchrun_restarts_a_failed_group_from_the_newest_checkpoint(shared_data, tmp_path):
    out = tmp_path / "restarts"
    cmd = [*TORCHRUN, "--standalone", "--nproc_per_node", "2", "--max-restarts", "1", "-m", "gankit", "train",
           *CYCLEGAN, "--data-root", str(shared_data), "--steps", "40", "--checkpoint-every", "5",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not checkpoint_steps(out) and time.time() < deadline:
        time.sleep(0.01)
    os.kill(ranks_of(proc.pid)[-1], signal.SIGKILL)  # one rank dies
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert "resuming" in stdout and checkpoint_steps(out)[-1] == 40


def test_a_dead_rank_without_restarts_ends_the_run_and_never_hangs(shared_data, tmp_path):
    out = tmp_path / "dead"
    cmd = [*TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "gankit", "train", *CYCLEGAN, "--data-root",
           str(shared_data), "--steps", "100000", "--checkpoint-every", "5", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while logged_steps(out) < 3 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(ranks_of(proc.pid)[-1], signal.SIGKILL)
    start = time.time()
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and time.time() - start < 60
    for step in checkpoint_steps(out):
        assert read_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt")["step"] == step


def test_sigterm_to_the_nproc_launcher_checkpoints_every_rank_at_one_step(shared_data, tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen(gankit("train", *CYCLEGAN, "--data-root", str(shared_data), "--steps", "100000",
                                   "--checkpoint-every", "100000", "--nproc", "2", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while logged_steps(out) < 3 and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert len(checkpoint_steps(out)) == 1, err[-3000:]
    (step,) = checkpoint_steps(out)
    state = read_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt")
    assert len(state["ranks"]) == 2 and logged_steps(out) == step
    assert f"stopped by SIGTERM at step {step}" in err


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 5, 5)])
def test_global_batch_norm_is_batch_norm_on_one_rank(shape):
    torch.manual_seed(0)
    reference = nn.BatchNorm1d(4) if len(shape) == 2 else nn.BatchNorm2d(4)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    ours = GlobalBatchNorm(reference, SINGLE)
    assert ours.weight is reference.weight  # the same parameters: optimizers keep stepping them
    twin = nn.BatchNorm1d(4) if len(shape) == 2 else nn.BatchNorm2d(4)
    twin.load_state_dict(reference.state_dict())
    x = torch.randn(*shape, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    g = torch.randn(*shape)
    (ours(x) * g).sum().backward()
    (twin(x2) * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(reference.weight.grad, twin.weight.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(reference.bias.grad, twin.bias.grad)
    torch.testing.assert_close(ours.running_mean, twin.running_mean)
    torch.testing.assert_close(ours.running_var, twin.running_var)
    ours.eval()
    twin.eval()
    torch.testing.assert_close(ours(x.detach()), twin(x.detach()))


@pytest.mark.parametrize("kind", ["sgan", "progan"])
def test_sgan_and_progan_train_on_two_ranks_in_lockstep(shared_data, tmp_path, kind):
    """Not the same computation as one process (SGAN's dropout masks and ProGAN's minibatch-std groups
    see each rank's batch only; docs/distributed.md), but what must hold does: both ranks draw from
    random streams in lockstep and consume the data at one position, and the run folder is complete."""
    extra = {"sgan": ["--z-dim", "8", "--g-width", "4", "--d-width", "4", "--batch-size", "8", "--baseline-steps", "1"],
             "progan": ["--dataset", "mnist", "--latent-dim", "8", "--fmap-base", "32", "--fmap-max", "8",
                        "--batch-size", "4"]}[kind]  # fmt: skip
    out = tmp_path / kind
    run(gankit("train", kind, *extra, "--data-root", str(shared_data), "--steps", "4", "--threads", "1",
               "--lr-scaling", "linear", "--warmup-steps", "2", "--no-progress", "--nproc", "2",
               "--out", str(out)))  # fmt: skip
    state = read_checkpoint(out / "checkpoints" / "step_0000004.pt")
    a, b = state["ranks"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"]) and a["data"].keys() == b["data"].keys()
    assert (out / "model.safetensors").is_file() and logged_steps(out) >= 1
