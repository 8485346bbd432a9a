"""Typed run configuration. Every model declares one dataclass deriving from :class:`RunConfig` (the
options every run shares: data, steps, seed, device, threads, precision, cadence, output folder),
usually through :class:`GANConfig` (the adversarial game and its optimizer). A config is built from
flags and/or YAML, checked once here against the ranges and choices its fields declare, and saved
with every checkpoint so that a run can be resumed or its model rebuilt from its folder alone."""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from gankit.errors import ConfigError
from gankit.losses import GAN_LOSSES

AMP_MODES = ("off", "bf16", "fp16", "auto")


def opt(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    group: str = "",
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A config field carrying its CLI help text and what values it allows (``choices`` or bounds
    ``ge``/``gt``/``le``/``lt``; float values must also be finite). :meth:`ConfigIO.validate` checks
    them, so a bad value is refused when the config is built, before any work starts."""
    meta = {"help": help, "choices": choices, "group": group, "ge": ge, "gt": gt, "le": le, "lt": lt}
    kw: dict[str, Any] = {"metadata": meta}
    if isinstance(default, (list, dict)):
        kw["default_factory"] = lambda: type(default)(default)
    else:
        kw["default"] = default
    return field(**kw)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _allowed(meta: typing.Mapping[str, Any]) -> str:
    parts = [f"{op} {meta[key]:g}" for key, op in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
             if meta.get(key) is not None]  # fmt: skip
    return " and ".join(parts)


def check_value(name: str, value: Any, meta: typing.Mapping[str, Any]) -> str | None:
    """Why ``value`` is not allowed for the field (None when it is)."""
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    choices = meta.get("choices")
    for v in values:
        if choices is not None and v not in choices:
            return f"expected one of {', '.join(map(str, choices))}"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        bounds = _allowed(meta)
        if isinstance(v, float) and not math.isfinite(v):
            return "expected a finite number" + (f" {bounds}" if bounds else "")
        ok = all(
            bound is None or test(v, bound)
            for bound, test in (
                (meta.get("ge"), lambda a, b: a >= b),
                (meta.get("gt"), lambda a, b: a > b),
                (meta.get("le"), lambda a, b: a <= b),
                (meta.get("lt"), lambda a, b: a < b),
            )
        )
        if not ok:
            return f"expected a number {bounds}"
    return None


def option_error(name: str, value: Any, problem: str) -> ConfigError:
    """The one-line usage error for one option: ``--lr nan: expected a finite number > 0``."""
    err = ConfigError(f"{flag_name(name)} {value!r}: {problem}")
    err.option, err.value, err.problem = name, value, problem
    return err


class ConfigIO:
    """YAML/dict (de)serialization and checking shared by every run config: unknown keys, wrong
    types and values outside a field's declared range are errors naming the option (and the file
    it came from), never silently accepted."""

    def validate(self):
        """Check every field against its declared choices and bounds; subclasses add cross-field
        rules (calling ``super().validate()`` first) and return ``self``."""
        for f in dataclasses.fields(self):
            problem = check_value(f.name, getattr(self, f.name), f.metadata)
            if problem:
                raise option_error(f.name, getattr(self, f.name), problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config", flags: typing.Collection[str] = ()):
        """Build and validate from plain values. Errors name ``source`` (a file) unless the option is
        one of ``flags`` (given on the command line), which are named as flags."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}")
        values = {}
        for k, v in data.items():
            label = flag_name(k) if k in flags else f"{source}: {k}"
            values[k] = coerce(cls, k, v, label)
        try:
            return cls(**values).validate()
        except ConfigError as e:
            name = getattr(e, "option", None)
            if name is None or name in flags or name not in data:
                raise
            raise ConfigError(f"{source}: {name} = {e.value!r}: {e.problem}") from None

    @classmethod
    def upgrade_saved(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Options a run saved (in a checkpoint or ``model.safetensors``) with an earlier gankit, rewritten
        so that they build today what they built then; :func:`gankit.models.persist.make_config` calls it
        before :meth:`from_dict`. Config classes whose options changed meaning override it (calling
        ``super()`` first); unchanged, the options are returned as they are."""
        return data

    def save_yaml(self, path: Path) -> None:
        from gankit.io import atomic_write_text

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load_yaml(cls, path: str | Path):
        return cls.from_dict(read_yaml_options(path), source=str(path))


def read_yaml_options(path: str | Path) -> dict[str, Any]:
    """``option: value`` pairs of a YAML config file (dashes in keys read as underscores)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


LR_SCALINGS = ("none", "linear", "sqrt")


@dataclass
class RunConfig(ConfigIO):
    """The options of a run, whatever the model: where the data is, how long and how to run, and
    where to write. Declared once here, so every model gets the same flags with the same meaning."""

    # data
    dataset: str = opt("demo", "dataset or recipe name", group="data")
    data_root: str | None = opt(None, "data folder (default $GANKIT_DATA or ../shared/data)", group="data")
    workers: int = opt(0, "data loading worker processes for image folders (0 = in the training thread)",
                       group="data", ge=0)  # fmt: skip
    # run
    steps: int = opt(2000, "training steps: generator updates (each after --n-critic discriminator updates)",
                     group="run", ge=1)  # fmt: skip
    batch_size: int = opt(1, "images per batch", group="run", ge=1)
    seed: int = opt(0, "random seed", group="run", ge=0)
    deterministic: bool = opt(False, "deterministic algorithms (bit-exact resume and reruns)", group="run")
    device: str = opt("auto", "cpu, cuda, cuda:N or auto", group="run")
    amp: str = opt("off", "mixed precision: off, bf16, fp16 (cuda) or auto", choices=AMP_MODES, group="run")
    threads: int | None = opt(None, "CPU threads for torch (default: torch's choice)", group="run", ge=1)
    compile: bool = opt(False, "torch.compile the networks for the training step (inductor; needs a C++ compiler "
                        "on CPU; minutes of compilation at start, faster iterations after)", group="run")  # fmt: skip
    checkpoint_every: int = opt(1000, "steps between resumable checkpoints", group="run", ge=1)
    memory_check: bool = opt(True, "refuse to start when the estimated peak memory exceeds the memory available "
                              "(--no-memory-check: try anyway)", group="run")  # fmt: skip
    checkpoint_minutes: float = opt(10.0, "also checkpoint when this many minutes have passed since the last "
                                    "checkpoint (0 = by steps only)", group="run", ge=0)  # fmt: skip
    keep_checkpoints: int = opt(2, "how many of the newest --checkpoint-every checkpoints to keep (of those "
                                "written in between, by the timer or a stop, only the newest)", group="run",
                                ge=1)  # fmt: skip
    sample_every: int = opt(200, "steps between sample grids", group="run", ge=1)
    log_every: int = opt(10, "steps between loss log rows", group="run", ge=1)
    tensorboard: bool = opt(False, "also log to TensorBoard (needs the tensorboard package)", group="run")
    out: str = opt("runs/run", "run folder", group="run")

    def validate(self):
        super().validate()
        if self.device != "auto" and not (self.device == "cpu" or self.device.split(":")[0] in ("cuda", "mps")):
            raise option_error("device", self.device, "expected cpu, cuda, cuda:N or auto")
        return self


@dataclass
class GANConfig(RunConfig):
    """:class:`RunConfig` plus the adversarial game, its tricks (GANs in Action ch.5) and Adam."""

    gan_loss: str = opt("vanilla", "adversarial game (vanilla = non-saturating)", choices=GAN_LOSSES, group="loss")
    n_critic: int = opt(1, "discriminator updates per generator update (each on its own batch)", group="loss", ge=1)
    label_smoothing: float = opt(0.0, "one-sided label smoothing: real target 1 − s", group="loss", ge=0, lt=1)
    label_noise: float = opt(0.0, "noisy labels: probability of flipping each real/fake target for D", group="loss",
                             ge=0, lt=0.5)  # fmt: skip
    gp_weight: float = opt(10.0, "gradient-penalty weight for wgan-gp", group="loss", ge=0)
    clip: float = opt(0.01, "weight clipping for --gan-loss wgan", group="loss", gt=0)
    lr: float = opt(2e-4, "generator learning rate", group="optim", gt=0)
    lr_d: float | None = opt(None, "discriminator learning rate (default --lr)", group="optim", gt=0)
    beta1: float = opt(0.5, "Adam β1", group="optim", ge=0, lt=1)
    beta2: float = opt(0.999, "Adam β2", group="optim", ge=0, lt=1)
    lr_scaling: str = opt("none", "data-parallel runs: multiply the learning rates by the number of processes "
                          "(linear, Goyal et al. 2017) or by its square root (sqrt)", choices=LR_SCALINGS,
                          group="optim")  # fmt: skip
    warmup_steps: int = opt(0, "ramp the learning rates linearly up to their value over this many steps",
                            group="optim", ge=0)  # fmt: skip
    accumulate: int = opt(1, "gradient accumulation: average the gradients of this many batches of --batch-size "
                          "before each update, the computation of as many data-parallel ranks (the global batch "
                          "is ranks × accumulate × batch size)", group="optim", ge=1)  # fmt: skip


@dataclass
class CompanionConfig(GANConfig):
    """Defaults shared by the companion GANs of SPEC §5 (cgan, sgan, progan), which train on whole
    datasets held in memory; each model subclasses it with its own architecture options and lists
    the data it can train on in ``DATASETS``."""

    DATASETS: ClassVar[tuple[str, ...]] = ("mnist",)

    dataset: str = opt("mnist", "dataset: mnist, or cifar10 where the model supports it", group="data")
    batch_size: int = opt(64, "images per batch", group="run", ge=1)
    sample_every: int = opt(250, "steps between sample grids", group="run", ge=1)
    out: str = opt("runs/gan", "run folder", group="run")

    def validate(self):
        super().validate()
        if self.dataset not in self.DATASETS:
            raise option_error("dataset", self.dataset, f"this model trains on {' or '.join(self.DATASETS)}")
        return self


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(type, is_list) of a field annotation such as ``int | None`` or ``list[str]``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return typing.get_args(tp)[0], True
    return tp, False


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(cls: type, name: str, value: Any, label: str) -> Any:
    """``value`` as the field's type; ``label`` names the option in the error (a flag or FILE: key)."""
    tp, is_list = _base_type(_field_types(cls)[name])
    if value is None:
        return None
    try:
        if is_list:
            return [tp(v) for v in (value if isinstance(value, list) else [value])]
        if tp is bool and isinstance(value, str):
            if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes", "on")
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if tp in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        return tp(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{label} {value!r}: expected {tp.__name__}") from None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per dataclass field (``--no-flag`` for booleans), grouped as in the dataclass;
    defaults are left as None so that YAML values are only overridden by flags actually given."""
    types_ = _field_types(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        group = groups.setdefault(meta.get("group", ""), parser.add_argument_group(f"{meta.get('group', '')} options"))
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        bounds = _allowed(meta)
        help_ = f"{meta.get('help', '')} (default: {default}{'; ' + bounds if bounds else ''})"
        tp, is_list = _base_type(types_[f.name])
        flag = flag_name(f.name)
        if tp is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif is_list:
            group.add_argument(flag, dest=f.name, nargs="+", type=tp, default=None, help=help_)
        else:
            group.add_argument(flag, dest=f.name, type=tp, default=None, choices=meta.get("choices"), help=help_)


def config_from_args(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None, *,
                     source: str = "config"):  # fmt: skip
    """Merge: dataclass defaults < ``base`` (YAML read from ``source``) < flags given on the command
    line; errors name the flag or the file and key the bad value came from."""
    data = dict(base or {})
    flags = set()
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            data[f.name] = value
            flags.add(f.name)
    return cls.from_dict(data, source=source, flags=flags)
