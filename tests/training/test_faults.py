"""Fault injection: preemption (SIGTERM / SIGINT), SIGKILL storms, full disks at every write site, a
too-small disk, images that vanish under a run and a data-loading worker killed by the OS. Each fault
ends in one line naming what failed, exit status 143 / 130 / 1, no temporary files, every checkpoint
loadable, and a run that resumes (bit-identically in deterministic mode)."""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.models.persist import read_checkpoint

from .harness import (
    EXACT,
    KINDS,
    assert_same_state,
    checkpoint_steps,
    gankit,
    kind_of,
    logged_steps,
    resume_run,
    start_and_signal,
    step_class,
)


@pytest.fixture
def restore_runtime():
    """In-process runs set torch's thread count and deterministic mode; put them back."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def _args(shared_data: Path, kind: str, run: Path, steps: int, *extra: str) -> list[str]:
    return ["train", kind_of(kind), "--data-root", str(shared_data), *KINDS[kind], *EXACT, "--steps", str(steps),
            "--log-every", "1", "--checkpoint-minutes", "0", "--out", str(run), *extra]  # fmt: skip


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def _leftover_temp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*.tmp")]


# --- preemption ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_sigterm_in_a_step_checkpoints_that_step_and_resumes_exactly(shared_data, tmp_path, monkeypatch, capsys,
                                                                     restore_runtime, kind):  # fmt: skip
    """SIGTERM arrives in the middle of step 3: the step finishes, its checkpoint is written, exit 143;
    the resumed run equals an uninterrupted one bit for bit."""
    cls = step_class(kind)
    original = cls.train_step

    def preempted_at_3(self, batches, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # lands mid-step: the handler only records it
        return original(self, batches, step)

    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main(_args(shared_data, kind, straight, 6, "--checkpoint-every", "100", "--workers", "0")) == 0
    monkeypatch.setattr(cls, "train_step", preempted_at_3)
    assert main(_args(shared_data, kind, run, 6, "--checkpoint-every", "100", "--workers", "0")) == 143
    err = capsys.readouterr().err
    assert _last_line(err).startswith("gankit: stopped by SIGTERM at step 3 of 6")
    assert checkpoint_steps(run) == [3] and logged_steps(run) == 3
    assert not (run / "model.safetensors").exists() and not _leftover_temp_files(run)
    monkeypatch.setattr(cls, "train_step", original)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert_same_state(straight, run, 6)


def test_kill_term_pid_exits_143_with_the_step_it_reached(shared_data, tmp_path):
    """The acceptance form: a real `kill -TERM PID` on a CycleGAN run with a data-loading worker."""
    run = tmp_path / "run"
    done = start_and_signal(gankit(*_args(shared_data, "cyclegan", run, 100000, "--checkpoint-every", "100000")),
                            lambda: logged_steps(run) >= 3, signal.SIGTERM)  # fmt: skip
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr
    reached = int(re.search(r"stopped by SIGTERM at step (\d+) of 100000", _last_line(done.stderr)).group(1))
    assert checkpoint_steps(run) == [reached] and reached >= 3
    assert logged_steps(run) == reached  # at most the step in flight was lost: none here
    resumed = resume_run(run, "--steps", str(reached + 2))
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint_steps(run)[-1] == reached + 2


def test_ctrl_c_exits_130_with_a_checkpoint(shared_data, tmp_path):
    run = tmp_path / "run"
    done = start_and_signal(gankit(*_args(shared_data, "cgan", run, 100000, "--checkpoint-every", "100000")),
                            lambda: logged_steps(run) >= 2, signal.SIGINT)  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "stopped by SIGINT" in _last_line(done.stderr)
    step = checkpoint_steps(run)
    assert len(step) == 1 and read_checkpoint(run / "checkpoints" / f"step_{step[0]:07d}.pt")["step"] == step[0]


def test_sigterm_during_a_checkpoint_write_keeps_it_whole(shared_data, tmp_path, monkeypatch, capsys, restore_runtime):
    import gankit.training.loop as loop

    original = loop.save_checkpoint

    def signalled_while_saving(model, source, run_dir, step, *rest):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(model, source, run_dir, step, *rest)

    monkeypatch.setattr(loop, "save_checkpoint", signalled_while_saving)
    run = tmp_path / "run"
    assert main(_args(shared_data, "cgan", run, 6, "--checkpoint-every", "2")) == 143
    assert "stopped by SIGTERM at step 2 of 6" in capsys.readouterr().err
    assert checkpoint_steps(run) == [2] and read_checkpoint(run / "checkpoints" / "step_0000002.pt")["step"] == 2
    assert not _leftover_temp_files(run)


def test_checkpoint_minutes_adds_a_time_cadence(shared_data, tmp_path, monkeypatch, restore_runtime):
    """With --checkpoint-minutes, a checkpoint follows every step once that much time has passed since the
    last one, whatever --checkpoint-every says (the clock is advanced one minute per step here)."""
    import gankit.training.loop as loop
    from gankit.training.checkpoint import prune_checkpoints

    class MinuteClock:
        """A monotonic clock that advances 61 s per reading (every step looks overdue)."""

        now = 0.0
        perf_counter = staticmethod(time.perf_counter)
        process_time = staticmethod(time.process_time)

        @classmethod
        def monotonic(cls):
            cls.now += 61.0
            return cls.now

    monkeypatch.setattr(loop, "time", MinuteClock)
    monkeypatch.setattr(loop, "prune_checkpoints", lambda *args: None)  # to see every checkpoint written
    run = tmp_path / "run"
    args = _args(shared_data, "cgan", run, 6, "--checkpoint-every", "100", "--keep-checkpoints", "10")
    args[args.index("--checkpoint-minutes") + 1] = "1"
    assert main(args) == 0
    assert checkpoint_steps(run) == [1, 2, 3, 4, 5, 6]
    prune_checkpoints(run / "checkpoints", 10, 100)
    assert checkpoint_steps(run) == [6]  # timed checkpoints are kept only until the next one


def test_sigkill_storm_ends_with_the_uninterrupted_weights(shared_data, tmp_path):
    """Five SIGKILLs at random moments of a run that writes a checkpoint every step (so some land
    mid-write), each followed by a resume; the finished run equals one that was never killed."""
    steps = 40
    straight, run = tmp_path / "straight", tmp_path / "storm"
    args = _args(shared_data, "cgan", straight, steps, "--checkpoint-every", "1")
    subprocess.run(gankit(*args), check=True, capture_output=True)
    rng = random.Random(0)
    kills = 0
    while kills < 5:
        before = max(checkpoint_steps(run), default=0)
        assert before < steps, "the run finished before five kills"
        argv = gankit("train", "--resume", str(run), "--no-progress") if before else gankit(*_args(
            shared_data, "cgan", run, steps, "--checkpoint-every", "1"))  # fmt: skip
        done = start_and_signal(argv, lambda b=before: max(checkpoint_steps(run), default=0) > b,
                                delay=rng.uniform(0, 0.03))  # fmt: skip
        assert done.returncode == -signal.SIGKILL, done.stderr
        kills += 1
    finished = resume_run(run)
    assert finished.returncode == 0, finished.stderr
    assert_same_state(straight, run, steps)


# --- full disks ----------------------------------------------------------------------------------------------
def _no_space_for(pattern: str, armed=lambda: True):
    """An ``os.write`` that fails with ENOSPC for files whose path matches ``pattern`` once ``armed()``."""
    real_write = os.write

    def write(fd, data):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if re.search(pattern, path) and armed():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    return write


TRAINING_WRITES = {  # site: (pattern of the file being written, name in the error)
    "checkpoint": (r"/checkpoints/\.step_0000004\.pt\.", "checkpoints/step_0000004.pt"),
    "sample grid": (r"/samples/\.step_0000004\.png\.", "samples/step_0000004.png"),
    "loss log": (r"/losses\.csv$", "losses.csv"),
    "loss plot": (r"/\.losses\.png\.", "losses.png"),
    "report page": (r"/\.index\.html\.", "index.html"),
    "model": (r"/\.model\.safetensors\.", "model.safetensors"),
    "summary": (r"/\.summary\.json\.", "summary.json"),
}


@pytest.mark.parametrize("site", list(TRAINING_WRITES))
def test_a_full_disk_at_each_training_write(shared_data, tmp_path, monkeypatch, capsys, restore_runtime, site):
    pattern, name = TRAINING_WRITES[site]
    run = tmp_path / "run"
    armed = lambda: (run / "checkpoints" / "step_0000002.pt").exists()  # noqa: E731
    monkeypatch.setattr(os, "write", _no_space_for(pattern, armed))
    assert main(_args(shared_data, "cgan", run, 4, "--checkpoint-every", "2", "--sample-every", "2")) == 1
    err = capsys.readouterr().err
    line = _last_line(err)
    assert line.startswith(f"gankit: error: {run / name}: cannot write ") and "Traceback" not in err, err
    assert "No space left on device" in line and "bytes free" in line and "--resume" in line
    assert not _leftover_temp_files(run)
    for step in checkpoint_steps(run):
        assert read_checkpoint(run / "checkpoints" / f"step_{step:07d}.pt")["step"] == step
    monkeypatch.undo()  # space freed
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert checkpoint_steps(run)[-1] == 4 and (run / "model.safetensors").is_file()


def test_config_write_failure_leaves_a_run_that_starts_again(shared_data, tmp_path, monkeypatch, capsys,
                                                             restore_runtime):  # fmt: skip
    run = tmp_path / "run"
    monkeypatch.setattr(os, "write", _no_space_for(r"/\.config\.yaml\."))
    assert main(_args(shared_data, "cgan", run, 2)) == 1
    assert "config.yaml: cannot write" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(_args(shared_data, "cgan", run, 2)) == 0


def test_a_disk_too_small_for_the_checkpoints_is_refused_before_anything_is_written(shared_data, tmp_path,
                                                                                     monkeypatch, capsys):  # fmt: skip
    import gankit.training.preflight as preflight

    monkeypatch.setattr(preflight, "free_bytes", lambda folder: 3_000_000)
    run = tmp_path / "run"
    assert main(_args(shared_data, "cyclegan", run, 4)) == 1
    line = _last_line(capsys.readouterr().err)
    assert line.startswith(f"gankit: error: {run}: not enough disk space") and "3.0 MB are free" in line
    assert "checkpoint(s) of" in line
    assert not run.exists()


def test_a_warning_when_the_sample_grids_may_not_fit(shared_data, tmp_path, monkeypatch, capsys, restore_runtime):
    import gankit.training.loop as loop

    monkeypatch.setattr(loop, "free_bytes", lambda folder: 10_000)
    assert main(_args(shared_data, "cgan", tmp_path / "run", 4, "--sample-every", "1")) == 0
    assert re.search(r"warning: .*the 3 sample grids still to come need about [\d.]+ MB, 0.0 MB are free",
                     capsys.readouterr().out)  # fmt: skip


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)  # fmt: skip
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged user+mount namespaces to mount a tmpfs")
def test_real_small_tmpfs(shared_data, tmp_path):
    """On a real 1 MB and 6 MB tmpfs: the first is refused up front; on the second the sample grids fill
    the disk mid-run, which stops with one line; once the disk grows, the run resumes to the end."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    train = " ".join(gankit(*_args(shared_data, "cgan", mnt / "run", 100, "--checkpoint-every", "20",
                                   "--sample-every", "1", "--keep-checkpoints", "1")))  # fmt: skip
    resume = " ".join(gankit("train", "--resume", str(mnt / "run"), "--no-progress"))
    script = f"""
        mount -t tmpfs -o size=1m tmpfs {mnt} && {train}; echo "small=$?"
        umount {mnt} && mount -t tmpfs -o size=6m tmpfs {mnt} && {train}; echo "full=$?"
        ls {mnt}/run/checkpoints; find {mnt} -name '*.tmp' | wc -l | sed 's/^/tmp=/'
        mount -o remount,size=64m {mnt} && {resume}; echo "resumed=$?"; ls {mnt}/run
    """
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    out, err = done.stdout, done.stderr
    assert "small=1" in out and "not enough disk space" in err, (out, err)
    assert "full=1" in out and re.search(r"mnt/run/\S+: cannot write [\d,]+ bytes: No space left on device", err)
    assert "tmp=0" in out and "step_" in out
    assert "resumed=0" in out and "model.safetensors" in out, (out, err)


# --- data that changes under a run ------------------------------------------------------------------------------
def test_images_deleted_or_truncated_under_a_run_are_skipped_and_counted(shared_data, tmp_path):
    folders = {}
    for domain, split in (("a", "trainA"), ("b", "trainB")):
        folders[domain] = tmp_path / domain
        folders[domain].mkdir()
        for src in sorted((shared_data / "apple2orange" / split).iterdir())[:6]:
            shutil.copy(src, folders[domain] / src.name)
    run = tmp_path / "run"
    argv = gankit("train", "cyclegan", "--domain-a", str(folders["a"]), "--domain-b", str(folders["b"]), "--size",
                  "32", "--load-size", "36", "--blocks", "1", "--ngf", "4", "--ndf", "4", "--steps", "60",
                  "--log-every", "1", "--threads", "1", "--no-progress", "--out", str(run))  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while logged_steps(run) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    victims = sorted(folders["a"].iterdir())
    victims[1].unlink()
    victims[2].write_bytes(victims[2].read_bytes()[:200])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = __import__("json").loads((run / "summary.json").read_text())
    assert summary["step"] == 60 and summary["skipped_images"] > 0
    assert "unreadable image" in out + err


def test_a_killed_data_worker_ends_the_run_with_a_checkpoint_and_one_line(shared_data, tmp_path):
    run = tmp_path / "run"
    argv = gankit(*_args(shared_data, "cyclegan", run, 100000, "--checkpoint-every", "100000", "--workers", "1"))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while logged_steps(run) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert children, "no data-loading worker found"
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err[-2500:]
    assert "a data-loading worker died" in _last_line(err) and "--resume" in _last_line(err)
    assert checkpoint_steps(run), "no checkpoint was written"
    assert resume_run(run, "--steps", str(checkpoint_steps(run)[-1] + 1)).returncode == 0


def test_a_closed_pipe_from_a_worker_killed_mid_batch_is_reported_as_its_death():
    """A batch whose worker is killed while it is received fails with EOFError from the pipe, a moment
    before the kernel reports the worker dead; that is the worker's death (one line and a checkpoint),
    while the same error with every worker alive stays what it is."""
    import multiprocessing

    from gankit.training.loop import StopRequests, _is_worker_death

    with StopRequests() as stop:
        with stop.fetching():
            worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=True)
            worker.start()
        with pytest.raises(EOFError), stop.fetching():
            raise EOFError
        with pytest.raises(RuntimeError) as died, stop.fetching():
            os.kill(worker.pid, signal.SIGKILL)
            raise EOFError
    assert _is_worker_death(died.value) and str(worker.pid) in str(died.value)
    worker.join()
