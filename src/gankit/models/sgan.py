"""The semi-supervised GAN on MNIST (GANs in Action ch.7; Salimans et al. 2016 §5, Odena 2016).

The discriminator is a 10-way digit classifier whose logits l also answer "real or fake": with
Z = Σ_k exp(l_k), D(x) = Z / (Z + 1) = 1 − 1 / (Z + 1) = sigmoid(logsumexp(l)). So the real/fake
*logit* is logsumexp(l) and every game of ch.5 (``--gan-loss``) plays on it. The discriminator
minimizes cross-entropy on the few labelled digits plus the game on unlabelled and generated ones;
the generator by default plays the game (``--generator-loss adversarial``) or matches the mean of the
discriminator's last hidden features on real data (feature matching, Salimans et al. §3.1).

Training aids, each an option: random translations (``--augment``), rotations and scalings
(``--augment-rotate``, ``--augment-scale``) of every real digit D sees (and of the supervised
baseline's digits); a moving average of D's weights (``--ema``), which is the classifier evaluated
and the teacher of a consistency term on unlabelled digits (``--consistency``, pseudo-labels by
default, FixMatch-style); and a linear learning-rate decay over the last ``--lr-decay`` of the steps.

Only ``--labels`` train digits (an equal number per class, drawn with ``--label-seed``, default
``--seed``) keep their labels; the other train digits are used without labels.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gankit.config import CompanionConfig, opt, option_error
from gankit.data.grid import make_grid
from gankit.data.images import uint8_to_unit
from gankit.data.mnist import balanced_subset, mnist_tensors
from gankit.data.streams import BatchStream, StreamSource
from gankit.errors import ConfigError
from gankit.losses import clip_weights, gradient_penalty
from gankit.models.base import Model, latent_lines, update_average
from gankit.models.cgan import GRID_CELL, adversarial_loss, make_optimizers, square_grid
from gankit.models.registry import register
from gankit.models.schedules import lr_factor, set_lr
from gankit.nn.dcgan import ConditionalGenerator, ConvClassifier, MLPDiscriminator, MLPGenerator
from gankit.nn.layers import count_parameters

NUM_CLASSES = 10


def real_fake_logit(logits: torch.Tensor) -> torch.Tensor:
    """The real/fake logit logsumexp(l) of class logits (N, K): sigmoid of it is 1 − 1/(Σ exp(l) + 1)."""
    return torch.logsumexp(logits, dim=1)


def random_shift(x: torch.Tensor, max_shift: int, fill: float = -1.0) -> torch.Tensor:
    """Each image (N, C, H, W) translated by its own random (dy, dx) in [−max_shift, max_shift]² pixels,
    the uncovered border filled with ``fill`` (the background, −1 in [−1, 1]). Uses the global torch RNG."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=fill)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1), device=x.device)
    rows = (torch.arange(h, device=x.device) + dy)[:, None, :, None]  # (N, 1, H, 1)
    cols = (torch.arange(w, device=x.device) + dx)[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_affine(x: torch.Tensor, degrees: float, scale: float, fill: float = -1.0) -> torch.Tensor:
    """Each image (N, C, H, W) rotated by its own random angle in [−degrees, degrees] and scaled by a
    factor in [1 − scale, 1 + scale] about its centre (bilinear, border filled with ``fill``). Uses the
    global torch RNG; identity when both are 0."""
    if degrees <= 0 and scale <= 0:
        return x
    n = len(x)
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(degrees)
    factor = 1 + (torch.rand(n, device=x.device) * 2 - 1) * scale
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def real_probability(logits: torch.Tensor) -> torch.Tensor:
    """D(x) = 1 − 1 / (Σ_k exp(l_k) + 1), computed stably as sigmoid(logsumexp(l))."""
    return torch.sigmoid(real_fake_logit(logits))


@dataclass
class SGANConfig(CompanionConfig):
    labels: int = opt(100, "labelled train digits (an equal number per class); the rest are unlabelled", group="data")
    label_seed: int | None = opt(None, "seed of the labelled-digit draw (default --seed)", group="data")
    z_dim: int = opt(100, "noise dimension", group="model")
    discriminator: str = opt(
        "conv",
        "discriminator network: conv (the book's layout; the default, as with --augment translations it learned "
        "faster than the MLP: 88.7 vs 87.4 percent test accuracy at 1,000 steps, seed 0) or mlp (Salimans et al.)",
        choices=("mlp", "conv"),
        group="model",
    )
    d_width: int = opt(64, "conv discriminator width w (channels w → 2w → 4w; the book's is 32)", group="model")
    dropout: float = opt(0.5, "conv discriminator dropout", group="model")
    d_hidden: list[int] = opt([1000, 500, 250, 250, 250], "discriminator hidden layer widths", group="model")
    generator: str = opt(
        "dcgan",
        "generator network: mlp (Salimans et al.) or dcgan (transposed convs)",
        choices=("mlp", "dcgan"),
        group="model",
    )
    g_hidden: list[int] = opt([500, 500], "mlp generator hidden layer widths", group="model")
    g_width: int = opt(16, "dcgan generator width w (channels 4w → 2w → w)", group="model")
    input_noise: float = opt(0.3, "σ of the Gaussian noise on the discriminator's input", group="model")
    hidden_noise: float = opt(0.5, "σ of the Gaussian noise before each hidden layer", group="model")
    generator_loss: str = opt(
        "adversarial", "generator objective", group="loss", choices=("feature-matching", "adversarial")
    )
    unsup_weight: float = opt(0.5, "weight of the unlabelled real/fake term in the discriminator loss", group="loss")
    augment: int = opt(
        2,
        "random translation of every real digit fed to D (labelled and unlabelled) and to the supervised "
        "baseline, by up to this many pixels (0 = off): cheap data augmentation, the standard companion of "
        "semi-supervised consistency methods (e.g. Laine & Aila 2017, Temporal Ensembling)",
        group="model",
    )
    augment_rotate: float = opt(
        15.0,
        "random rotation of every real digit fed to D and to the supervised baseline, up to ± this many "
        "degrees (0 = off); the teacher's view of --consistency stays translation-only",
        group="model",
    )
    augment_scale: float = opt(
        0.1, "random scaling of those digits by a factor in [1 − s, 1 + s] (0 = off)", group="model"
    )
    ema: float = opt(
        0.999,
        "decay of an exponential moving average (Polyak averaging) of the discriminator's weights, used as "
        "the classifier for test accuracy (0 = use the raw weights); Polyak & Juditsky 1992 averaging, "
        "as in the mean teacher of Tarvainen & Valpola 2017",
        group="model",
    )
    lr_decay: float = opt(
        0.3,
        "fraction of --steps at the end over which both learning rates decay linearly to ~0 "
        "(an annealing schedule common in semi-supervised GAN training, e.g. Salimans et al. 2016's code; "
        "0 = constant lr)",
        group="optim",
    )
    consistency: float = opt(
        1.0,
        "weight of a consistency term on unlabelled digits: D's class prediction for the augmented view of a "
        "digit is pulled toward the weight-averaged D's (the teacher's) for a translation-only view "
        "(--consistency-kind; mean teacher, Tarvainen & Valpola 2017; Π-model, Laine & Aila 2017), ramped "
        "up over --consistency-rampup (0 = off)",
        group="loss",
    )
    consistency_kind: str = opt(
        "pseudo-label",
        "consistency term: mse (squared difference of class probabilities) or pseudo-label (cross-entropy "
        "towards the teacher's predicted digit where the teacher is at least --confidence sure; Lee 2013, "
        "FixMatch, Sohn et al. 2020)",
        choices=("mse", "pseudo-label"),
        group="loss",
    )
    confidence: float = opt(0.95, "teacher confidence threshold of --consistency-kind pseudo-label", group="loss")
    consistency_rampup: float = opt(
        0.2, "fraction of --steps over which the consistency weight ramps up as exp(−5(1 − t)²)", group="loss"
    )
    baseline_steps: int = opt(2000, "steps of the supervised-only baseline trained by `gankit eval`", group="eval")
    lr: float = opt(1e-3, "generator learning rate", group="optim")
    batch_size: int = opt(100, "images per iteration (labelled, unlabelled and generated each)", group="run")
    steps: int = opt(5000, "training steps (generator updates)", group="run", ge=1)
    out: str = opt("runs/sgan", "run folder", group="run")

    def validate(self):
        super().validate()
        rules = (
            ("labels", self.labels >= NUM_CLASSES and self.labels % NUM_CLASSES == 0,
             f"expected a positive multiple of {NUM_CLASSES}"),
            ("d_hidden", bool(self.d_hidden) and min(self.d_hidden) >= 1, "expected at least one width, all ≥ 1"),
            ("g_hidden", bool(self.g_hidden) and min(self.g_hidden) >= 1, "expected at least one width, all ≥ 1"),
            ("z_dim", self.z_dim >= 1, "expected a number ≥ 1"),
            ("baseline_steps", self.baseline_steps >= 1, "expected a number ≥ 1"),
            ("augment", 0 <= self.augment <= 13, "expected a shift in pixels in [0, 13]"),
            ("augment_rotate", 0.0 <= self.augment_rotate <= 180.0, "expected degrees in [0, 180]"),
            ("augment_scale", 0.0 <= self.augment_scale < 1.0, "expected a fraction in [0, 1)"),
            ("ema", 0.0 <= self.ema < 1.0, "expected a decay in [0, 1)"),
            ("consistency", self.consistency >= 0, "expected a number ≥ 0"),
            ("consistency_rampup", 0.0 <= self.consistency_rampup <= 1.0, "expected a fraction in [0, 1]"),
            ("confidence", 0.0 <= self.confidence <= 1.0, "expected a number in [0, 1]"),
            ("lr_decay", 0.0 <= self.lr_decay <= 1.0, "expected a fraction of --steps in [0, 1]"),
        )  # fmt: skip
        for name, ok, problem in rules:
            if not ok:
                raise option_error(name, getattr(self, name), problem)
        return self


@register
class SemiSupervisedGAN(Model):
    kind = "sgan"
    summary = "semi-supervised GAN: a digit classifier from 100 labels (GANs in Action ch.7)"
    config_class = SGANConfig

    def __init__(self, config: SGANConfig, device: torch.device, *, for_training: bool = True):
        super().__init__(config, device, for_training=for_training)
        if config.generator == "dcgan":
            self.G = ConditionalGenerator(config.z_dim, 0, config.g_width).to(device)
        else:
            self.G = MLPGenerator(config.z_dim, tuple(config.g_hidden)).to(device)
        self.D = self.make_classifier().to(device)
        self.D_ema = copy.deepcopy(self.D).requires_grad_(False) if config.ema > 0 else None
        self._optimizers = make_optimizers(config, self.G, self.D)
        self._base_lr = {k: o.param_groups[0]["lr"] for k, o in self._optimizers.items()}
        self.loss = adversarial_loss(config)
        gen = torch.Generator().manual_seed(config.seed + 1)
        self.fixed_z = torch.randn(100, config.z_dim, generator=gen).to(device)

    def make_classifier(self) -> nn.Module:
        """A fresh discriminator network (also the supervised baseline's classifier)."""
        c = self.config
        if c.discriminator == "conv":
            return ConvClassifier(NUM_CLASSES, c.d_width, c.input_noise, c.dropout)
        return MLPDiscriminator(tuple(c.d_hidden), NUM_CLASSES, 784, c.input_noise, c.hidden_noise)

    @property
    def label_seed(self) -> int:
        return self.config.seed if self.config.label_seed is None else self.config.label_seed

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G": self.G, "D": self.D}
        if self.D_ema is not None:
            nets["D_ema"] = self.D_ema
        return nets

    @property
    def classifier(self) -> nn.Module:
        """The network whose class head is evaluated: the weight average if ``--ema`` > 0, else D."""
        return self.D if self.D_ema is None else self.D_ema

    def load_weights(self, tensors: Mapping[str, torch.Tensor], source: str, *, strict: bool = True) -> None:
        if self.D_ema is not None and not any(k.startswith("D_ema.") for k in tensors):
            # a model saved before the weight average existed: evaluate its raw discriminator
            tensors = {**tensors, **{f"D_ema.{k[2:]}": v for k, v in tensors.items() if k.startswith("D.")}}
        super().load_weights(tensors, source, strict=strict)

    @torch.no_grad()
    def update_average(self, step: int) -> None:
        """D_ema ← d·D_ema + (1 − d)·D with d = min(ema, (1 + step) / (10 + step)) (a short warm-up)."""
        if self.D_ema is not None:
            update_average(self.D_ema, self.D, min(self.config.ema, (1 + step) / (10 + step)))

    def set_learning_rate(self, step: int) -> float:
        """Linear decay to 0 over the last ``--lr-decay`` fraction of the steps; returns the factor."""
        c = self.config
        factor = lr_factor(step - 1, c.steps, "linear", decay_start=1 - c.lr_decay) if c.lr_decay > 0 else 1.0
        for k, o in self._optimizers.items():
            set_lr(o, self._base_lr[k] * factor)
        return factor

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def labelled_data(self, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(labelled images, their labels, their indices in MNIST train, unlabelled images)."""
        images, labels = mnist_tensors(data_root, "train")
        idx = balanced_subset(labels, self.config.labels, self.label_seed, NUM_CLASSES)
        rest = torch.ones(len(images), dtype=torch.bool)
        rest[idx] = False
        return images[idx], labels[idx], idx, images[rest]

    def training_data(self) -> StreamSource:
        c = self.config
        x_lab, y_lab, _, x_unl = self.labelled_data(c.data_root)
        description = (f"MNIST train: {len(x_lab)} labelled digits ({len(x_lab) // NUM_CLASSES} per class, label "
                       f"seed {self.label_seed}) + {len(x_unl)} unlabelled")  # fmt: skip
        labelled = BatchStream(x_lab, y_lab, batch_size=c.batch_size, seed=c.seed, shard=self.shard)
        unlabelled = BatchStream(x_unl, batch_size=c.batch_size, seed=c.seed + 1, shard=self.shard)
        return StreamSource(description, labelled=labelled, unlabelled=unlabelled)

    def describe(self) -> dict[str, str]:
        c = self.config
        return {
            "networks": f"G {count_parameters(self.G):,} parameters, D {count_parameters(self.D):,}",
            "semi-supervised": f"{c.labels} labels (seed {self.label_seed}), generator: {c.generator_loss}",
        }

    # --- training ----------------------------------------------------------------------------------
    def unsupervised_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """The game on the real/fake logit logsumexp(l), as the sum of its real and fake halves (for the
        vanilla game: −log D(x) − log(1 − D(G(z))), Salimans et al. 2016 eq. 5)."""
        loss = self.loss.d_loss(real_fake_logit(real_logits), real_fake_logit(fake_logits))
        return 2 * loss if self.config.gan_loss in ("lsgan", "vanilla", "minimax") else loss

    def train_step(self, batches: Sequence[Any], step: int) -> dict[str, float | torch.Tensor]:
        with self.precision.autocast():  # forward passes in --amp precision (optimizer updates are not affected)
            return self._train_step(batches, step)

    def _train_step(self, batches: Sequence[Any], step: int) -> dict[str, float | torch.Tensor]:
        c, opt_g, opt_d = self.config, self._optimizers["G"], self._optimizers["D"]
        self.set_learning_rate(step)
        for batch in batches:
            x_lab, y_lab = batch["labelled"]
            (x_unl,) = batch["unlabelled"]
            x_lab, y_lab = uint8_to_unit(x_lab).to(self.device), y_lab.to(self.device)
            x_unl = uint8_to_unit(x_unl).to(self.device)
            x_raw = x_unl
            x_lab, x_unl = self.augment(x_lab), self.augment(x_raw)
            with torch.no_grad():
                fake = self.G(self.shard.randn(len(x_unl), c.z_dim, device=self.device))
            supervised = F.cross_entropy(self.D(x_lab), y_lab)
            unl_logits = self.D(x_unl)
            unsupervised = self.unsupervised_loss(unl_logits, self.D(fake))
            if c.gan_loss == "wgan-gp":
                unsupervised = unsupervised + c.gp_weight * gradient_penalty(
                    lambda m: real_fake_logit(self.D(m)), x_unl, fake
                )
            d_loss = supervised + c.unsup_weight * unsupervised
            if c.consistency > 0:
                consistency = self.consistency_loss(unl_logits, random_shift(x_raw, c.augment))
                d_loss = d_loss + self.consistency_weight(step) * consistency
            self.precision.step(d_loss, opt_d)
            if c.gan_loss == "wgan":
                clip_weights(self.D, c.clip)
        self.update_average(step)
        self.D.requires_grad_(False)
        try:
            fake = self.G(self.shard.randn(c.batch_size, c.z_dim, device=self.device))
            if c.generator_loss == "feature-matching":
                with torch.no_grad():
                    target = self.D.features(x_unl).mean(0)
                g_loss = F.mse_loss(self.D.features(fake).mean(0), target)
            else:
                g_loss = self.loss.g_loss(real_fake_logit(self.D(fake)))
            self.precision.step(g_loss, opt_g)
        finally:
            self.D.requires_grad_(True)
        losses = {"D": d_loss.detach(), "D_sup": supervised.detach(), "D_unsup": unsupervised.detach()}
        if c.consistency > 0:
            losses["D_cons"] = consistency.detach()
        return {**losses, "G": g_loss.detach()}

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The training view of real digits: random rotation/scaling (if set), then translation."""
        c = self.config
        return random_shift(random_affine(x, c.augment_rotate, c.augment_scale), c.augment)

    def consistency_weight(self, step: int) -> float:
        """``--consistency`` · exp(−5 (1 − t)²), t = step / (rampup · steps) clipped to 1 (Laine & Aila 2017)."""
        c = self.config
        ramp = c.consistency_rampup * c.steps
        t = 1.0 if ramp <= 0 else min(1.0, step / ramp)
        return c.consistency * math.exp(-5.0 * (1.0 - t) ** 2)

    def consistency_loss(self, student_logits: torch.Tensor, teacher_view: torch.Tensor) -> torch.Tensor:
        """The student's class probabilities (D on one view, with gradient) against the teacher's
        (:attr:`classifier`, on another view, without): their mean squared difference, or, for
        ``pseudo-label``, the cross-entropy towards the teacher's digit on the digits where the teacher
        is at least ``--confidence`` sure (averaged over the whole batch, so few sure digits weigh little)."""
        with torch.no_grad():
            target = F.softmax(self.classifier(teacher_view), dim=1)
        if self.config.consistency_kind == "pseudo-label":
            sure, digit = target.max(dim=1)
            ce = F.cross_entropy(student_logits, digit, reduction="none")
            return (ce * (sure >= self.config.confidence)).mean()
        return F.mse_loss(F.softmax(student_logits, dim=1), target)

    # --- the supervised baseline --------------------------------------------------------------------
    def train_supervised_baseline(self, data_root: str | None, steps: int | None = None) -> nn.Module:
        """The discriminator's network trained from scratch on the same labelled digits alone
        (cross-entropy, same optimizer settings, batch size and ``--augment`` translations), in eval mode.
        It is evaluated with its raw weights (no average)."""
        c = self.config
        x_lab, y_lab, _, _ = self.labelled_data(data_root)
        x_lab, y_lab = uint8_to_unit(x_lab).to(self.device), y_lab.to(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            net = self.make_classifier().to(self.device).train()
            opt = torch.optim.Adam(net.parameters(), lr=c.lr_d or c.lr, betas=(c.beta1, c.beta2))
            stream = BatchStream(x_lab, y_lab, batch_size=c.batch_size, seed=c.seed)
            for _ in range(steps or c.baseline_steps):
                x, y = stream.next()
                loss = F.cross_entropy(net(self.augment(x)), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return net.eval()

    # --- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def classify(self, images: torch.Tensor, net: nn.Module | None = None, batch_size: int = 1000) -> torch.Tensor:
        """Predicted digits of uint8 images (N, 1, 28, 28) by the class head of :attr:`classifier` (the
        weight-averaged discriminator by default) or of ``net``."""
        net = net or self.classifier
        was_training = net.training
        net.eval()
        try:
            return torch.cat(
                [
                    net(uint8_to_unit(images[i : i + batch_size]).to(self.device)).argmax(1).cpu()
                    for i in range(0, len(images), batch_size)
                ]
            )
        finally:
            net.train(was_training)

    @torch.no_grad()
    def generate(self, n: int, z: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
        if z is None:
            z = torch.randn(n, self.config.z_dim)
        return torch.cat([self.G(z[i : i + batch_size].to(self.device)).cpu() for i in range(0, n, batch_size)])

    def sample_grid(self, step: int) -> Image.Image:
        return make_grid(square_grid(self.generate(len(self.fixed_z), self.fixed_z)), min_height=GRID_CELL)

    def sample(self, *, n: int, label: int | None = None, interpolate: bool = False, seed: int = 0) -> Image.Image:
        if label is not None:
            raise ConfigError("sgan's generator is unconditional: --label is for cgan runs")
        gen = torch.Generator().manual_seed(seed)
        was_training = self.G.training
        self.G.eval()
        try:
            if interpolate:
                cols = 8
                n_rows = max(1, math.ceil(n / cols))
                z = latent_lines(n_rows, cols, self.config.z_dim, gen)
                images = self.generate(len(z), z)
                return make_grid([list(images[r * cols : (r + 1) * cols]) for r in range(n_rows)], min_height=GRID_CELL)
            return make_grid(
                square_grid(self.generate(n, torch.randn(n, self.config.z_dim, generator=gen))), min_height=GRID_CELL
            )
        finally:
            self.G.train(was_training)
