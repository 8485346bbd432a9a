"""Typed run configuration: one dataclass per model, built from flags and/or YAML, saved with every
checkpoint so a run can be resumed or a model rebuilt from its folder alone."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from gankit.errors import ConfigError
from gankit.losses import GAN_LOSSES
from gankit.nn import DISCRIMINATORS, GENERATORS
from gankit.nn.layers import NORMS, PADDINGS


def opt(default: Any, help: str, *, choices: tuple | None = None, group: str = "") -> Any:
    """A config field carrying its CLI help text and allowed values."""
    kw: dict[str, Any] = {"metadata": {"help": help, "choices": choices, "group": group}}
    if isinstance(default, (list, dict)):
        kw["default_factory"] = lambda: type(default)(default)
    else:
        kw["default"] = default
    return field(**kw)


class ConfigIO:
    """YAML/dict (de)serialization shared by every run config: unknown keys and wrong types are
    errors naming the file, never silently ignored."""

    def validate(self):
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config"):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}")
        return cls(**{k: coerce(cls, k, v, source) for k, v in data.items()}).validate()

    def save_yaml(self, path: Path) -> None:
        from gankit.io import atomic_write_text

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load_yaml(cls, path: str | Path):
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value")
        return cls.from_dict({k.replace("-", "_"): v for k, v in data.items()}, source=str(path))


CONV_ALGORITHMS = ("tuned", "plain", "nnpack", "winograd")  # see gankit.nn.conv


@dataclass
class CycleGANConfig(ConfigIO):
    """Everything that defines a CycleGAN run (SPEC §1–§2). Defaults follow the paper and the
    official code: resnet-9 generator, 70x70 PatchGAN, LSGAN, λ_cyc = 10, λ_id = 0.5, Adam(2e-4,
    0.5, 0.999), pool of 50, constant then linearly decaying learning rate."""

    # data
    dataset: str = opt("demo", "recipe name (see `gankit recipes`) or a folder with trainA/trainB", group="data")
    data_root: str | None = opt(None, "data folder for recipes (default $GANKIT_DATA or ../shared/data)", group="data")
    domain_a: list[str] = opt([], "folder(s) of domain A images (overrides --dataset)", group="data")
    domain_b: list[str] = opt([], "folder(s) of domain B images (overrides --dataset)", group="data")
    channels_a: int | None = opt(None, "channels of domain A (1 gray, 3 colour; default from the recipe)", group="data")
    channels_b: int | None = opt(None, "channels of domain B", group="data")
    load_size: int | None = opt(None, "resize images to this before cropping (default from the recipe)", group="data")
    size: int | None = opt(None, "crop size in pixels (default from the recipe)", group="data")
    preprocess: str | None = opt(None, "resize_and_crop | crop | scale_width | none", group="data")
    flip: bool = opt(True, "random horizontal flips", group="data")
    swap: bool = opt(False, "exchange domains A and B (train B→A as a2b)", group="data")
    serial_batches: bool = opt(False, "pair B by index instead of at random", group="data")
    on_bad: str = opt("warn", "bad image files: warn (skip them) or error", choices=("warn", "error"), group="data")
    workers: int = opt(1, "data loading worker processes (0 = in the training thread)", group="data")
    # model
    generator: str = opt("resnet", "generator architecture", choices=GENERATORS, group="model")
    blocks: int = opt(9, "residual blocks of the resnet generator (6 for 128 px, 9 for 256 px)", group="model")
    unet_depth: int | None = opt(None, "levels of unet generators (unet 4, unet-skip 8)", group="model")
    ngf: int | None = opt(None, "generator base width (default per architecture)", group="model")
    kernel_size: int = opt(3, "kernel size of the unet generator and scalar discriminator (seed 000)", group="model")
    g_padding: str = opt("reflect", "generator padding", choices=PADDINGS, group="model")
    dropout: float = opt(0.0, "dropout in generator blocks", group="model")
    final: str = opt("tanh", "generator output activation", choices=("tanh", "sigmoid", "none"), group="model")
    discriminator: str = opt("patch", "discriminator architecture", choices=DISCRIMINATORS, group="model")
    ndf: int | None = opt(None, "discriminator base width", group="model")
    d_layers: int = opt(3, "stride-2 layers of the PatchGAN (3 = 70x70 patches)", group="model")
    d_padding: str = opt("zeros", "discriminator padding (reflect per seed 003)", choices=PADDINGS, group="model")
    d_sigmoid: bool = opt(False, "sigmoid on discriminator outputs (use only with --gan-loss lsgan)", group="model")
    norm: str = opt("instance", "normalization layer", choices=NORMS, group="model")
    init: str = opt("normal", "weight init", choices=("normal", "xavier", "kaiming", "orthogonal"), group="model")
    init_gain: float = opt(0.02, "std of the normal init", group="model")
    # losses
    gan_loss: str = opt("lsgan", "adversarial game", choices=GAN_LOSSES, group="loss")
    lambda_cyc: float = opt(10.0, "cycle-consistency weight λ_cyc", group="loss")
    lambda_id: float = opt(0.5, "identity weight, relative to λ_cyc (paper 0.5; 0 disables)", group="loss")
    gp_weight: float = opt(10.0, "gradient-penalty weight for wgan-gp", group="loss")
    clip: float = opt(0.01, "weight clipping for --gan-loss wgan", group="loss")
    label_smoothing: float = opt(0.0, "one-sided label smoothing: real target 1 − s", group="loss")
    n_critic: int = opt(1, "discriminator steps per generator step", group="loss")
    # optimization
    optimizer: str = opt("adam", "optimizer", choices=("adam", "rmsprop"), group="optim")
    lr: float = opt(2e-4, "generator learning rate", group="optim")
    lr_d: float | None = opt(None, "discriminator learning rate (default --lr)", group="optim")
    beta1: float = opt(0.5, "Adam β1", group="optim")
    beta2: float = opt(0.999, "Adam β2", group="optim")
    rms_alpha: float = opt(0.9, "RMSprop smoothing constant (Keras rho)", group="optim")
    weight_decay: float = opt(0.0, "L2 weight decay", group="optim")
    schedule: str = opt("linear", "lr schedule", choices=("linear", "constant", "inverse-time"), group="optim")
    decay_start: float = opt(0.5, "linear: fraction of --steps after which lr decays linearly to 0", group="optim")
    time_decay: float = opt(6e-8, "inverse-time: lr / (1 + decay·step), Keras 'decay' (seed 000)", group="optim")
    # run
    steps: int = opt(2000, "training iterations", group="run")
    batch_size: int = opt(1, "images per domain per iteration", group="run")
    pool_size: int = opt(50, "history of generated images shown to the discriminators (0 = none)", group="run")
    seed: int = opt(0, "random seed", group="run")
    deterministic: bool = opt(False, "deterministic algorithms (bit-exact resume and reruns)", group="run")
    device: str = opt("auto", "cpu, cuda, cuda:N or auto", group="run")
    amp: str = opt("off", "mixed precision: off, bf16, fp16 (cuda) or auto", choices=("off", "bf16", "fp16", "auto"),
                   group="run")  # fmt: skip
    threads: int | None = opt(None, "CPU threads for torch (default: torch's choice)", group="run")
    compile: bool = opt(False, "torch.compile the networks for the training step (inductor; needs a C++ compiler "
                        "on CPU; minutes of compilation at start, faster iterations after)", group="run")  # fmt: skip
    conv_algorithms: str = opt("tuned", "CPU convolutions: tuned (time oneDNN, NNPACK Winograd/FFT, Winograd weight "
                               "gradients and column taps once per layer shape and keep the fastest; off with "
                               "--deterministic), plain (PyTorch's own), nnpack (NNPACK wherever it applies) or "
                               "winograd (NNPACK and Winograd weight gradients wherever they apply): the last two "
                               "to check their numerics", choices=CONV_ALGORITHMS,
                               group="run")  # fmt: skip
    checkpoint_every: int = opt(1000, "steps between resumable checkpoints", group="run")
    keep_checkpoints: int = opt(2, "how many of the newest checkpoints to keep", group="run")
    sample_every: int = opt(200, "steps between sample grids", group="run")
    log_every: int = opt(10, "steps between loss log rows", group="run")
    tensorboard: bool = opt(False, "also log to TensorBoard (needs the tensorboard package)", group="run")
    out: str = opt("runs/cyclegan", "run folder", group="run")

    def validate(self) -> CycleGANConfig:
        for name, choices in (("generator", GENERATORS), ("discriminator", DISCRIMINATORS), ("gan_loss", GAN_LOSSES)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {choices}")
        for name in ("steps", "batch_size", "checkpoint_every", "sample_every", "log_every", "n_critic"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("channels_a", "channels_b"):
            if getattr(self, name) not in (None, 1, 3):
                raise ConfigError(f"{name} must be 1 or 3, got {getattr(self, name)}")
        if self.size is not None and self.size < 16:
            raise ConfigError(f"size must be ≥ 16 px, got {self.size}")
        if not 0.0 <= self.decay_start <= 1.0:
            raise ConfigError(f"decay_start is a fraction in [0, 1], got {self.decay_start}")
        if self.pool_size < 0 or self.lambda_cyc < 0 or self.lambda_id < 0:
            raise ConfigError("pool_size, lambda_cyc and lambda_id must be ≥ 0")
        return self


@dataclass
class CompanionConfig(ConfigIO):
    """Options shared by the companion GANs of SPEC §5 (cgan, sgan, progan): data, the adversarial
    game and its tricks (GANs in Action ch.5), optimization and the run. Each model subclasses it
    with its own architecture options; ``DATASETS`` lists the data it can train on."""

    DATASETS: ClassVar[tuple[str, ...]] = ("mnist",)

    # data
    dataset: str = opt("mnist", "dataset: mnist, or cifar10 where the model supports it", group="data")
    data_root: str | None = opt(None, "data folder (default $GANKIT_DATA or ../shared/data)", group="data")
    # the game (GANs in Action ch.5)
    gan_loss: str = opt("vanilla", "adversarial game (vanilla = non-saturating)", choices=GAN_LOSSES, group="loss")
    n_critic: int = opt(1, "discriminator steps per generator step", group="loss")
    label_smoothing: float = opt(0.0, "one-sided label smoothing: real target 1 − s", group="loss")
    label_noise: float = opt(0.0, "noisy labels: probability of flipping each real/fake target for D", group="loss")
    gp_weight: float = opt(10.0, "gradient-penalty weight for wgan-gp", group="loss")
    clip: float = opt(0.01, "weight clipping for --gan-loss wgan", group="loss")
    # optimization
    lr: float = opt(2e-4, "generator learning rate", group="optim")
    lr_d: float | None = opt(None, "discriminator learning rate (default --lr)", group="optim")
    beta1: float = opt(0.5, "Adam β1", group="optim")
    beta2: float = opt(0.999, "Adam β2", group="optim")
    # run
    steps: int = opt(2000, "training iterations (generator updates)", group="run")
    batch_size: int = opt(64, "images per iteration", group="run")
    seed: int = opt(0, "random seed", group="run")
    device: str = opt("auto", "cpu, cuda, cuda:N or auto", group="run")
    threads: int | None = opt(None, "CPU threads for torch (default: torch's choice)", group="run")
    checkpoint_every: int = opt(1000, "steps between resumable checkpoints", group="run")
    keep_checkpoints: int = opt(2, "how many of the newest checkpoints to keep", group="run")
    sample_every: int = opt(250, "steps between sample grids", group="run")
    log_every: int = opt(10, "steps between loss log rows", group="run")
    out: str = opt("runs/gan", "run folder", group="run")

    def validate(self):
        if self.dataset not in self.DATASETS:
            raise ConfigError(f"dataset={self.dataset!r}: this model trains on {' or '.join(self.DATASETS)}")
        if self.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"gan_loss={self.gan_loss!r} is not one of {GAN_LOSSES}")
        for name in ("steps", "batch_size", "checkpoint_every", "sample_every", "log_every", "n_critic"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not (0.0 <= self.label_smoothing < 1.0 and 0.0 <= self.label_noise < 0.5):
            raise ConfigError("label_smoothing must be in [0, 1) and label_noise in [0, 0.5)")
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


def coerce(cls: type, name: str, value: Any, source: str) -> Any:
    tp, is_list = _base_type(_field_types(cls)[name])
    if value is None:
        return None
    try:
        if is_list:
            return [tp(v) for v in (value if isinstance(value, list) else [value])]
        if tp is bool and isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return tp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: option {name} expects {tp.__name__}, got {value!r}") from None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per dataclass field (``--no-flag`` for booleans), grouped as in the dataclass;
    defaults are left as None so that YAML values are only overridden by flags actually given."""
    types_ = _field_types(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        group = groups.setdefault(meta.get("group", ""), parser.add_argument_group(f"{meta.get('group', '')} options"))
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        help_ = f"{meta.get('help', '')} (default: {default})"
        tp, is_list = _base_type(types_[f.name])
        if tp is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif is_list:
            group.add_argument(flag, dest=f.name, nargs="+", type=tp, default=None, help=help_)
        else:
            group.add_argument(flag, dest=f.name, type=tp, default=None, choices=meta.get("choices"), help=help_)


def config_from_args(cls: type, args: argparse.Namespace, base: dict[str, Any] | None = None):
    """Merge: dataclass defaults < ``base`` (YAML) < flags given on the command line."""
    data = dict(base or {})
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            data[f.name] = value
    return cls.from_dict(data, source="command line")
