"""What every unpaired image-to-image translation model shares: the data and network options (one
set of flags for CycleGAN, CUT and whatever comes next), the networks those options build, the
unaligned A/B training batches, the fixed inputs of sample grids, and the measurement of what
autograd keeps for a step. A translation model file adds its own losses and training step only."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gankit.config import GANConfig, opt, option_error
from gankit.data.loading import domain_pair, make_loader, resolve_config
from gankit.data.streams import PositionedSource
from gankit.data.transforms import PREPROCESS_CHOICES
from gankit.distributed import Shard
from gankit.losses import GAN_LOSSES
from gankit.models.base import Model, Translator
from gankit.nn import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator, init_weights
from gankit.nn.conv import ConvAlgorithmTuner, tune_convolutions
from gankit.nn.generators import generator_size_multiple
from gankit.nn.layers import ACTIVATIONS, DOWNSAMPLES, NORMS, PADDINGS

CONV_ALGORITHMS = ("tuned", "plain", "nnpack", "winograd")  # see gankit.nn.conv
INITS = ("normal", "xavier", "kaiming", "orthogonal")


@dataclass
class TranslationConfig(GANConfig):
    """The options every translation model between two image domains has: where the two domains come
    from and how images become crops, the generator and discriminator families, the adversarial game,
    the optimizer and its schedule. Defaults are CycleGAN's (Zhu et al. 2017 and its official code)."""

    # data
    dataset: str = opt("demo", "recipe name (see `gankit recipes`) or a folder with trainA/trainB", group="data")
    domain_a: list[str] = opt([], "folder(s) of domain A images (overrides --dataset)", group="data")
    domain_b: list[str] = opt([], "folder(s) of domain B images (overrides --dataset)", group="data")
    channels_a: int | None = opt(None, "channels of domain A (1 gray, 3 colour; default from the recipe)",
                                 choices=(1, 3), group="data")  # fmt: skip
    channels_b: int | None = opt(None, "channels of domain B", choices=(1, 3), group="data")
    load_size: int | None = opt(None, "resize images to this before cropping (default from the recipe)", group="data",
                                ge=16)  # fmt: skip
    size: int | None = opt(None, "crop size in pixels (default from the recipe)", group="data", ge=16)
    preprocess: str | None = opt(None, "how images become crops (default from the recipe)", group="data",
                                 choices=PREPROCESS_CHOICES)  # fmt: skip
    flip: bool = opt(True, "random horizontal flips", group="data")
    swap: bool = opt(False, "exchange domains A and B (train B→A as a2b)", group="data")
    serial_batches: bool = opt(False, "pair B by index instead of at random", group="data")
    on_bad: str = opt("warn", "bad image files: warn (skip them) or error", choices=("warn", "error"), group="data")
    workers: int = opt(1, "data loading worker processes (0 = in the training thread)", group="data", ge=0)
    # model
    generator: str = opt("resnet", "generator architecture", choices=GENERATORS, group="model")
    blocks: int = opt(9, "residual blocks of the resnet generator (6 for 128 px, 9 for 256 px)", group="model", ge=1)
    antialias: bool = opt(False, "resnet generator: anti-aliased (blurred) down- and upsampling (Zhang 2019; CUT's "
                          "default)", group="model")  # fmt: skip
    unet_depth: int | None = opt(None, "levels of unet generators (unet 4, unet-skip 8)", group="model", ge=1)
    ngf: int | None = opt(None, "generator base width (default per architecture)", group="model", ge=1)
    kernel_size: int | None = opt(None, "kernel size of every generator and discriminator conv (seed 000: 5 for "
                                  "digits; odd); default each architecture's own (resnet and unet 3, unet-upsample, "
                                  "unet-skip and patch 4, scalar 3); the resnet's 7x7 stem and head and the pixel "
                                  "discriminator's 1x1 convs keep theirs", group="model", ge=1)  # fmt: skip
    g_kernel_size: int | None = opt(None, "generator kernel size (default --kernel-size)", group="model", ge=1)
    d_kernel_size: int | None = opt(None, "discriminator kernel size (default --kernel-size; 4 is the PatchGAN's own)",
                                    group="model", ge=1)  # fmt: skip
    activation: str = opt("relu", "generator hidden activation: relu (each architecture's own) or leaky: "
                          "LeakyReLU(0.2) in place of every ReLU (GANs in Action §5.4.5: avoid sparse gradients; the "
                          "discriminators use LeakyReLU already)", choices=ACTIVATIONS, group="model")  # fmt: skip
    downsample: str = opt("stride", "how generators and discriminators halve the resolution: stride (stride-2 convs) "
                          "or avgpool (stride-1 conv, then 2x2 average pooling; GANs in Action §5.4.5; 4x the "
                          "multiply-adds of those convs)", choices=DOWNSAMPLES, group="model")  # fmt: skip
    g_padding: str = opt("reflect", "generator padding", choices=PADDINGS, group="model")
    dropout: float = opt(0.0, "dropout in generator blocks", group="model", ge=0, lt=1)
    final: str = opt("tanh", "generator output activation", choices=("tanh", "sigmoid", "none"), group="model")
    discriminator: str = opt("patch", "discriminator architecture", choices=DISCRIMINATORS, group="model")
    ndf: int | None = opt(None, "discriminator base width", group="model", ge=1)
    d_layers: int = opt(3, "stride-2 layers of the PatchGAN (3 = 70x70 patches)", group="model", ge=1)
    d_padding: str = opt("zeros", "discriminator padding (reflect per seed 003)", choices=PADDINGS, group="model")
    d_sigmoid: bool = opt(False, "sigmoid on discriminator outputs (use only with --gan-loss lsgan)", group="model")
    norm: str = opt("instance", "normalization layer", choices=NORMS, group="model")
    init: str = opt("normal", "weight init", choices=INITS, group="model")
    init_gain: float = opt(0.02, "std of the normal init", group="model", gt=0)
    # losses
    gan_loss: str = opt("lsgan", "adversarial game", choices=GAN_LOSSES, group="loss")
    # optimization
    optimizer: str = opt("adam", "optimizer", choices=("adam", "rmsprop"), group="optim")
    rms_alpha: float = opt(0.9, "RMSprop smoothing constant (Keras rho)", group="optim", ge=0, lt=1)
    weight_decay: float = opt(0.0, "L2 weight decay", group="optim", ge=0)
    schedule: str = opt("linear", "lr schedule", choices=("linear", "constant", "inverse-time"), group="optim")
    decay_start: float = opt(0.5, "linear: fraction of --steps after which lr decays linearly to 0", group="optim",
                             ge=0, le=1)  # fmt: skip
    time_decay: float = opt(6e-8, "inverse-time: lr / (1 + decay·step), Keras 'decay' (seed 000)", group="optim",
                            ge=0)  # fmt: skip
    # run
    steps: int = opt(2000, "training steps: generator updates (each after --n-critic discriminator updates)",
                     group="run", ge=1)  # fmt: skip
    batch_size: int = opt(1, "images per domain per batch", group="run", ge=1)
    conv_algorithms: str = opt("tuned", "CPU convolutions: tuned (time oneDNN, NNPACK Winograd/FFT, Winograd weight "
                               "gradients and column taps once per layer shape and keep the fastest; off with "
                               "--deterministic), plain (PyTorch's own), nnpack (NNPACK wherever it applies) or "
                               "winograd (NNPACK and Winograd weight gradients wherever they apply): the last two "
                               "to check their numerics", choices=CONV_ALGORITHMS,
                               group="run")  # fmt: skip
    out: str = opt("runs/translation", "run folder", group="run")

    def validate(self):
        super().validate()
        if self.size is not None:
            multiple = generator_size_multiple(self.generator, depth=self.unet_depth)
            if self.size % multiple:
                raise option_error("size", self.size, f"--generator {self.generator} needs a multiple of {multiple}")
            resizes = self.preprocess in (None, "resize_and_crop", "scale_shortside_and_crop")
            if self.load_size is not None and self.load_size < self.size and resizes:
                raise option_error("load_size", self.load_size, f"must be ≥ --size {self.size}")
        if self.kernel_size is not None and self.kernel_size % 2 == 0:
            raise option_error("kernel_size", self.kernel_size, "expected an odd number (the generators pad 'same' on "
                               "both sides; --d-kernel-size takes even ones)")  # fmt: skip
        if self.g_kernel_size is not None and self.g_kernel_size % 2 == 0 and self.generator in ("resnet", "unet"):
            raise option_error("g_kernel_size", self.g_kernel_size, f"the {self.generator} generator needs an odd "
                               "kernel (it pads 'same' on both sides)")  # fmt: skip
        if self.d_kernel_size not in (None, 1) and self.discriminator == "pixel":
            raise option_error("d_kernel_size", self.d_kernel_size, "the pixel discriminator has 1x1 convs only (it "
                               "judges single pixels)")  # fmt: skip
        if self.antialias and self.generator != "resnet":
            raise option_error("antialias", True, f"an option of the resnet generator, not of {self.generator}")
        if self.antialias and self.downsample != "stride":
            raise option_error("downsample", self.downsample, "the antialiased resnet generator (--antialias) "
                               "downsamples by blurring; add --no-antialias")  # fmt: skip
        return self

    @property
    def generator_kernel(self) -> int | None:
        """The generators' kernel size (None: each architecture's own)."""
        return self.g_kernel_size or self.kernel_size

    @property
    def discriminator_kernel(self) -> int | None:
        """The discriminators' kernel size (None: each architecture's own; the pixel discriminator's is 1)."""
        if self.discriminator == "pixel":
            return self.d_kernel_size
        return self.d_kernel_size or self.kernel_size

    @classmethod
    def upgrade_saved(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Options saved by an earlier gankit, with the meaning they had then. Until ``g_kernel_size`` and
        ``d_kernel_size`` existed, every saved config held ``kernel_size`` (default 3), which only the
        unet generator and the scalar discriminator read; the resnet, unet-upsample and unet-skip
        generators and the patch and pixel discriminators kept their own kernels. A saved config
        without those two keys (configs saved since always have them) is such a config: its
        ``kernel_size`` moves to the networks that read it, so its run folder rebuilds the networks
        it trained. Hand-written YAML is read as written (this runs on saved configs only)."""
        data = super().upgrade_saved(data)
        if "kernel_size" not in data or "g_kernel_size" in data or "d_kernel_size" in data:
            return data
        fields = cls.__dataclass_fields__
        old = data["kernel_size"]
        generator = data.get("generator", fields["generator"].default)
        discriminator = data.get("discriminator", fields["discriminator"].default)
        return data | {"kernel_size": None, "g_kernel_size": old if generator == "unet" else None,
                       "d_kernel_size": old if discriminator == "scalar" else None}  # fmt: skip


def build_translation_generator(config: TranslationConfig, in_channels: int, out_channels: int, *,
                                luminance: str | None = None) -> nn.Module:  # fmt: skip
    """The generator the options describe (before :func:`init_translation_networks`); ``luminance`` ties a
    resnet generator's output to its input's luma (:func:`~gankit.nn.layers.with_input_luminance`)."""
    c = config
    return build_generator(c.generator, in_channels, out_channels, ngf=c.ngf, n_blocks=c.blocks, depth=c.unet_depth,
                        kernel_size=c.generator_kernel, norm=c.norm, padding=c.g_padding, dropout=c.dropout,
                        final=c.final, antialias=c.antialias, activation=c.activation,
                        downsample=c.downsample, luminance=luminance)  # fmt: skip


def build_translation_discriminator(config: TranslationConfig, channels: int) -> nn.Module:
    """The discriminator the options describe for images of ``channels``."""
    c = config
    return build_discriminator(c.discriminator, channels, ndf=c.ndf, n_layers=c.d_layers, norm=c.norm,
                            padding=c.d_padding, sigmoid=c.d_sigmoid, image_size=c.size,
                            kernel_size=c.discriminator_kernel, downsample=c.downsample)  # fmt: skip


def init_translation_networks(config: TranslationConfig, networks: Iterable[nn.Module]) -> None:
    """``--init`` on each network, once all are built (the order of random draws reproduces runs)."""
    for net in networks:
        init_weights(net, config.init, config.init_gain)


def conv_tuner_for(config: TranslationConfig, module: nn.Module) -> ConvAlgorithmTuner | None:
    """Hand the tuned convolutions of ``module`` a tuner as ``--conv-algorithms`` asks (none with
    ``plain`` or ``--deterministic``); returns it (timings, not weights: not in the state dict)."""
    if config.conv_algorithms == "plain" or config.deterministic:
        return None
    force = {"nnpack": ("nnpack",), "winograd": ("nnpack", "winograd")}.get(config.conv_algorithms, ())
    tuner = ConvAlgorithmTuner(force=force)
    tune_convolutions(module, tuner)
    return tuner


def unaligned_batches(config: TranslationConfig, pair, shard: Shard) -> PositionedSource:
    """Batches ``{"A": …, "B": …}`` of unaligned crops of the two domains, each a pure function of
    (seed, position), so that resume and data-parallel ranks see exactly the images they should."""
    data = "folders" if config.domain_a else config.dataset
    global_batch = config.batch_size * shard.world
    return PositionedSource(
        f"{data}: {pair.description or ''}".strip(": "),
        lambda position: iter(make_loader(config, pair, position // global_batch, shard)),
        items_per_batch=global_batch,
    )


def fixed_grid_inputs(config: TranslationConfig, train_pair, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` evenly spaced test images of each domain (training images where there is no test split),
    centre-cropped to the training size: the same inputs in every sample grid."""
    from gankit.data.images import center_square_batch

    try:
        pair = domain_pair(config, "test")
    except Exception:  # recipes without a test split show training images
        pair = train_pair or domain_pair(config, "train")
    return center_square_batch(pair.source_a, config.size, n), center_square_batch(pair.source_b, config.size, n)


def score_real_and_fake(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, one_pass: bool):
    """D's scores of real and fake images; in one pass of both when ``one_pass`` (exact when every image
    is normalised on its own, i.e. not with batch norm) and the shapes allow it."""
    if one_pass and real.shape[1:] == fake.shape[1:]:
        return d(torch.cat([real, fake])).split([real.shape[0], fake.shape[0]])
    return d(real), d(fake)


def saved_tensor_bytes(parameters: Iterable[torch.Tensor], step: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for the backward pass while ``step`` runs: measured, not
    guessed. Storages of ``parameters`` (already resident) and a storage saved twice (a conv's input
    is often a ReLU's output too) are not counted; the global RNG is left untouched."""
    seen = {p.untyped_storage().data_ptr() for p in parameters}
    saved = 0

    def count(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            saved += storage.nbytes()
        return t

    with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        step()
    return saved


class UnpairedTranslationModel(Model, Translator):
    """A model that learns to translate between two unaligned image domains: the config resolved
    from the data (channels, size), the training pair loaded once, unaligned batches, the fixed
    inputs of its sample grids and the measurement of its activations. Subclasses build their
    networks and say how one training step and its largest update run."""

    N_GRID_IMAGES = 4

    def __init__(self, config: TranslationConfig, device: torch.device, *, for_training: bool = True):
        pair = None
        if config.channels_a is None or config.channels_b is None or config.size is None:
            pair = domain_pair(config, "train")
            config = resolve_config(config, pair)
        super().__init__(config, device, for_training=for_training)
        self.pair = pair
        self._fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def training_data(self) -> PositionedSource:
        if self.pair is None:
            self.pair = domain_pair(self.config, "train")
        return unaligned_batches(self.config, self.pair, self.shard)

    def fixed_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The A and B images of every sample grid (see :func:`fixed_grid_inputs`)."""
        if self._fixed is None:
            self._fixed = fixed_grid_inputs(self.config, self.pair, self.N_GRID_IMAGES)
        return self._fixed

    @property
    def image_size(self) -> int:
        return int(self.config.size)

    def probed_activation_bytes(self, update: Callable[[torch.Tensor, torch.Tensor], object]) -> int:
        """What autograd keeps for ``update(a, b)`` (the model's largest update) on one image of each
        domain at up to 64 px, in eval mode (normalisation statistics untouched), scaled by pixels and
        batch size: activations grow linearly with both (:func:`saved_tensor_bytes`)."""
        c = self.config
        probe = min(c.size, 64)
        a = torch.zeros(1, c.channels_a, probe, probe, device=self.device)
        b = torch.zeros(1, c.channels_b, probe, probe, device=self.device)
        params = [p for net in self.networks().values() for p in net.parameters()]
        was_training = next(iter(self.networks().values())).training
        self.eval()
        try:
            with self.precision.autocast():
                saved = saved_tensor_bytes(params, lambda: update(a, b))
        finally:
            self.train(was_training)
        return int(saved * (c.size / probe) ** 2 * c.batch_size)
