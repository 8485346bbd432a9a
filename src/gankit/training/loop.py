"""The CycleGAN training loop, top to bottom: data → model → optimizers → (resume) → iterate →
checkpoint. Everything a run needs comes from one :class:`CycleGANConfig`, saved in the run folder
and inside every checkpoint.

Run folder layout::

    RUN/config.yaml        resolved config          RUN/losses.csv, losses.png
    RUN/checkpoints/       step_*.pt (resumable)     RUN/samples/step_*.png
    RUN/model.safetensors  both generators + config  RUN/index.html, summary.json
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gankit.config import CycleGANConfig
from gankit.data.recipes import DomainPair
from gankit.errors import CheckpointError, TrainingDiverged
from gankit.io import atomic_torch_save, atomic_write_text, list_checkpoints, safe_torch_load
from gankit.losses import clip_weights
from gankit.models.cyclegan import CycleGAN
from gankit.training.checkpoint import prune_checkpoints, rng_state, set_rng_state
from gankit.training.data import domain_pair, make_loader, resolve_config
from gankit.training.pool import ImagePool
from gankit.training.samples import SampleWriter
from gankit.training.schedules import lr_factor
from gankit.training.setup import autocast, autocast_dtype, configure_runtime, resolve_device, seed_everything

CHECKPOINT_FORMAT = "gankit-train-1"


# --- the run -------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run_dir: Path
    step: int
    model_path: Path
    seconds: float
    data_wait_fraction: float
    losses: dict[str, float]


def make_optimizers(model: CycleGAN, config: CycleGANConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam(2e-4, β=(0.5, 0.999)) as in the paper, or RMSprop (seed 000 uses lr 2e-4 for D and half
    for the adversarial model: ``--optimizer rmsprop --lr 1e-4 --lr-d 2e-4``)."""
    g_params = [*model.g_ab.parameters(), *model.g_ba.parameters()]
    d_params = [*model.d_a.parameters(), *model.d_b.parameters()]
    lr_d = config.lr_d or config.lr

    def make(params, lr):
        if config.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)
        return torch.optim.RMSprop(params, lr=lr, alpha=config.rms_alpha, weight_decay=config.weight_decay)

    return make(g_params, config.lr), make(d_params, lr_d)


def _set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class Trainer:
    """Owns the model, optimizers, pools and run folder of one CycleGAN run."""

    def __init__(self, config: CycleGANConfig, run_dir: Path, pair: DomainPair, *, progress: bool = True):
        self.config, self.run_dir, self.pair, self.progress = config, Path(run_dir), pair, progress
        configure_runtime(threads=config.threads, deterministic=config.deterministic)
        seed_everything(config.seed)
        self.device = resolve_device(config.device)
        self.amp_dtype = autocast_dtype(config.amp, self.device)
        self.model = CycleGAN(config).to(self.device)
        if config.compile:
            self.model.compile_for_training()
        self.opt_g, self.opt_d = make_optimizers(self.model, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.pool_a = ImagePool(config.pool_size, seed=config.seed)
        self.pool_b = ImagePool(config.pool_size, seed=config.seed + 1)
        self.step = 0
        self.ckpt_dir = self.run_dir / "checkpoints"

    # --- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "pool_a": self.pool_a.state_dict(),
            "pool_b": self.pool_b.state_dict(),
            "rng": rng_state(),
        }

    def save_checkpoint(self) -> Path:
        path = atomic_torch_save(self.state_dict(), self.ckpt_dir / f"step_{self.step:07d}.pt")
        prune_checkpoints(self.ckpt_dir, self.config.keep_checkpoints)
        return path

    def load_checkpoint(self, path: Path) -> None:
        state = safe_torch_load(path, map_location=self.device)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not a gankit training checkpoint")
        try:
            self.model.load_state_dict(state["model"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: does not fit this run's config ({e})") from None
        self.scaler.load_state_dict(state["scaler"])
        self.pool_a.load_state_dict(state["pool_a"], self.device)
        self.pool_b.load_state_dict(state["pool_b"], self.device)
        set_rng_state(state["rng"])
        self.step = int(state["step"])

    # --- one iteration --------------------------------------------------------------------------------
    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        c, m = self.config, self.model
        factor = lr_factor(self.step, c.steps, c.schedule, decay_start=c.decay_start, time_decay=c.time_decay)
        for opt, base in ((self.opt_g, c.lr), (self.opt_d, c.lr_d or c.lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor
        discriminators = (m.d_a, m.d_b)
        terms: dict[str, torch.Tensor] = {}

        g_step = self.step % c.n_critic == 0
        with autocast(self.device, self.amp_dtype):
            out = m.cycle(real_a, real_b, identity=g_step)
        if g_step:
            _set_requires_grad(discriminators, False)
            with autocast(self.device, self.amp_dtype):
                loss_g, terms_g = m.generator_loss(real_a, real_b, out)
            self._check_finite(loss_g, "generator")
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler.scale(loss_g).backward()
            self.scaler.step(self.opt_g)
            terms |= terms_g
            _set_requires_grad(discriminators, True)
        fake_a = self.pool_a.query(out.fake_a)
        fake_b = self.pool_b.query(out.fake_b)
        with autocast(self.device, self.amp_dtype):
            loss_d, terms_d = m.discriminator_loss(real_a, real_b, fake_a, fake_b)
        self._check_finite(loss_d, "discriminator")
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        if c.gan_loss == "wgan":
            for d in discriminators:
                clip_weights(d, c.clip)
        self.step += 1
        return terms | terms_d

    def _check_finite(self, loss: torch.Tensor, which: str) -> None:
        if not torch.isfinite(loss).item():
            last = list_checkpoints(self.ckpt_dir)
            kept = f"; the last good checkpoint is {last[-1][1]}" if last else ""
            raise TrainingDiverged(
                f"{which} loss became {loss.item()} at step {self.step + 1}{kept}. "
                "Try a lower --lr, --amp off, or another --gan-loss."
            )


def _prepare_run(config: CycleGANConfig) -> tuple[CycleGANConfig, DomainPair, Path]:
    pair = domain_pair(config, "train")
    config = resolve_config(config, pair)
    return config, pair, Path(config.out)


def train(config: CycleGANConfig, *, progress: bool = True, log=print) -> TrainResult:
    """Start a new run in ``config.out`` (an existing run folder is refused: use :func:`resume`)."""
    config, pair, run_dir = _prepare_run(config)
    if list_checkpoints(run_dir / "checkpoints"):
        raise CheckpointError(f"{run_dir}: already holds a run; resume it with `gankit train --resume {run_dir}` "
                              "or choose another --out")  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save_yaml(run_dir / "config.yaml")
    trainer = Trainer(config, run_dir, pair, progress=progress)
    return _run(trainer, log=log)


def resume(run_dir: str | Path, *, steps: int | None = None, progress: bool = True, log=print) -> TrainResult:
    """Continue a run from its newest readable checkpoint (older ones are tried if it is corrupt)."""
    run_dir = Path(run_dir)
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if not ckpts:
        raise CheckpointError(f"{run_dir}: no checkpoints/step_*.pt to resume from")
    errors = []
    for _, path in reversed(ckpts):
        try:
            state = safe_torch_load(path)
            break
        except CheckpointError as e:
            errors.append(str(e))
            log(f"warning: skipping unreadable checkpoint: {e}")
    else:
        raise CheckpointError("no readable checkpoint: " + "; ".join(errors))
    config = CycleGANConfig.from_dict(state["config"], source=str(path))
    if steps is not None:
        config = dataclasses.replace(config, steps=steps).validate()
    config = dataclasses.replace(config, out=str(run_dir))
    pair = domain_pair(config, "train")
    config.save_yaml(run_dir / "config.yaml")
    trainer = Trainer(config, run_dir, pair, progress=progress)
    trainer.load_checkpoint(path)
    log(f"resuming {run_dir} from step {trainer.step} ({path.name})")
    return _run(trainer, log=log)


def _run(trainer: Trainer, *, log) -> TrainResult:
    from tqdm import tqdm

    from gankit.training.report import LossLog, TensorBoardLogger

    c, run_dir = trainer.config, trainer.run_dir
    losses = LossLog(run_dir / "losses.csv")
    losses.truncate_after(trainer.step)
    tensorboard = TensorBoardLogger(run_dir / "tensorboard") if c.tensorboard else None
    samples = SampleWriter(trainer, run_dir)
    loader = make_loader(c, trainer.pair, trainer.step)
    batches = iter(loader)
    t0, waited, last = time.perf_counter(), 0.0, {}
    bar = tqdm(total=c.steps, initial=trainer.step, disable=not trainer.progress, unit="it", dynamic_ncols=True,
               desc=f"cyclegan {run_dir.name}")  # fmt: skip
    try:
        while trainer.step < c.steps:
            w = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - w
            real_a = batch["A"].to(trainer.device, non_blocking=True)
            real_b = batch["B"].to(trainer.device, non_blocking=True)
            terms = trainer.train_step(real_a, real_b)
            step = trainer.step
            if step % c.log_every == 0 or step == c.steps:
                last = {k: float(v.detach()) for k, v in terms.items()}
                losses.append(step, last)
                if tensorboard:
                    tensorboard.scalars(step, last)
                bar.set_postfix(
                    D=f"{last.get('D_a', 0) + last.get('D_b', 0):.3f}",
                    G=f"{last.get('G_total', math.nan):.3f}",
                    cyc=f"{last.get('cycle_a', math.nan) + last.get('cycle_b', math.nan):.3f}",
                    refresh=False,
                )
            bar.update(1)
            if step % c.sample_every == 0 or step == c.steps:
                samples.write(step)
            if step % c.checkpoint_every == 0 or step == c.steps:
                trainer.save_checkpoint()
                samples.refresh_report()
    finally:
        bar.close()
        if tensorboard:
            tensorboard.close()
    seconds = time.perf_counter() - t0
    model_path = trainer.model.save_generators(run_dir / "model.safetensors")
    samples.refresh_report()
    summary = {
        "step": trainer.step,
        "seconds": round(seconds, 2),
        "data_wait_fraction": round(waited / max(seconds, 1e-9), 4),
        "final_losses": last,
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    log(
        f"done: {trainer.step} steps in {seconds:.1f}s "
        f"(waiting for data {100 * summary['data_wait_fraction']:.1f}% of the time)\n"
        f"  run folder : {run_dir}\n  report     : {run_dir / 'index.html'}\n"
        f"  model      : {model_path}\n  losses     : {run_dir / 'losses.png'}"
    )
    return TrainResult(run_dir, trainer.step, model_path, seconds, summary["data_wait_fraction"], last)
