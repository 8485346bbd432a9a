"""One training loop for the companion GANs of SPEC §5 (conditional, semi-supervised, progressive).

A model is a :class:`GANModel`: it owns its networks, optimizers and data stream and knows how to do one
training step and draw a sample grid. This module does everything around that, the same way for every
model: run folder, resolved config, progress bar with ETA, loss log and plot, sample grids, HTML page,
atomic resumable checkpoints, final weights as safetensors.

Run folder layout (as for CycleGAN, see :mod:`gankit.training.loop`)::

    RUN/config.yaml      resolved config (+ ``model: KIND``)   RUN/losses.csv, losses.png
    RUN/checkpoints/     step_*.pt (resumable)                  RUN/samples/step_*.png
    RUN/model.safetensors  all networks + config                RUN/index.html, summary.json
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from PIL import Image
from torch import nn

from gankit.config import CompanionConfig
from gankit.errors import CheckpointError, ConfigError, TrainingDiverged
from gankit.io import (
    atomic_torch_save,
    atomic_write_text,
    list_checkpoints,
    load_safetensors,
    safe_torch_load,
    save_image_atomic,
    save_safetensors,
)
from gankit.training.checkpoint import prune_checkpoints, rng_state, set_rng_state
from gankit.training.setup import configure_runtime, resolve_device, seed_everything

CHECKPOINT_FORMAT = "gankit-companion-1"

COMPANIONS: dict[str, str | type] = {
    "cgan": "gankit.models.cgan:ConditionalGAN",
    "sgan": "gankit.models.sgan:SemiSupervisedGAN",
    "progan": "gankit.models.progan:ProgressiveGAN",
}
"""Model kind → its :class:`GANModel` class, or ``module:class`` to import on first use."""


def model_class(kind: str) -> type[GANModel]:
    if kind not in COMPANIONS:
        raise ConfigError(f"unknown model {kind!r}; choose one of {', '.join(COMPANIONS)}")
    entry = COMPANIONS[kind]
    if isinstance(entry, type):
        return entry
    module, name = entry.split(":")
    return getattr(importlib.import_module(module), name)


class GANModel(ABC):
    """What the companion loop needs from a model. Subclasses set ``kind`` and ``config_class`` and
    build their networks and optimizers in ``__init__(config, device)``; training data is attached
    separately by :meth:`prepare_training` so that sampling and evaluation never load it."""

    kind: ClassVar[str]
    config_class: ClassVar[type[CompanionConfig]]

    def __init__(self, config: CompanionConfig, device: torch.device):
        self.config, self.device = config, device

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network whose weights define the model (saved in checkpoints and model.safetensors)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    @abstractmethod
    def prepare_training(self, data_root: str | None) -> str:
        """Load the training data; returns a one-line description of it for the report."""

    @abstractmethod
    def train_step(self, step: int) -> dict[str, float | torch.Tensor]:
        """One generator update (and its ``n_critic`` discriminator updates) for 1-based ``step``;
        draws its own batch. Returns the loss terms to log."""

    @abstractmethod
    def sample_grid(self, step: int) -> Image.Image:
        """The periodic progress grid (fixed noise, so grids compare across steps)."""

    def sample(self, *, n: int, label: int | None = None, interpolate: bool = False, seed: int = 0) -> Image.Image:
        """``gankit sample``: a grid of ``n`` new images (of digit ``label`` for conditional models), or
        with ``interpolate`` rows of images along straight lines between random latent points."""
        raise ConfigError(f"{self.kind} models do not support sampling")

    def describe(self) -> dict[str, str]:
        """Extra lines for the run's HTML summary."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Pickle-free state besides weights/optimizers to resume exactly (data stream, phase…)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        del state

    def train(self, mode: bool = True) -> GANModel:
        for net in self.networks().values():
            net.train(mode)
        return self

    def eval(self) -> GANModel:
        return self.train(False)

    # --- weights -----------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v.detach().cpu().contiguous()
                for name, net in self.networks().items() for k, v in net.state_dict().items()}  # fmt: skip

    def load_weights(self, tensors: Mapping[str, torch.Tensor], source: str) -> None:
        for name, net in self.networks().items():
            prefix = f"{name}."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                net.load_state_dict(state)
            except RuntimeError as e:
                raise CheckpointError(f"{source}: weights of {name!r} do not fit this model ({e})") from None


class BatchStream:
    """Random minibatches from in-memory tensors, one shuffled epoch after another, with its own
    generator: the stream is a pure function of (seed, position) and resumes exactly."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int):
        if not tensors or len(tensors[0]) == 0:
            raise ConfigError("BatchStream needs at least one non-empty tensor")
        self.tensors, self.batch_size = tensors, min(batch_size, len(tensors[0]))
        self.generator = torch.Generator().manual_seed(seed)
        self._order, self._pos = torch.empty(0, dtype=torch.long), 0

    def next(self) -> tuple[torch.Tensor, ...]:
        if self._pos + self.batch_size > len(self._order):
            self._order, self._pos = torch.randperm(len(self.tensors[0]), generator=self.generator), 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return tuple(t[idx] for t in self.tensors)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self._order, "pos": self._pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._order, self._pos = state["order"], int(state["pos"])


# --- building and loading ---------------------------------------------------------------------------------
def build_model(kind: str, config: CompanionConfig) -> GANModel:
    cls = model_class(kind)
    device = resolve_device(config.device)
    configure_runtime(threads=config.threads, deterministic=False)
    seed_everything(config.seed)
    return cls(config, device)


def read_run_config(run_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """(kind, options) of a companion run folder, or None when it is not one (e.g. a CycleGAN run)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or data.get("model") not in COMPANIONS:
        return None
    kind = data.pop("model")
    return kind, data


def is_companion_run(path: str | Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return read_run_config(path) is not None
    if path.suffix == ".safetensors" and path.is_file():
        return load_safetensors(path)[1].get("model") in COMPANIONS
    return False


def load_model(path: str | Path, *, device: str = "auto") -> GANModel:
    """A trained companion model from its run folder (``model.safetensors``, else the newest
    checkpoint) or a ``model.safetensors`` file, in eval mode."""
    path = Path(path)
    if path.is_dir():
        weights = path / "model.safetensors"
        if not weights.is_file():
            ckpts = list_checkpoints(path / "checkpoints")
            if not ckpts:
                raise CheckpointError(f"{path}: neither model.safetensors nor checkpoints/step_*.pt found")
            state = safe_torch_load(ckpts[-1][1])
            cls = model_class(state["model"])
            config = cls.config_class.from_dict(state["config"], source=str(ckpts[-1][1]))
            model = build_model(state["model"], dataclasses.replace(config, device=device))
            for name, net in model.networks().items():
                net.load_state_dict(state["networks"][name])
            model.load_extra_state(state.get("extra", {}))
            return model.eval()
        path = weights
    tensors, meta = load_safetensors(path)
    if meta.get("model") not in COMPANIONS:
        raise CheckpointError(f"{path}: not a gankit cgan/sgan/progan model (metadata model={meta.get('model')!r})")
    cls = model_class(meta["model"])
    config = cls.config_class.from_dict(json.loads(meta["config"]), source=str(path))
    model = build_model(meta["model"], dataclasses.replace(config, device=device))
    model.load_extra_state(json.loads(meta.get("extra", "{}")))
    model.load_weights({k: v.to(model.device) for k, v in tensors.items()}, str(path))
    return model.eval()


# --- the loop -------------------------------------------------------------------------------------------
def _checkpoint(model: GANModel, step: int) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "model": model.kind,
        "config": model.config.to_dict(),
        "step": step,
        "networks": {k: v.state_dict() for k, v in model.networks().items()},
        "optimizers": {k: v.state_dict() for k, v in model.optimizers().items()},
        "extra": model.extra_state(),
        "rng": rng_state(),
    }


def _restore(model: GANModel, state: Mapping[str, Any], source: str) -> int:
    try:
        for name, net in model.networks().items():
            net.load_state_dict(state["networks"][name])
        for name, opt in model.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        model.load_extra_state(state.get("extra", {}))
        set_rng_state(state["rng"])
        return int(state["step"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{source}: checkpoint does not fit this model ({e})") from None


def _write_report(model: GANModel, run_dir: Path, step: int, data: str) -> None:
    from gankit.training.report import plot_losses, write_index_html

    csv = run_dir / "losses.csv"
    if csv.is_file() and csv.stat().st_size > 0:
        plot_losses(csv, run_dir / "losses.png")
    entries = [(int(p.stem.split("_")[1]), f"samples/{p.name}") for p in sorted(run_dir.glob("samples/step_*.png"))]
    c = model.config
    summary = {"data": data, "progress": f"step {step} of {c.steps}",
               "game": f"{c.gan_loss}, n_critic {c.n_critic}, label smoothing {c.label_smoothing}, "
                       f"label noise {c.label_noise}", **model.describe()}  # fmt: skip
    write_index_html(run_dir, f"{model.kind} · {c.dataset} · step {step}/{c.steps}", c.to_dict(), entries,
                     extra=summary)  # fmt: skip


def save_final(model: GANModel, run_dir: Path) -> Path:
    meta = {"model": model.kind, "config": json.dumps(model.config.to_dict()),
            "extra": json.dumps(_jsonable(model.extra_state()))}  # fmt: skip
    return save_safetensors(model.weights(), run_dir / "model.safetensors", metadata=meta)


def _jsonable(state: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-representable part of the extra state (e.g. a progressive GAN's current phase)."""
    return {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool, list))}


def train_companion(kind: str, config: CompanionConfig, *, progress: bool = True, resume: bool = False,
                    log=print) -> dict[str, Any]:  # fmt: skip
    """Train (or with ``resume`` continue) a companion model in ``config.out``; returns the summary."""
    from tqdm import tqdm

    from gankit.training.report import LossLog

    run_dir = Path(config.out)
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if ckpts and not resume:
        raise CheckpointError(f"{run_dir}: already holds a run; resume it with `gankit train --resume {run_dir}` "
                              "or choose another --out")  # fmt: skip
    model = build_model(kind, config)
    data = model.prepare_training(config.data_root)
    step = 0
    if resume:
        errors = []
        for _, path in reversed(ckpts):
            try:
                step = _restore(model, safe_torch_load(path, map_location=model.device), str(path))
                break
            except CheckpointError as e:
                errors.append(str(e))
                log(f"warning: skipping unreadable checkpoint: {e}")
        else:
            raise CheckpointError(f"{run_dir}: no readable checkpoint to resume from: " + "; ".join(errors))
        log(f"resuming {run_dir} from step {step}")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump({"model": kind, **config.to_dict()}, sort_keys=False))
    losses = LossLog(run_dir / "losses.csv")
    losses.truncate_after(step)
    t0, last = time.perf_counter(), {}
    bar = tqdm(total=config.steps, initial=step, disable=not progress, unit="it", dynamic_ncols=True,
               desc=f"{kind} {run_dir.name}")  # fmt: skip
    model.train()
    try:
        while step < config.steps:
            step += 1
            terms = model.train_step(step)
            if step % config.log_every == 0 or step == config.steps:
                last = {k: float(v.detach() if torch.is_tensor(v) else v) for k, v in terms.items()}
                bad = [k for k, v in last.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(
                        f"{run_dir}: loss {', '.join(bad)} is not finite at step {step}; "
                        "the last checkpoint is intact (lower --lr or change --gan-loss)"
                    )
                losses.append(step, last)
                bar.set_postfix({k: f"{v:.3f}" for k, v in list(last.items())[:4]}, refresh=False)
            bar.update(1)
            if step % config.sample_every == 0 or step == config.steps:
                model.eval()
                with torch.no_grad():
                    save_image_atomic(model.sample_grid(step), run_dir / "samples" / f"step_{step:07d}.png")
                model.train()
            if step % config.checkpoint_every == 0 or step == config.steps:
                atomic_torch_save(_checkpoint(model, step), run_dir / "checkpoints" / f"step_{step:07d}.pt")
                prune_checkpoints(run_dir / "checkpoints", config.keep_checkpoints)
                _write_report(model, run_dir, step, data)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    model_path = save_final(model, run_dir)
    _write_report(model, run_dir, step, data)
    summary = {"model": kind, "step": step, "seconds": round(seconds, 2), "final_losses": last,
               "device": str(model.device), "threads": torch.get_num_threads(), "torch": torch.__version__}  # fmt: skip
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    log(f"done: {step} steps in {seconds:.1f}s\n  run folder : {run_dir}\n  report     : {run_dir / 'index.html'}\n"
        f"  model      : {model_path}\n  samples    : {run_dir / 'samples'}")  # fmt: skip
    return summary


def resume_companion(run_dir: str | Path, *, steps: int | None = None, progress: bool = True, log=print):
    found = read_run_config(Path(run_dir))
    if found is None:
        raise ConfigError(f"{run_dir}: not a cgan/sgan/progan run folder (config.yaml without model: KIND)")
    kind, options = found
    config = model_class(kind).config_class.from_dict(options, source=str(Path(run_dir) / "config.yaml"))
    config = dataclasses.replace(config, out=str(run_dir), **({"steps": steps} if steps else {})).validate()
    return train_companion(kind, config, progress=progress, resume=True, log=log)
