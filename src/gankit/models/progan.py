"""The progressive GAN (Karras et al. 2018; GANs in Action ch.6) on gankit's companion loop.

Both networks are built for the final resolution from the start (every weight exists in every
checkpoint); the training step decides which part runs. The schedule is a pure function of the step:
``--steps`` is split into one phase per resolution (4, 8, 16, 32 by default; ``--phase-steps`` fixes
the length instead, the last phase taking whatever is left), and every phase after the first begins
with a fade-in during which ``alpha`` rises linearly from 0 to 1 over ``--fade-fraction`` of the
phase. Resume, ``load_model`` and ``gankit sample`` therefore rebuild the right resolution from the
step alone. The four techniques of the paper are switches (``--no-fade-in``, ``--no-minibatch-std``,
``--no-equalized-lr``, ``--no-pixel-norm``); every adversarial game of :mod:`gankit.losses` works
(WGAN-GP with the paper's drift term is the default, as in the paper).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gankit.config import CompanionConfig, opt, option_error
from gankit.data.grid import make_grid
from gankit.data.images import uint8_to_unit
from gankit.data.streams import BatchStream, StreamSource
from gankit.errors import ConfigError, DataError
from gankit.losses import GAN_LOSSES, AdversarialLoss, gradient_penalty
from gankit.models.base import Model, latent_lines, make_optimizer, update_average
from gankit.models.registry import register
from gankit.nn.progressive import (
    AtDepth,
    ProgressiveDiscriminator,
    ProgressiveGenerator,
    clip_effective_weights,
    real_at,
)

DATASETS = ("cifar10", "mnist")
GRID_SIDE = 8


@dataclass
class ProGANConfig(CompanionConfig):
    DATASETS = DATASETS
    dataset: str = opt("cifar10", "cifar10 (32×32 colour) or mnist (padded to 32×32)", choices=DATASETS,
                       group="data")  # fmt: skip
    flip: bool = opt(True, "random horizontal flips of the training images (cifar10; the paper's mirror augment)",
                     group="data")  # fmt: skip
    # the game: the paper's WGAN-GP with Adam(1e-3, 0, 0.99)
    gan_loss: str = opt("wgan-gp", "adversarial game (paper: wgan-gp)", choices=GAN_LOSSES, group="loss")
    drift: float = opt(0.001, "drift penalty ε·E[D(real)²] for wgan/wgan-gp critics (paper 0.001)", group="loss")
    lr: float = opt(1e-3, "generator learning rate (paper 1e-3)", group="optim")
    beta1: float = opt(0.0, "Adam β1 (paper 0)", group="optim")
    beta2: float = opt(0.99, "Adam β2 (paper 0.99)", group="optim")
    # growing
    start_resolution: int = opt(4, "first resolution", group="model")
    final_resolution: int = opt(32, "last resolution (must be the data's 32)", group="model")
    phase_steps: int = opt(0, "steps per resolution, fade-in included (0: --steps split evenly)", group="model")
    fade_fraction: float = opt(0.5, "share of each growing phase spent fading the new block in", group="model")
    # the four techniques (each a switch)
    fade_in: bool = opt(True, "blend new blocks in smoothly (off: they switch on at once)", group="model")
    minibatch_std: bool = opt(True, "minibatch standard-deviation feature map in the discriminator", group="model")
    equalized_lr: bool = opt(True, "equalized learning rate (run-time He scaling of N(0,1) weights)", group="model")
    pixel_norm: bool = opt(True, "pixelwise feature normalization in the generator", group="model")
    # sizes
    latent_dim: int = opt(128, "latent size", group="model")
    fmap_base: int = opt(512, "feature maps at resolution r: min(fmap_max, fmap_base / r)", group="model")
    fmap_max: int = opt(64, "most feature maps per layer", group="model")
    mbstd_group: int = opt(4, "group size of the minibatch std", group="model")
    ema: float = opt(0.99, "decay of the generator's moving average used for samples (0: off)", group="model")
    # run
    steps: int = opt(2000, "training steps (generator updates), over all resolutions", group="run", ge=1)
    batch_size: int = opt(32, "images per iteration", group="run")
    sample_every: int = opt(250, "steps between sample grids", group="run")
    out: str = opt("runs/progan", "run folder", group="run")

    def validate(self):
        super().validate()
        r = self.final_resolution // max(1, self.start_resolution)
        rules = (
            ("final_resolution", self.final_resolution == 32, f"must be 32 (the size of {self.dataset})"),
            ("start_resolution", self.start_resolution >= 4 and r * self.start_resolution == self.final_resolution
             and not r & (r - 1), "expected ≥ 4, with the final resolution a power-of-2 multiple of it"),
            ("fade_fraction", 0.0 < self.fade_fraction <= 1.0, "expected a fraction in (0, 1]"),
            ("phase_steps", self.phase_steps >= 0, "expected a number ≥ 0"),
            ("ema", 0.0 <= self.ema < 1.0, "expected a decay in [0, 1)"),
            ("latent_dim", self.latent_dim >= 1, "expected a number ≥ 1"),
            ("mbstd_group", self.mbstd_group >= 1, "expected a number ≥ 1"),
        )  # fmt: skip
        for name, ok, problem in rules:
            if not ok:
                raise option_error(name, getattr(self, name), problem)
        return self


def load_training_images(dataset: str, data_root: str | None) -> tuple[torch.Tensor, str]:
    """uint8 (N, C, 32, 32) training images and a description: the local CIFAR-10 train split
    (``cifar10/train_labels.csv``), or the MNIST train digits zero-padded from 28 to 32."""
    from gankit.data.recipes import cifar_files, read_idx, require_data, resolve_data_root

    root = resolve_data_root(data_root)
    if dataset == "cifar10":
        base = require_data(root / "cifar10", "cifar10")
        paths, _ = cifar_files(base, "train")
        arrays = []
        for p in paths:
            try:
                with Image.open(p) as im:
                    arrays.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except OSError as e:
                raise DataError(f"{p}: cannot read image ({e})") from None
        if any(a.shape != (32, 32, 3) for a in arrays):
            raise DataError(f"{base}: expected 32×32 CIFAR-10 images")
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return x, f"CIFAR-10 train, {len(x)} images 32×32 ({base})"
    base = require_data(root / "mnist", "mnist")
    digits = read_idx(require_data(base / "train-images-idx3-ubyte.gz", "mnist"))
    x = F.pad(torch.from_numpy(digits.copy())[:, None], (2, 2, 2, 2))
    return x, f"MNIST train, {len(x)} digits padded 28→32 ({base})"


@register
class ProgressiveGAN(Model):
    kind = "progan"
    summary = "progressive GAN: 4 → 32 px by growing (Karras et al. 2018, GANs in Action ch.6)"
    config_class = ProGANConfig

    def __init__(self, config: ProGANConfig, device: torch.device, *, for_training: bool = True):
        super().__init__(config, device, for_training=for_training)
        c = config
        self.channels = 3 if c.dataset == "cifar10" else 1
        size = {"start": c.start_resolution, "final": c.final_resolution, "fmap_base": c.fmap_base,
                "fmap_max": c.fmap_max, "equalized_lr": c.equalized_lr}  # fmt: skip
        self.G = ProgressiveGenerator(c.latent_dim, self.channels, pixel_norm=c.pixel_norm, **size).to(device)
        self.D = ProgressiveDiscriminator(self.channels, minibatch_std=c.minibatch_std, mbstd_group=c.mbstd_group,
                                          **size).to(device)  # fmt: skip
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if c.ema > 0 else None
        self.opt_g = make_optimizer(self.G.parameters(), c, c.lr)
        self.opt_d = make_optimizer(self.D.parameters(), c, c.lr_d or c.lr)
        self.loss = AdversarialLoss(c.gan_loss, real_label=1.0 - c.label_smoothing, label_noise=c.label_noise)
        self.phases = self.G.max_depth + 1
        self.step = 0
        self.fixed_z = torch.randn(GRID_SIDE * GRID_SIDE, c.latent_dim, generator=torch.Generator().manual_seed(c.seed))

    # --- the schedule: a pure function of the step -------------------------------------------------
    @property
    def phase_length(self) -> int:
        return self.config.phase_steps or max(1, self.config.steps // self.phases)

    def phase(self, step: int) -> tuple[int, float]:
        """(depth, alpha) of 1-based ``step`` (step 0, an untrained model, is depth 0)."""
        if step < 1:
            return 0, 1.0
        length = self.phase_length
        depth = min((step - 1) // length, self.phases - 1)
        if depth == 0 or not self.config.fade_in:
            return depth, 1.0
        fade = max(1, round(self.config.fade_fraction * length))
        return depth, min(1.0, (step - depth * length) / fade)

    def resolution(self, step: int | None = None) -> int:
        return self.G.resolution(self.phase(self.step if step is None else step)[0])

    # --- GANModel ----------------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"G": self.G, "D": self.D}
        if self.G_ema is not None:
            nets["G_ema"] = self.G_ema
        return nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def training_data(self) -> StreamSource:
        images, description = load_training_images(self.config.dataset, self.config.data_root)
        return StreamSource(description, stream=BatchStream(images, batch_size=self.config.batch_size,
                                                            seed=self.config.seed, shard=self.shard))  # fmt: skip

    def _real_batch(self, batch, depth: int, alpha: float) -> torch.Tensor:
        x = uint8_to_unit(batch["stream"][0]).to(self.device)
        if self.config.flip and self.channels == 3:
            flip = self.shard.rand(len(x)) < 0.5
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(3), x)
        return real_at(x, depth, alpha, self.config.start_resolution)

    def train_step(self, batches: Sequence[Any], step: int) -> dict[str, float | torch.Tensor]:
        with self.precision.autocast():  # forward passes in --amp precision (optimizer updates are not affected)
            return self._train_step(batches, step)

    def _train_step(self, batches: Sequence[Any], step: int) -> dict[str, float | torch.Tensor]:
        c = self.config
        depth, alpha = self.phase(step)
        critic = c.gan_loss in ("wgan", "wgan-gp")
        terms: dict[str, float | torch.Tensor] = {}
        self.G.requires_grad_(False)
        for batch in batches:
            real = self._real_batch(batch, depth, alpha)
            z = self.shard.randn(len(real), c.latent_dim, device=self.device)
            with torch.no_grad():
                fake = self.G(z, depth, alpha)
            d_real, d_fake = self.D(real, depth, alpha), self.D(fake, depth, alpha)
            d_loss = self.loss.d_loss(d_real, d_fake)
            terms["d"] = d_loss.detach()
            if c.gan_loss == "wgan-gp":
                gp = gradient_penalty(AtDepth(self.D, depth, alpha), real, fake)
                d_loss = d_loss + c.gp_weight * gp
                terms["gp"] = gp.detach()
            if critic and c.drift > 0:
                d_loss = d_loss + c.drift * d_real.float().pow(2).mean()
            self.precision.step(d_loss, self.opt_d)
            if c.gan_loss == "wgan":
                clip_effective_weights(self.D, c.clip)
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        z = self.shard.randn(c.batch_size, c.latent_dim, device=self.device)
        g_loss = self.loss.g_loss(self.D(self.G(z, depth, alpha), depth, alpha))
        self.precision.step(g_loss, self.opt_g)
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            update_average(self.G_ema, self.G, c.ema)
        self.step = step
        terms["g"] = g_loss.detach()
        terms["alpha"] = alpha
        return terms

    def sampler(self) -> ProgressiveGenerator:
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def generate(self, z: torch.Tensor, *, display: bool = True) -> torch.Tensor:
        """Images of latents ``z`` at the current phase (moving-average generator when kept), nearest-
        upsampled to the final resolution with ``display``; values in [-1, 1]."""
        depth, alpha = self.phase(self.step)
        x = self.sampler()(z.to(self.device), depth, alpha).clamp(-1, 1)
        if display and x.shape[-1] != self.config.final_resolution:
            x = F.interpolate(x, size=self.config.final_resolution, mode="nearest")
        return x.cpu()

    def _label(self, step: int) -> str:
        depth, alpha = self.phase(step)
        res = self.G.resolution(depth)
        return f"{res}x{res}" + (f" a={alpha:.2f}" if alpha < 1 else "")

    def sample_grid(self, step: int) -> Image.Image:
        x = self.generate(self.fixed_z)
        rows = [list(x[i : i + GRID_SIDE]) for i in range(0, len(x), GRID_SIDE)]
        return make_grid(rows, row_labels=[self._label(step)] + [""] * (len(rows) - 1), min_height=64)

    def sample(self, *, n: int, label: int | None = None, interpolate: bool = False, seed: int = 0) -> Image.Image:
        if label is not None:
            raise ConfigError("the progressive GAN is unconditional: --label does not apply")
        gen = torch.Generator().manual_seed(seed)
        d = self.config.latent_dim
        if interpolate:
            rows = max(1, round(math.sqrt(n)))
            cols = max(2, math.ceil(n / rows))
            z = latent_lines(rows, cols, d, gen, spherical=True)
            x = self.generate(z)
            grid = [list(x[i * cols : (i + 1) * cols]) for i in range(rows)]
            labels = [f"t={t:.2f}" if j in (0, cols - 1) else "" for j, t in enumerate(np.linspace(0, 1, cols))]
            return make_grid(grid, labels=labels, min_height=64)
        x = self.generate(torch.randn(n, d, generator=gen))
        cols = max(1, math.ceil(math.sqrt(n)))
        return make_grid([list(x[i : i + cols]) for i in range(0, n, cols)], min_height=64)

    def describe(self) -> dict[str, str]:
        c = self.config
        depth = self.phase(self.step)[0]
        on = {True: "on", False: "off"}
        res = [str(self.G.resolution(k)) for k in range(self.phases)]
        return {
            "phase": f"{self._label(self.step)} (depth {depth} of {self.phases - 1})",
            "schedule": f"{' → '.join(res)} px, {self.phase_length} steps per resolution, "
            f"fade-in over {c.fade_fraction:.0%} of each growing phase",
            "techniques": f"fade-in {on[c.fade_in]}, minibatch std {on[c.minibatch_std]}, "
            f"equalized LR {on[c.equalized_lr]}, pixel norm {on[c.pixel_norm]}",
            "parameters": f"G {sum(p.numel() for p in self.G.parameters()):,}, "
            f"D {sum(p.numel() for p in self.D.parameters()):,}; feature maps {self.G.widths}",
        }

    def extra_state(self) -> dict[str, Any]:
        return {"step": self.step, "resolution": self.resolution(), "alpha": self.phase(self.step)[1]}

    def load_extra_state(self, state) -> None:
        self.step = int(state.get("step", 0))
