"""The one training loop: every registered model (:mod:`gankit.models.registry`) trains, checkpoints,
reports and resumes through it in the same way.

Run folder layout::

    RUN/config.yaml        kind + resolved config      RUN/losses.csv, losses.png
    RUN/checkpoints/       step_*.pt (resumable)       RUN/samples/step_*.png
    RUN/model.safetensors  exported networks + config  RUN/index.html, summary.json

One step = ``model.batches_per_step`` batches (one per discriminator update, ``--n-critic``) drawn
from the model's batch source, then ``model.train_step``; the step counter counts generator updates
for every model. Losses are checked for NaN/inf after every step; a non-finite loss stops the run
before anything further is written, so the newest checkpoint is always a good one.

Faults: before a run starts, the disk must hold its checkpoints and model; checkpoints are written
every ``checkpoint_every`` steps and whenever ``checkpoint_minutes`` have passed since the last one;
SIGTERM or SIGINT finishes the current step, writes a checkpoint and stops with
:class:`~gankit.errors.Interrupted`; a failed write or a dead data-loading worker stops the run with
one line naming what failed, the checkpoints already written intact.

Data-parallel runs (``torchrun``, :mod:`gankit.distributed`) go through the same loop: every rank
trains on its slice of each global batch; rank 0 alone writes the run folder, and its checkpoints
hold every rank's own state (RNG streams, data position, history pools), gathered before writing.
Decisions that must be taken together (stop on a signal, a checkpoint due by the clock, a
non-finite loss) are agreed in one small all-reduce per step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from gankit.config import RunConfig
from gankit.data.streams import BatchSource, split_rows
from gankit.distributed import SINGLE, GlobalBatchNorm, Shard, device_for, join, leave, threads_for
from gankit.errors import CheckpointError, ConfigError, DataError, Interrupted, TrainingDiverged, WriteError
from gankit.io import atomic_torch_save, atomic_write_text, free_bytes, list_checkpoints, save_image_atomic
from gankit.models.base import Model
from gankit.models.persist import checkpoint_state, make_config, newest_readable_checkpoint, save_weights
from gankit.models.registry import model_class, model_kinds
from gankit.models.schedules import global_batch_factor
from gankit.runtime import HEAP, configure_runtime, resolve_device, seed_everything
from gankit.training.checkpoint import prune_checkpoints, rng_state, set_rng_state
from gankit.training.preflight import check_disk_space, check_memory


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    model_path: Path
    seconds: float
    data_wait_fraction: float
    losses: dict[str, float]


def kind_of(config: RunConfig) -> str:
    """The registered kind whose config class is ``type(config)``."""
    for kind, cls in model_kinds().items():
        if type(config) is cls.config_class:
            return kind
    raise ConfigError(f"no registered model kind uses {type(config).__name__}")


def _build(kind: str, config: RunConfig, shard: Shard = SINGLE) -> Model:
    configure_runtime(threads=threads_for(shard, config.threads), deterministic=config.deterministic)
    seed_everything(config.seed)
    model = model_class(kind)(config, resolve_device(device_for(shard, config.device)))
    model.use_shard(shard)
    if config.compile:
        model.compile_for_training()
    return model


def write_run_config(run_dir: Path, kind: str, config: RunConfig) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump({"kind": kind, **config.to_dict()}, sort_keys=False))


def _quiet_unless_rank_0(log):
    """Only rank 0 of a torchrun group talks (``RANK`` is set before the group is joined)."""
    return log if int(os.environ.get("RANK", "0")) == 0 else (lambda *_: None)


def restarted_by_torchrun() -> bool:
    """torchrun ``--max-restarts`` started this process group again after a rank failed."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def train(config: RunConfig, kind: str | None = None, *, progress: bool = True, log=print) -> TrainResult:
    """Start a new run of ``kind`` (default: the kind ``config`` belongs to) in ``config.out``; an
    existing run folder is refused (use :func:`resume`), except when torchrun restarts a failed
    group, which then continues from the newest checkpoint."""
    kind = kind or kind_of(config)
    run_dir = Path(config.out)
    if list_checkpoints(run_dir / "checkpoints"):
        if restarted_by_torchrun():
            return resume(run_dir, progress=progress, log=log)
        raise CheckpointError(f"{run_dir}: already holds a run; resume it with `gankit train --resume {run_dir}` "
                              "or choose another --out")  # fmt: skip
    return _start(kind, config, run_dir, None, progress=progress, log=_quiet_unless_rank_0(log))


def resume(run_dir: str | Path, *, steps: int | None = None, data_root: str | None = None, progress: bool = True,
           log=print) -> TrainResult:  # fmt: skip
    """Continue a run from its newest readable checkpoint (older ones are tried if it is corrupt),
    optionally to a new total of ``steps`` or with its data moved to ``data_root``. A run may be
    resumed with another number of ranks (each takes a saved rank's streams; the data order changes)."""
    run_dir, log = Path(run_dir), _quiet_unless_rank_0(log)
    path, state = newest_readable_checkpoint(run_dir, log=log)
    overrides: dict[str, Any] = {"out": str(run_dir)}
    if steps is not None:
        overrides["steps"] = steps
    if data_root is not None:
        overrides["data_root"] = data_root
    kind = state["kind"]
    config = make_config(kind, state["config"], str(path), **overrides)
    if "converted_from" in state:
        log(f"note: {path.name} was written by gankit {state['gankit_version']} ({state['converted_from']}); "
            f"its steps were converted to generator steps: step {state['step']} of {config.steps}")  # fmt: skip
    return _start(kind, config, run_dir, (path, state), progress=progress, log=log)


def _start(kind: str, config: RunConfig, run_dir: Path, checkpoint: tuple[Path, dict[str, Any]] | None, *,
           progress: bool, log) -> TrainResult:  # fmt: skip
    """Join the process group (if torchrun started us), build the model, check disk and memory, load
    the data, restore ``checkpoint`` if given, and run the loop."""
    shard = join(config.device)
    try:
        model = _build(kind, config, shard)
        if shard.is_main:
            check_disk_space(model, run_dir)
        check_memory(model, log)
        _check_accumulation(model)
        source = _training_data(model)
        step = _restore(model, source, checkpoint[1], str(checkpoint[0]), log) if checkpoint else 0
        model.prepare(log)
        if shard.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_run_config(run_dir, kind, model.config)
        if checkpoint:
            log(f"resuming {run_dir} from step {step} ({checkpoint[0].name})")
        effort = Effort(checkpoint[1].get("effort") if checkpoint else None)
        return _loop(model, source, run_dir, step, effort, progress=progress and shard.is_main, log=log)
    finally:
        leave()


def _restore(model: Model, source: BatchSource, state: dict[str, Any], where: str, log=print) -> int:
    shard = model.shard
    own = {"rng": state["rng"], "extra": state.get("extra", {}), "data": state.get("data", {})}
    saved_ranks = state.get("ranks") or [own]
    if len(saved_ranks) != shard.world:
        log(f"note: {where} was written by {len(saved_ranks)} rank(s), resuming with {shard.world}: each rank "
            "takes a saved rank's random streams and pools; the order of the training images changes")  # fmt: skip
    own = saved_ranks[shard.rank % len(saved_ranks)]
    try:
        for name, net in model.networks().items():
            net.load_state_dict(state["networks"][name])
        for name, opt in model.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        if state.get("scaler"):
            model.precision.scaler.load_state_dict(state["scaler"])
        model.load_extra_state(own["extra"])
        if len(saved_ranks) == shard.world:
            source.load_state_dict(own["data"])
        else:  # the same global step, dealt out to the new number of ranks
            source.load_state_dict({**own["data"], "position": int(state["step"]) * _global_batch(model)})
        set_rng_state(own["rng"])
        return int(state["step"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{where}: checkpoint does not fit this run's config ({e})") from None


def _global_batch(model: Model) -> int:
    return int(getattr(model.config, "batch_size", 1)) * model.shard.world * _accumulated(model.config)


def _accumulated(config: RunConfig) -> int:
    return int(getattr(config, "accumulate", 1))


def _check_accumulation(model: Model) -> None:
    k = _accumulated(model.config)
    if k == 1:
        return
    instead = f"use --nproc {k} or --batch-size {k * int(getattr(model.config, 'batch_size', 1))}"
    if not model.accumulates_exactly:
        raise ConfigError(f"--accumulate {k}: {model.kind} (as configured) trains a network against another that an "
                          f"earlier update of the same step changed, so accumulated batches would not be the "
                          f"computation of {k} ranks; {instead}")  # fmt: skip
    if any(isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, GlobalBatchNorm))
           for net in model.networks().values() for m in net.modules()):  # fmt: skip
        raise ConfigError(f"--accumulate {k}: batch norm would normalise each accumulated batch on its own, unlike "
                          f"{k} ranks; {instead}")  # fmt: skip


def _training_data(model: Model) -> BatchSource:
    """The model's batch source. With ``--accumulate K`` each of its batches holds the K batches of a
    step: K × ``--batch-size`` rows, the rows of K consecutive ranks, which :func:`_train_step` splits."""
    k = _accumulated(model.config)
    if k == 1:
        return model.training_data()
    config = model.config
    model.config = dataclasses.replace(config, batch_size=config.batch_size * k)
    try:
        return model.training_data()
    finally:
        model.config = config


def _train_step(model: Model, batches: list[Any], step: int) -> dict[str, float]:
    """One training step. With ``--accumulate K`` the model steps through the K parts of its batches
    as the K ranks it stands for: each part with that rank's shard (its rows of every random draw)
    and the random state the step began with, the optimizers updating at the last part with the
    mean gradient (see :meth:`Model.accumulates_exactly`). The loss terms are means over the parts."""
    k = _accumulated(model.config)
    if k == 1:
        return _values(model.train_step(batches, step))
    parts = [split_rows(batch, k) for batch in batches]
    shard, start, totals = model.shard, rng_state(), {}
    try:
        for i in range(k):
            set_rng_state(start)
            model.shard = shard.virtual(i, k)
            model.precision.micro_batch, model.precision.micro_batches = i, k
            for name, v in _values(model.train_step([p[i] for p in parts], step)).items():
                totals[name] = totals.get(name, 0.0) + v / k
    finally:
        model.shard = shard
        model.precision.micro_batch, model.precision.micro_batches = 0, 1
    return totals


def _values(terms: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v.detach() if torch.is_tensor(v) else v) for k, v in terms.items()}


class Effort:
    """Wall and CPU seconds spent in the training loop, carried over resumes in the checkpoints. CPU
    time is this process's (every thread; rank 0's in a data-parallel run; data-loading worker
    processes not included): the measure of "same compute" comparisons on a shared machine."""

    def __init__(self, before: Mapping[str, float] | None = None):
        before = before or {}
        self.wall0, self.cpu0 = float(before.get("seconds", 0.0)), float(before.get("cpu_seconds", 0.0))
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def totals(self) -> dict[str, float]:
        return {"seconds": round(self.wall0 + time.perf_counter() - self.t0, 3),
                "cpu_seconds": round(self.cpu0 + time.process_time() - self.c0, 3)}  # fmt: skip


def save_checkpoint(model: Model, source: BatchSource, run_dir: Path, step: int,
                    effort: Effort | None = None) -> Path | None:  # fmt: skip
    """Write the checkpoint of ``step`` (rank 0; every rank of a data-parallel run must call it, since
    each sends its own state). Returns its path on rank 0, None on the others."""
    shard = model.shard
    ranks = None
    if shard.distributed:
        ranks = shard.gather_to_main({"rng": rng_state(), "extra": model.extra_state(), "data": source.state_dict()})
        if not shard.is_main:
            return None
    folder = run_dir / "checkpoints"
    state = checkpoint_state(model, step, source.state_dict(), rng_state(), ranks=ranks,
                             effort=effort.totals() if effort else None)  # fmt: skip
    path = atomic_torch_save(state, folder / f"step_{step:07d}.pt")
    c = model.config
    prune_checkpoints(folder, c.keep_checkpoints, c.checkpoint_every, c.steps)
    return path


def write_report(model: Model, source: BatchSource, run_dir: Path, step: int) -> None:
    """losses.png and index.html of the run as it stands."""
    from gankit.training.report import plot_losses, write_index_html

    csv = run_dir / "losses.csv"
    if csv.is_file() and csv.stat().st_size > 0:
        plot_losses(csv, run_dir / "losses.png")
    entries = [(int(p.stem.split("_")[1]), f"samples/{p.name}") for p in sorted(run_dir.glob("samples/step_*.png"))]
    c = model.config
    summary = {"data": source.description, "progress": f"step {step} of {c.steps}"}
    if hasattr(c, "gan_loss"):
        summary["game"] = (f"{c.gan_loss}, n_critic {c.n_critic}, label smoothing {c.label_smoothing}, "
                           f"label noise {c.label_noise}")  # fmt: skip
    title = f"{model.kind} · {c.dataset} · step {step}/{c.steps}"
    write_index_html(run_dir, title, {"kind": model.kind, **c.to_dict()}, entries, extra=summary | model.describe())


def write_samples(model: Model, run_dir: Path, step: int) -> Path:
    model.eval()
    try:
        with torch.no_grad():
            grid = model.sample_grid(step)
    finally:
        model.train()
    return save_image_atomic(grid, run_dir / "samples" / f"step_{step:07d}.png")


def _diverged(run_dir: Path, step: int, what: str) -> TrainingDiverged:
    kept = list_checkpoints(run_dir / "checkpoints")
    where = f"; the last good checkpoint is {kept[-1][1]}" if kept else ""
    return TrainingDiverged(f"{run_dir}: {what} at step {step}{where}. Try a lower --lr, --amp off, or another "
                            "--gan-loss.")  # fmt: skip


def next_batches(model: Model, source: BatchSource) -> list[Any]:
    """The batches of one training step: one per discriminator update."""
    return [source.next() for _ in range(model.batches_per_step)]


class StopRequests:
    """SIGTERM (schedulers, spot preemption) and SIGINT (Ctrl-C) become a request the loop honours
    between steps: the current step finishes, a checkpoint is written, the run stops. A second
    signal stops at once (every write is atomic, so nothing is left half-written)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}
        self._workers: set[int] = set()
        self._before: set[int] | None = None

    def _handle(self, signum: int, frame) -> None:
        del frame
        if self.signal_number is not None:
            raise Interrupted(f"stopped at once by a second {signal.Signals(signum).name}", signum)
        self.signal_number = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signal_number).name if self.signal_number else ""

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    @contextlib.contextmanager
    def fetching(self):
        """Worker deaths surface only while batches are fetched, between steps, where a consistent
        checkpoint can be written. torch's SIGCHLD handler (installed with the first workers) raises a
        death wherever the main thread is, so outside fetches the default handler stands in; during a
        fetch torch's handler is back (a worker killed mid-write would otherwise leave the loader
        waiting for the rest of its message), and a worker that died since the last fetch is caught
        before the next one (the child processes that appeared with this run's first fetch are watched)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        if signal.SIGCHLD in self._previous:
            signal.signal(signal.SIGCHLD, self._previous[signal.SIGCHLD])
        alive = {p.pid for p in multiprocessing.active_children()}
        if self._before is None:
            self._before = alive  # children that are not this run's workers
        if self._workers - alive:
            raise RuntimeError(f"DataLoader worker (pid(s) {sorted(self._workers - alive)}) exited unexpectedly")
        try:
            yield
        except (EOFError, ConnectionError) as e:
            dead = self._dead_workers()
            if dead:
                raise RuntimeError(f"DataLoader worker (pid(s) {dead}) exited unexpectedly") from e
            raise
        finally:
            current = signal.getsignal(signal.SIGCHLD)
            if current not in (signal.SIG_DFL, None):
                self._previous.setdefault(signal.SIGCHLD, current)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self._workers = {p.pid for p in multiprocessing.active_children()} - (self._before or set())

    def _dead_workers(self, wait_s: float = 2.0) -> list[int]:
        """This run's workers that have exited. A batch whose worker is killed while it is received fails
        with a closed pipe (EOFError) a moment before the kernel reports the worker dead, so wait briefly."""
        deadline = time.monotonic() + wait_s
        while True:
            dead = sorted(self._workers - {p.pid for p in multiprocessing.active_children()})
            if dead or not self._workers or time.monotonic() > deadline:
                return dead
            time.sleep(0.01)

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _is_worker_death(e: BaseException) -> bool:
    return isinstance(e, RuntimeError) and "DataLoader worker" in str(e)


def _worker_died(run_dir: Path, step: int, e: RuntimeError, source: BatchSource) -> DataError:
    close = getattr(source, "close", None)
    if close is not None:
        close()
    reason = str(e).splitlines()[0].rstrip(". ")
    return DataError(f"{run_dir}: a data-loading worker died near step {step + 1} ({reason}; killed by the OS, e.g. "
                     f"for memory?); {_resume_hint(run_dir)}")  # fmt: skip


def _resume_hint(run_dir: Path) -> str:
    kept = list_checkpoints(run_dir / "checkpoints")
    newest = f"newest checkpoint {kept[-1][1].name}; " if kept else ""
    return f"{newest}resume with `gankit train --resume {run_dir}`"


def _loop(model: Model, source: BatchSource, run_dir: Path, step: int, effort: Effort, *, progress: bool,
          log) -> TrainResult:  # fmt: skip
    from tqdm import tqdm

    from gankit.training.report import LossLog, TensorBoardLogger

    c, shard = model.config, model.shard
    main = shard.is_main
    losses = LossLog(run_dir / "losses.csv") if main else None
    if losses:
        losses.truncate_after(step)
    tensorboard = TensorBoardLogger(run_dir / "tensorboard") if c.tensorboard and main else None
    t0, waited, last = time.perf_counter(), 0.0, {}
    saved_at, saved_step, sample_room_checked, stopping = time.monotonic(), step, False, False
    heap_kept = False
    bar = tqdm(total=c.steps, initial=step, disable=not progress, unit="step", dynamic_ncols=True,
               desc=f"{model.kind} {run_dir.name}")  # fmt: skip

    def checkpoint() -> None:
        nonlocal saved_at, saved_step
        save_checkpoint(model, source, run_dir, step, effort)
        if main:
            write_report(model, source, run_dir, step)
        saved_at, saved_step = time.monotonic(), step

    model.train()
    try:
        with StopRequests() as stop, contextlib.ExitStack() as kept_heap:
            while step < c.steps and not stopping:
                w = time.perf_counter()
                position = source.state_dict()
                try:
                    with stop.fetching():
                        batches = next_batches(model, source)
                except RuntimeError as e:
                    if not _is_worker_death(e):
                        raise
                    source.load_state_dict(position)
                    if saved_step != step and not shard.distributed:  # other ranks cannot join a checkpoint now
                        checkpoint()
                    if stop.signal_number is not None:
                        stopping = True
                        break
                    raise _worker_died(run_dir, step, e, source) from None
                waited += time.perf_counter() - w
                model.precision.lr_factor = global_batch_factor(getattr(c, "lr_scaling", "none"),
                                                                shard.world * _accumulated(c),
                                                                getattr(c, "warmup_steps", 0), step + 1)  # fmt: skip
                try:
                    values = _train_step(model, batches, step + 1)
                except TrainingDiverged as e:
                    raise _diverged(run_dir, step + 1, str(e)) from None
                model.precision.update()
                step += 1
                if not heap_kept:  # from the second step on: the first one's conv tuning makes temporaries
                    kept_heap.enter_context(HEAP.for_training())
                    heap_kept = True
                bad = [k for k, v in values.items() if not math.isfinite(v)]
                overdue = c.checkpoint_minutes > 0 and time.monotonic() - saved_at >= 60 * c.checkpoint_minutes
                stopping, overdue, any_bad = shard.any([stop.signal_number is not None, overdue, bool(bad)])
                if any_bad:
                    what = ", ".join(f"{k}={values[k]}" for k in bad) or "on another rank"
                    raise _diverged(run_dir, step, f"loss {what}")
                final = step == c.steps
                if step % c.log_every == 0 or final:
                    last = values = shard.mean_values(values)
                    if losses:
                        losses.append(step, values)
                    if tensorboard:
                        tensorboard.scalars(step, values)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in model.progress_terms(values).items()}, refresh=False)
                bar.update(1)
                if main and (step % c.sample_every == 0 or final):
                    grid = write_samples(model, run_dir, step)
                    if not sample_room_checked:
                        sample_room_checked = True
                        _warn_if_samples_may_not_fit(grid, run_dir, step, c, log)
                if step % c.checkpoint_every == 0 or final or overdue:
                    checkpoint()
                if not shard.distributed:  # a signal during the writes above: stop now (ranks agree next step)
                    stopping = stopping or stop.signal_number is not None
            if stopping and step < c.steps:
                if saved_step != step:
                    checkpoint()
                name, number = (stop.name, stop.signal_number) if stop.signal_number else ("another rank", 15)
                raise Interrupted(f"stopped by {name} at step {step} of {c.steps}; checkpoint "
                                  f"{run_dir / 'checkpoints' / f'step_{step:07d}.pt'} written; resume with "
                                  f"`gankit train --resume {run_dir}`", number)  # fmt: skip
    except WriteError as e:
        raise e.with_hint(f"earlier checkpoints are intact; free space, then {_resume_hint(run_dir)}") from None
    except RuntimeError as e:  # torch reports a dead worker from its SIGCHLD handler, wherever the loop is
        if not _is_worker_death(e):
            raise
        raise _worker_died(run_dir, step, e, source) from None
    finally:
        bar.close()
        if tensorboard:
            tensorboard.close()
        close = getattr(source, "close", None)
        if close is not None:  # data workers ignore SIGTERM, so the interpreter's exit cannot stop them
            close()
    seconds = time.perf_counter() - t0
    totals = effort.totals()
    summary = {
        "kind": model.kind,
        "step": step,
        "seconds": round(seconds, 2),
        "total_seconds": totals["seconds"],
        "cpu_seconds": totals["cpu_seconds"],
        "data_wait_fraction": round(waited / max(seconds, 1e-9), 4),
        "skipped_images": int(getattr(source, "skipped_images", 0)),
        "ranks": shard.world,
        "final_losses": last,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    model_path = run_dir / "model.safetensors"
    if not main:
        return TrainResult(run_dir, step, model_path, time.perf_counter() - t0, summary["data_wait_fraction"], last)
    try:
        model_path = save_weights(model, model_path)
        write_report(model, source, run_dir, step)
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    except WriteError as e:
        raise e.with_hint(f"training finished and its last checkpoint is intact; free space, then "
                          f"{_resume_hint(run_dir)} to write the model and report") from None  # fmt: skip
    skipped = f"\n  skipped    : {summary['skipped_images']} unreadable image(s)" if summary["skipped_images"] else ""
    log(
        f"done: {step} steps in {seconds:.1f}s (waiting for data {100 * summary['data_wait_fraction']:.1f}% of the "
        f"time)\n  run folder : {run_dir}\n  report     : {run_dir / 'index.html'}\n  model      : {model_path}\n"
        f"  samples    : {run_dir / 'samples'}\n  losses     : {run_dir / 'losses.png'}{skipped}"
    )
    return TrainResult(run_dir, step, model_path, seconds, summary["data_wait_fraction"], last)


def _warn_if_samples_may_not_fit(grid: Path, run_dir: Path, step: int, c: RunConfig, log) -> None:
    """Once the first grid of this process is written its size is known: warn when the grids still to
    come may not fit on the disk (the checkpoints were checked before the run started)."""
    still = math.ceil(max(0, c.steps - step) / c.sample_every)
    needed, free = still * grid.stat().st_size, free_bytes(run_dir)
    if free is not None and needed > free:
        log(f"warning: {run_dir}: the {still} sample grids still to come need about {needed / 1e6:,.1f} MB, "
            f"{free / 1e6:,.1f} MB are free; raise --sample-every or free space")  # fmt: skip
