"""One checkpoint schema and one weights layout for every model kind, and loading a trained model
from a run folder, a ``model.safetensors`` or a checkpoint.

Checkpoint (``checkpoints/step_*.pt``, read with ``torch.load(weights_only=True)``)::

    {"format": "gankit-checkpoint-2", "kind", "gankit_version", "config", "step",
     "networks": {name: state_dict}, "optimizers": {name: state_dict}, "scaler",
     "extra": model.extra_state(), "data": batch-source position, "rng": RNG states,
     "ranks": [{"rng", "extra", "data"} of every rank] (data-parallel runs only; the top level holds rank 0's),
     "checksum": content_digest of everything else}

The checksum is verified on load: a damaged file that still unpickles is refused like a truncated one
(and :func:`newest_readable_checkpoint` falls back to an older checkpoint).

``model.safetensors``: tensors ``NETWORK.PARAMETER`` of the model's exported networks; metadata
``format = gankit-model-2``, ``kind``, ``config`` (JSON), ``extra`` (JSON), ``gankit_version``.

Run folders of gankit 0.1.0 keep loading: its CycleGAN checkpoints (``gankit-train-1``) and weights
(``format = gankit-cyclegan-1``) and its companion checkpoints (``gankit-companion-1``) and weights
(``model = KIND``) are read into the same structures by :func:`upgrade_checkpoint` and
:func:`read_weights`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankit.config import RunConfig
from gankit.errors import CheckpointError
from gankit.io import content_digest, list_checkpoints, load_safetensors, safe_torch_load, save_safetensors
from gankit.models.base import Model
from gankit.models.registry import model_class, model_kinds
from gankit.runtime import resolve_device
from gankit.version import VERSION

CHECKPOINT_FORMAT = "gankit-checkpoint-2"
WEIGHTS_FORMAT = "gankit-model-2"
LEGACY_CYCLEGAN_CHECKPOINT = "gankit-train-1"
LEGACY_COMPANION_CHECKPOINT = "gankit-companion-1"
LEGACY_CYCLEGAN_WEIGHTS = "gankit-cyclegan-1"
TRAINING_CADENCES = ("steps", "checkpoint_every", "sample_every", "log_every")


# --- checkpoints ------------------------------------------------------------------------------------------
def checkpoint_state(model: Model, step: int, data: Mapping[str, Any], rng: Mapping[str, Any],
                     ranks: list[dict[str, Any]] | None = None,
                     effort: Mapping[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything a resume needs; ``effort`` (wall and process CPU seconds spent training so far,
    summed over resumes) rides along so that budgets in CPU time can be compared across runs."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind,
        "gankit_version": VERSION,
        "config": model.config.to_dict(),
        "step": step,
        "networks": {k: v.state_dict() for k, v in model.networks().items()},
        "optimizers": {k: v.state_dict() for k, v in model.optimizers().items()},
        "scaler": model.precision.scaler.state_dict(),
        "extra": model.extra_state(),
        "data": dict(data),
        "rng": dict(rng),
    }
    if ranks is not None:
        state["ranks"] = ranks
    if effort is not None:
        state["effort"] = {k: float(v) for k, v in effort.items()}
    return state | {"checksum": content_digest(state)}


class UnconvertibleCheckpoint(CheckpointError):
    """A readable checkpoint of an older gankit that cannot be converted exactly (not a damaged file,
    so no older checkpoint is tried in its place)."""


def _split_prefixed(state: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        net, _, rest = key.partition(".")
        nets.setdefault(net, {})[rest] = value
    return nets


def upgrade_checkpoint(state: Any, source: str) -> dict[str, Any]:
    """A checkpoint in the current schema, from any schema gankit has written."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: not a gankit training checkpoint")
    fmt = state.get("format")
    if fmt == CHECKPOINT_FORMAT:
        if "checksum" in state:
            body = {k: v for k, v in state.items() if k != "checksum"}
            if content_digest(body) != state["checksum"]:
                raise CheckpointError(f"{source}: damaged: its contents do not match the checksum written with it")
        return state
    if fmt == LEGACY_COMPANION_CHECKPOINT:
        extra = state.get("extra", {})
        return {**state, "format": CHECKPOINT_FORMAT, "kind": state["model"], "gankit_version": "0.1.0",
                "extra": extra, "data": extra}  # fmt: skip
    if fmt == LEGACY_CYCLEGAN_CHECKPOINT:
        config, step = dict(state["config"]), int(state["step"])
        n_critic = int(config.get("n_critic", 1))
        if n_critic > 1:
            if step % n_critic:
                raise UnconvertibleCheckpoint(
                    f"{source}: written by gankit 0.1.0 with --n-critic {n_critic}, when a step was one "
                    f"discriminator update; its step {step} is not a multiple of {n_critic}, so it cannot be "
                    "converted to generator steps exactly. Resume it with gankit 0.1.0, or use a checkpoint "
                    f"whose step is a multiple of {n_critic}"
                )
            step //= n_critic
            config |= {k: max(1, math.ceil(int(config[k]) / n_critic)) for k in TRAINING_CADENCES if k in config}
        return {
            "format": CHECKPOINT_FORMAT, "kind": "cyclegan", "gankit_version": "0.1.0", "config": config,
            "step": step, "networks": _split_prefixed(state["model"]),
            "optimizers": {"G": state["opt_g"], "D": state["opt_d"]}, "scaler": state.get("scaler"),
            "extra": {"pool_a": state["pool_a"], "pool_b": state["pool_b"]},
            "data": {"position": int(state["step"]) * int(config.get("batch_size", 1))},
            "rng": state["rng"], "converted_from": f"{LEGACY_CYCLEGAN_CHECKPOINT} (n_critic {n_critic})",
        }  # fmt: skip
    raise CheckpointError(f"{source}: not a gankit training checkpoint (format {fmt!r})")


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return upgrade_checkpoint(safe_torch_load(path, map_location=map_location), str(path))


def newest_readable_checkpoint(run_dir: Path, *, log=None) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of a run that reads (older ones are tried when it is truncated or
    corrupt, with a warning naming each skipped file)."""
    ckpts = list_checkpoints(Path(run_dir) / "checkpoints")
    if not ckpts:
        raise CheckpointError(f"{run_dir}: no checkpoints/step_*.pt inside")
    errors = []
    for _, path in reversed(ckpts):
        try:
            return path, read_checkpoint(path)
        except UnconvertibleCheckpoint:
            raise
        except CheckpointError as e:
            errors.append(str(e))
            if log is not None:
                log(f"warning: skipping unreadable checkpoint: {e}")
    raise CheckpointError(f"{run_dir}: no readable checkpoint: " + "; ".join(errors))


# --- weights -------------------------------------------------------------------------------------------------
def save_weights(model: Model, path: str | Path) -> Path:
    """The model's exported networks and config in one self-describing ``.safetensors`` file (what
    you ship; training state lives in the checkpoints)."""
    return write_weights(model.kind, model.config, model.weights(model.exported), model.extra_state(), path)


def write_weights(kind: str, config: RunConfig, tensors: Mapping[str, torch.Tensor], extra: Mapping[str, Any],
                  path: str | Path) -> Path:  # fmt: skip
    meta = {"format": WEIGHTS_FORMAT, "kind": kind, "gankit_version": VERSION,
            "config": json.dumps(config.to_dict()), "extra": json.dumps(_jsonable(extra))}  # fmt: skip
    return save_safetensors(dict(tensors), Path(path), metadata=meta)


def _jsonable(state: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-representable part of the extra state (e.g. a progressive GAN's current phase)."""
    return {k: v for k, v in state.items() if isinstance(v, (int, float, str, bool, list))}


@dataclass
class StoredWeights:
    kind: str
    config: dict[str, Any]
    extra: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def read_weights(path: str | Path) -> StoredWeights:
    path = Path(path)
    tensors, meta = load_safetensors(path)
    try:
        if meta.get("format") == WEIGHTS_FORMAT:
            kind = meta["kind"]
        elif meta.get("format") == LEGACY_CYCLEGAN_WEIGHTS:
            kind = "cyclegan"
        elif "model" in meta and "config" in meta:
            kind = meta["model"]
        else:
            raise KeyError("format")
        return StoredWeights(kind, json.loads(meta["config"]), json.loads(meta.get("extra", "{}")), tensors)
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a gankit model file (no gankit metadata)") from None


# --- building and loading ------------------------------------------------------------------------------------
def make_config(kind: str, options: Mapping[str, Any], source: str, **overrides: Any) -> RunConfig:
    """The config of a saved run (its options as an earlier gankit may have written them: see
    ``upgrade_saved`` of the config class), with ``overrides`` applied."""
    cls = model_class(kind).config_class
    config = cls.from_dict(cls.upgrade_saved(dict(options)), source=source)
    return dataclasses.replace(config, **overrides).validate() if overrides else config


def build_model(config: RunConfig, kind: str, device: str | torch.device = "auto", *,
                for_training: bool = True) -> Model:  # fmt: skip
    cls = model_class(kind)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return cls(config, dev, for_training=for_training)


def load_model(path: str | Path, device: str | torch.device = "auto") -> Model:
    """A trained model, in eval mode, from its run folder (``model.safetensors``, else the newest
    readable checkpoint), a ``model.safetensors`` file or a training checkpoint ``.pt``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or model file")
    if path.is_dir():
        if (path / "model.safetensors").is_file():
            path = path / "model.safetensors"
        else:
            try:
                ckpt_path, state = newest_readable_checkpoint(path)
            except CheckpointError:
                raise CheckpointError(f"{path}: neither model.safetensors nor a readable checkpoints/step_*.pt "
                                      "inside") from None  # fmt: skip
            return _from_checkpoint(state, str(ckpt_path), device)
    if path.suffix == ".safetensors":
        stored = read_weights(path)
        if stored.kind not in model_kinds():
            raise CheckpointError(f"{path}: model kind {stored.kind!r} is not registered (a missing plugin?)")
        config = make_config(stored.kind, stored.config, str(path))
        model = build_model(config, stored.kind, device, for_training=False)
        model.load_extra_state(stored.extra)
        model.load_weights({k: v.to(model.device) for k, v in stored.tensors.items()}, str(path), strict=False)
        _check_complete(model, stored.tensors, str(path))
        return model.eval()
    return _from_checkpoint(read_checkpoint(path), str(path), device)


def _check_complete(model: Model, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    wanted = model.exported or tuple(model.networks())
    missing = [n for n in wanted if n in model.networks() and not any(k.startswith(f"{n}.") for k in tensors)]
    if missing:
        raise CheckpointError(f"{source}: no weights for {', '.join(missing)}")


def _from_checkpoint(state: Mapping[str, Any], source: str, device: str | torch.device) -> Model:
    config = make_config(state["kind"], state["config"], source)
    model = build_model(config, state["kind"], device, for_training=False)
    for name, net in model.networks().items():
        if name not in state["networks"]:
            raise CheckpointError(f"{source}: no weights for {name!r}")
        try:
            net.load_state_dict(state["networks"][name])
        except RuntimeError as e:
            raise CheckpointError(f"{source}: weights of {name!r} do not fit the saved config ({e})") from None
    model.load_extra_state(state.get("extra", {}))
    return model.eval()
