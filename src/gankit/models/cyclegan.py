"""CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017): two generators G: A→B, F: B→A and two
discriminators, trained with adversarial, cycle-consistency and identity losses (eq. 3).

Naming: ``g_ab`` is G (A→B), ``g_ba`` is F (B→A); ``d_a`` judges domain-A images, ``d_b`` domain-B
images. (The official code calls G ``netG_A`` and the judge of B ``netD_A``.)

One training step (``--n-critic`` k): k discriminator updates, each on its own batch with fakes from
the current generators through the history pool; the generator update (adversarial + λ_cyc·cycle +
λ_cyc·λ_id·identity) comes first, on the first batch, as in the official code for k = 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from gankit.config import opt, option_error
from gankit.errors import ConfigError, DataError
from gankit.losses import AdversarialLoss, clip_weights, cycle_loss, gradient_penalty, identity_loss, luminance_loss
from gankit.models.base import make_optimizer, set_requires_grad
from gankit.models.pool import ImagePool
from gankit.models.registry import register
from gankit.models.schedules import lr_factor, set_lr
from gankit.models.semantic import (
    SEMANTIC_READERS,
    SEMANTIC_SOURCES,
    SemanticConsistency,
    build_semantic_consistency,
    load_semantic_state,
    semantic_state,
)
from gankit.models.translation import (
    TranslationConfig,
    UnpairedTranslationModel,
    build_translation_discriminator,
    build_translation_generator,
    conv_tuner_for,
    init_translation_networks,
    score_real_and_fake,
)
from gankit.nn.conv import ConvAlgorithmTuner, tune_convolutions

DIRECTIONS = ("a2b", "b2a")


@dataclass
class CycleGANConfig(TranslationConfig):
    """Everything that defines a CycleGAN run (SPEC §1–§2). Defaults follow the paper and the
    official code: resnet-9 generator, 70x70 PatchGAN, LSGAN, λ_cyc = 10, λ_id = 0.5, Adam(2e-4,
    0.5, 0.999), pool of 50, constant then linearly decaying learning rate."""

    lambda_cyc: float = opt(10.0, "cycle-consistency weight λ_cyc", group="loss", ge=0)
    lambda_id: float = opt(0.5, "identity weight, relative to λ_cyc (paper 0.5; 0 disables)", group="loss", ge=0)
    cycle_noise: float = opt(0.0, "std of Gaussian noise added to each translation before the reverse generator "
                             "reconstructs it (images span [-1, 1]), so that the cycle cannot be paid by a faint "
                             "signal hidden in the translation (Chu et al. 2017); 0 = off", group="loss",
                             ge=0)  # fmt: skip
    pool_size: int = opt(50, "history of generated images shown to the discriminators (0 = none)", group="run", ge=0)
    semantic_loss: bool = opt(False, "CyCADA semantic-consistency loss: a frozen task classifier trained on source "
                              "labels must read the same label before and after translation (Hoffman et al. 2018)",
                              group="loss")  # fmt: skip
    lambda_sem: float = opt(1.0, "weight of the semantic-consistency loss", group="loss", ge=0)
    lambda_sem_b2a: float | None = opt(None, "weight of the B → A semantic term alone (default: --lambda-sem); "
                                       "a heavier loss can keep one direction's labels better while costing the "
                                       "other its realism", group="loss", ge=0)  # fmt: skip
    semantic_source: str = opt("both", "whose labels train the task classifier: a, b (one source for both "
                               "directions, as in CyCADA) or both (each direction reads its own source domain's)",
                               choices=SEMANTIC_SOURCES, group="loss")  # fmt: skip
    semantic_steps: int = opt(2000, "training steps of the semantic task classifier", group="loss", ge=1)
    semantic_recolour: bool = opt(False, "train a gray source's task classifier on random colour recolourings of "
                                  "its images, so that it reads translations into a colour domain (MNIST → "
                                  "MNIST-M); reads no target image", group="loss")  # fmt: skip
    semantic_reshape: bool = opt(False, "train the task classifiers under random warps and stroke widths, so that "
                                 "a classifier of one handwriting reads another (MNIST ↔ USPS); reads no target "
                                 "image", group="loss")  # fmt: skip
    semantic_reader: str = opt("auto", "who reads the translations in the semantic loss: target (a LeNet of the "
                               "target domain's real images, taught by pseudo-labels from a source classifier "
                               "whose features are aligned to the unlabelled target; reads no target label), "
                               "source (the source domain's task classifier, as in CyCADA) or auto (target "
                               "where both domains have the same channels, e.g. MNIST ↔ USPS; source across gray "
                               "and colour, e.g. MNIST ↔ MNIST-M, whose aligned features read the target at 0.26)",
                               choices=SEMANTIC_READERS, group="loss")  # fmt: skip
    lambda_luma: float = opt(0.0, "gray ↔ colour pairs: weight of the luminance term ‖Y(G(a)) − a‖₁ + ‖F(b) − Y(b)‖₁, "
                             "which keeps the gray image as its translation's luma (ITU-R 601) so that only the "
                             "colours are translated (0 = off)", group="loss", ge=0)  # fmt: skip
    keep_luminance: bool = opt(False, "gray ↔ colour pairs: tie each resnet generator's output to its input's luma "
                               "(ITU-R 601): gray → colour keeps the gray image as its luma and chooses only the "
                               "colours, colour → gray corrects the colour image's luma (instance norm otherwise "
                               "loses each image's brightness)", group="model")  # fmt: skip
    latent_dim: int = opt(0, "Augmented CycleGAN (Almahairi et al. 2018): dimension K of the latent codes z_a, z_b "
                          "~ N(0, I) that make each input translate to many outputs (0 = plain CycleGAN)",
                          group="model", ge=0)  # fmt: skip
    encoder_width: int = opt(32, "with --latent-dim: width of the latent encoders' first layer (the code "
                             "discriminators have twice as many units)", group="model", ge=1)  # fmt: skip
    lambda_latent: float = opt(1.0, "with --latent-dim: weight of the code reconstruction |E(a, G(a, z)) - z|",
                               group="loss", ge=0)  # fmt: skip
    lambda_latent_gan: float = opt(1.0, "with --latent-dim: weight of the adversarial loss keeping inferred codes on "
                                   "the prior", group="loss", ge=0)  # fmt: skip
    out: str = opt("runs/cyclegan", "run folder", group="run")

    def validate(self):
        super().validate()
        if self.latent_dim and self.generator != "resnet":
            raise option_error("latent_dim", self.latent_dim, f"the code modulates the resnet generator's instance "
                               f"norms; --generator {self.generator} has none")  # fmt: skip
        channels = {self.channels_a, self.channels_b}
        for name in ("lambda_luma", "keep_luminance"):
            if getattr(self, name) and None not in channels and channels != {1, 3}:
                raise option_error(name, getattr(self, name), f"the luminance tie joins a gray domain to a colour "
                                   f"one; A has {self.channels_a} channels, B has {self.channels_b}")  # fmt: skip
        if self.keep_luminance and self.generator != "resnet":
            raise option_error("keep_luminance", True, f"an option of the resnet generator, not of {self.generator} "
                               "(add --no-keep-luminance)")  # fmt: skip
        if self.latent_dim and self.norm != "instance":
            raise option_error("latent_dim", self.latent_dim, f"the code modulates instance norms, not --norm "
                               f"{self.norm}")  # fmt: skip
        return self

    def luminance_mode(self, in_channels: int) -> str | None:
        """How ``--keep-luminance`` ties the generator from ``in_channels`` (None without the option)."""
        return None if not self.keep_luminance else "keep" if in_channels == 1 else "residual"

    @property
    def target_readers(self) -> bool:
        """Whether readers of the target judge the translations (``semantic_reader``, ``auto`` resolved)."""
        if self.semantic_reader == "auto":
            return self.channels_a == self.channels_b
        return self.semantic_reader == "target"

    @classmethod
    def upgrade_saved(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A config saved before ``semantic_reader`` existed (saved configs hold every option since) trained
        with the source classifiers as readers, the default until the target readers became it."""
        data = super().upgrade_saved(data)
        return data if "semantic_reader" in data else data | {"semantic_reader": "source"}


def luminance_terms(
    config: CycleGANConfig,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    fake_a: torch.Tensor,
    fake_b: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``--lambda-luma``: each translation between a gray and a colour domain keeps the gray side's luma
    (:func:`~gankit.losses.luminance_loss`), and their weighted sum. The gray image is the colour image's
    luminance (colorization), so this is a prior on the pair, not a paired loss: no image's partner is read."""
    gray_a = config.channels_a == 1
    terms = {"luma_a2b": luminance_loss(real_a, fake_b) if gray_a else luminance_loss(fake_b, real_a),
             "luma_b2a": luminance_loss(fake_a, real_b) if gray_a else luminance_loss(real_b, fake_a)}  # fmt: skip
    return terms, config.lambda_luma * (terms["luma_a2b"] + terms["luma_b2a"])


def luminance_description(config: CycleGANConfig) -> dict[str, str]:
    """The run page's line for ``--lambda-luma`` and ``--keep-luminance`` (none when both are off)."""
    said = []
    if config.lambda_luma:
        said.append(f"λ_luma {config.lambda_luma:g}: translations keep the gray side's luma (ITU-R 601)")
    if config.keep_luminance:
        said.append("generators tied to their input's luma (--keep-luminance)")
    return {"luminance": " · ".join(said)} if said else {}


def semantic_terms(
    semantic: SemanticConsistency,
    config: CycleGANConfig,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    fake_a: torch.Tensor,
    fake_b: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """CyCADA's L_sem (eq. 4) for each direction, and their weighted sum λ_sem·L_sem(G) + λ_sem,b2a·L_sem(F)."""
    terms = {"sem_a2b": semantic.loss("a2b", fake_b, real_a), "sem_b2a": semantic.loss("b2a", fake_a, real_b)}
    weight_b2a = config.lambda_sem if config.lambda_sem_b2a is None else config.lambda_sem_b2a
    return terms, config.lambda_sem * terms["sem_a2b"] + weight_b2a * terms["sem_b2a"]


def perturbed_for_reconstruction(translation: torch.Tensor, std: float) -> torch.Tensor:
    """The translation the reverse generator reconstructs from: with ``std`` > 0, plus N(0, std²) noise.
    CycleGAN learns to hide what the reconstruction needs in a low-amplitude signal of the translation
    (Chu, Zhmoginov & Sandler 2017, "CycleGAN, a master of steganography"); noise of that amplitude
    destroys such a signal, so the cycle must be paid by visible content instead."""
    return translation if std == 0 else translation + std * torch.randn_like(translation)


def consistency_terms(
    semantic: SemanticConsistency | None,
    config: CycleGANConfig,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    fake_a: torch.Tensor,
    fake_b: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | float]:
    """What the translations must keep of their inputs beyond the cycle, shared by plain and augmented
    CycleGAN: labels (:func:`semantic_terms`, with a ``semantic`` module) and the gray side's luma
    (:func:`luminance_terms`, with ``--lambda-luma``); their terms and weighted sum (0 when both are off)."""
    terms: dict[str, torch.Tensor] = {}
    total: torch.Tensor | float = 0.0
    if semantic is not None:
        sem, weighted = semantic_terms(semantic, config, real_a, real_b, fake_a, fake_b)
        terms, total = terms | sem, total + weighted
    if config.lambda_luma:
        luma, weighted = luminance_terms(config, real_a, real_b, fake_a, fake_b)
        terms, total = terms | luma, total + weighted
    return terms, total


@dataclass
class GeneratorOutputs:
    """The images one forward pass of both cycles produces (kept for the D step and sample grids)."""

    fake_b: torch.Tensor
    rec_a: torch.Tensor
    fake_a: torch.Tensor
    rec_b: torch.Tensor
    idt_a: torch.Tensor | None = None  # G(b) and F(a), when computed with the fakes (identity loss)
    idt_b: torch.Tensor | None = None


class CycleGANNetworks(nn.Module):
    """The four networks plus the loss terms of CycleGAN eq. 3 (one ``nn.Module``, so that its state
    dict, ``.to()`` and ``.train()`` cover all of them)."""

    def __init__(self, config: CycleGANConfig, *, with_discriminators: bool = True):
        super().__init__()
        if config.channels_a is None or config.channels_b is None:
            raise ValueError("CycleGAN needs a resolved config (channels_a and channels_b set)")
        self.config = config
        ca, cb = config.channels_a, config.channels_b
        self.g_ab = build_translation_generator(config, ca, cb, luminance=config.luminance_mode(ca))
        self.g_ba = build_translation_generator(config, cb, ca, luminance=config.luminance_mode(cb))
        if with_discriminators:
            self.d_a = build_translation_discriminator(config, ca)
            self.d_b = build_translation_discriminator(config, cb)
        init_translation_networks(config, self.children())
        self.conv_tuner = conv_tuner_for(config, self)
        self.adversarial = AdversarialLoss(
            config.gan_loss, real_label=1.0 - config.label_smoothing, label_noise=config.label_noise
        )

    # --- inference ------------------------------------------------------------------------------
    def generator(self, direction: str = "a2b") -> nn.Module:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
        return self.g_ab if direction == "a2b" else self.g_ba

    def channels(self, direction: str = "a2b") -> tuple[int, int]:
        """(input, output) channels of a direction."""
        ca, cb = self.config.channels_a, self.config.channels_b
        return (ca, cb) if direction == "a2b" else (cb, ca)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def image_size(self) -> int:
        return int(self.config.size)

    # --- training losses --------------------------------------------------------------------------
    @property
    def uses_identity(self) -> bool:
        """Identity loss needs G: A→B to accept B images, impossible when channel counts differ
        (seed 000 disables it for gray → colour)."""
        return self.config.lambda_id > 0 and self.config.channels_a == self.config.channels_b

    batch_passes: bool = True
    _compiled: dict[str, nn.Module] | None = None

    def compile_for_training(self, **options) -> None:
        """Run the training passes (grad enabled, train mode) through ``torch.compile`` wrappers of the
        networks (inductor fuses instance norm, ReLU and padding around the oneDNN convolutions);
        sample grids and inference keep the eager modules and so trigger no recompilation. The
        wrappers share the parameters and stay out of the state dict (checkpoints are unchanged)."""
        nets = ("g_ab", "g_ba", "d_a", "d_b") if hasattr(self, "d_a") else ("g_ab", "g_ba")
        compiled = {name: torch.compile(getattr(self, name), dynamic=False, **options) for name in nets}
        object.__setattr__(self, "_compiled", compiled)  # not registered: keeps state_dict keys as they are

    @contextlib.contextmanager
    def eager_passes(self):
        """Temporarily run every pass eagerly through PyTorch's own convolutions (no compile, no tuned
        algorithms): the reference path, e.g. to count a step's FLOPs."""
        compiled = self._compiled
        object.__setattr__(self, "_compiled", None)
        tune_convolutions(self, None)
        try:
            yield
        finally:
            object.__setattr__(self, "_compiled", compiled)
            tune_convolutions(self, self.conv_tuner)

    def _net(self, name: str) -> nn.Module:
        if self._compiled is not None and self.training and torch.is_grad_enabled():
            return self._compiled[name]
        return getattr(self, name)

    @property
    def shares_batches(self) -> bool:
        """Whether passes of one network over different images may share a batch: exact when every
        image is normalized on its own (instance norm or none), not with batch norm, whose statistics
        span the batch. ``batch_passes = False`` forces one pass per input (the reference path)."""
        return self.batch_passes and self.config.norm != "batch"

    def cycle(self, real_a: torch.Tensor, real_b: torch.Tensor, *, identity: bool = False,
              cycle_noise: float = 0.0) -> GeneratorOutputs:  # fmt: skip
        """Both cycles; with ``identity`` (and :attr:`uses_identity`) also G(b) and F(a) for the
        identity loss. G's two inputs, real a and real b, are then one batch of two, and likewise F's:
        the same arithmetic per image (see :attr:`shares_batches`) in fewer, larger passes. With
        ``cycle_noise`` the reconstructions start from noisy translations (:func:`perturbed_for_reconstruction`)."""
        identity = identity and self.uses_identity
        g_ab, g_ba = self._net("g_ab"), self._net("g_ba")
        if identity and self.shares_batches:
            n = real_a.shape[0]
            fake_b, idt_a = g_ab(torch.cat([real_a, real_b])).split(n)
            fake_a, idt_b = g_ba(torch.cat([real_b, real_a])).split(n)
        else:
            fake_b, fake_a = g_ab(real_a), g_ba(real_b)
            idt_a = g_ab(real_b) if identity else None
            idt_b = g_ba(real_a) if identity else None
        rec_a = g_ba(perturbed_for_reconstruction(fake_b, cycle_noise))
        rec_b = g_ab(perturbed_for_reconstruction(fake_a, cycle_noise))
        return GeneratorOutputs(fake_b=fake_b, rec_a=rec_a, fake_a=fake_a, rec_b=rec_b, idt_a=idt_a, idt_b=idt_b)

    def generator_loss(
        self,
        real_a: torch.Tensor,
        real_b: torch.Tensor,
        out: GeneratorOutputs,
        semantic: SemanticConsistency | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_GAN(G, D_B) + L_GAN(F, D_A) + λ_cyc·L_cyc + λ_cyc·λ_id·L_id (CycleGAN eq. 3 and §5.2), plus
        λ_sem·L_sem with a ``semantic`` consistency term (CyCADA eq. 4) and λ_luma·L_luma (:func:`luminance_terms`)."""
        c = self.config
        terms = {
            "G_adv_a2b": self.adversarial.g_loss(self._net("d_b")(out.fake_b)),
            "G_adv_b2a": self.adversarial.g_loss(self._net("d_a")(out.fake_a)),
            "cycle_a": cycle_loss(real_a, out.rec_a),
            "cycle_b": cycle_loss(real_b, out.rec_b),
        }
        total = terms["G_adv_a2b"] + terms["G_adv_b2a"] + c.lambda_cyc * (terms["cycle_a"] + terms["cycle_b"])
        if self.uses_identity:
            idt_a = out.idt_a if out.idt_a is not None else self._net("g_ab")(real_b)
            idt_b = out.idt_b if out.idt_b is not None else self._net("g_ba")(real_a)
            terms["idt_a"] = identity_loss(real_b, idt_a)
            terms["idt_b"] = identity_loss(real_a, idt_b)
            total = total + c.lambda_cyc * c.lambda_id * (terms["idt_a"] + terms["idt_b"])
        extra, weighted = consistency_terms(semantic, c, real_a, real_b, out.fake_a, out.fake_b)
        terms |= extra
        total = total + weighted
        terms["G_total"] = total
        return total, terms

    def discriminator_loss(
        self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor, fake_b: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each discriminator: real → real label, (pooled, detached) fake → fake label; the total is
        the sum of the two, each already halved as in the official code."""
        terms = {}
        for name, real, fake in (("D_a", real_a, fake_a), ("D_b", real_b, fake_b)):
            d = self._net(name.lower())
            fake = fake.detach()
            score_real, score_fake = score_real_and_fake(d, real, fake, one_pass=self.shares_batches)
            loss = self.adversarial.d_loss(score_real, score_fake)
            if self.config.gan_loss == "wgan-gp":
                penalty = gradient_penalty(getattr(self, name.lower()), real, fake)  # eager: double backward
                terms[f"{name}_gp"] = penalty
                loss = loss + self.config.gp_weight * penalty
            terms[name] = loss
        total = terms["D_a"] + terms["D_b"]
        return total, terms


@register
class CycleGANModel(UnpairedTranslationModel):
    """CycleGAN on the model contract: the networks, Adam (or RMSprop) for G and for D, the two
    history pools, and batches of unaligned A/B images from a loader whose every batch is a pure
    function of (seed, position)."""

    kind = "cyclegan"
    summary = "unpaired image-to-image translation, both directions (Zhu et al. 2017)"
    config_class = CycleGANConfig
    exported = ("g_ab", "g_ba")
    latent_variant: ClassVar[type[CycleGANModel] | None] = None
    """What a config with ``latent_dim`` > 0 builds: Augmented CycleGAN (:mod:`gankit.models.augmented`)."""

    def __new__(cls, config: CycleGANConfig | None = None, *args: Any, **kwargs: Any):
        if cls is CycleGANModel and getattr(config, "latent_dim", 0):
            from gankit.models.registry import load_modules

            load_modules()  # the built-in modules include gankit.models.augmented, which sets latent_variant
            cls = CycleGANModel.latent_variant
        return super().__new__(cls)

    def __init__(self, config: CycleGANConfig, device: torch.device, *, for_training: bool = True):
        super().__init__(config, device, for_training=for_training)
        config = self.config
        self.nets = CycleGANNetworks(config, with_discriminators=for_training).to(device)
        if for_training:
            g_params = [*self.nets.g_ab.parameters(), *self.nets.g_ba.parameters()]
            d_params = [*self.nets.d_a.parameters(), *self.nets.d_b.parameters()]
            self._optimizers = {"G": make_optimizer(g_params, config, config.lr),
                                "D": make_optimizer(d_params, config, config.lr_d or config.lr)}  # fmt: skip
            self._pools: dict[int, tuple[ImagePool, ImagePool]] = {}
        self.semantic: SemanticConsistency | None = None

    # --- Model ---------------------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        names = ("g_ab", "g_ba", "d_a", "d_b") if hasattr(self.nets, "d_a") else ("g_ab", "g_ba")
        return {name: getattr(self.nets, name) for name in names}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers if self.for_training else {}

    def train(self, mode: bool = True) -> CycleGANModel:
        self.nets.train(mode)
        return self

    def compile_for_training(self) -> None:
        self.nets.compile_for_training()

    def reference_passes(self):
        return self.nets.eager_passes()

    @property
    def accumulates_exactly(self) -> bool:
        """G is updated first and D then learns from fakes made before that update (detached), so with
        one D update per step no loss reads a network updated earlier in the step."""
        return self.config.n_critic == 1

    def prepare(self, log=print) -> None:
        """Train the frozen task classifiers of ``--semantic-loss`` (unless a checkpoint brought them)."""
        c = self.config
        if not (self.for_training and c.semantic_loss) or self.semantic is not None:
            return
        from gankit.data.loading import domain_pair

        try:
            test = domain_pair(c, "test")
        except Exception:  # no test split: the classifiers' held-out accuracy is not reported
            test = None
        train = self.pair or domain_pair(c, "train")
        domains = {"a": (train.source_a, test and test.source_a, c.channels_a),
                   "b": (train.source_b, test and test.source_b, c.channels_b)}  # fmt: skip
        try:
            semantic = build_semantic_consistency(c.semantic_source, domains, c.size, seed=c.seed,
                                                  steps=c.semantic_steps, recolour=c.semantic_recolour,
                                                  reshape=c.semantic_reshape,
                                                  target_readers=c.target_readers,
                                                  device=self.device, log=log)  # fmt: skip
        except DataError as e:
            raise ConfigError(f"--semantic-loss: {e}") from None
        self.semantic = semantic.to(self.device)

    def _rank_pools(self) -> tuple[ImagePool, ImagePool]:
        """The history pools of the rank being trained (``shard.rank``; with ``--accumulate K`` each of
        the K ranks a process stands for): each rank keeps its own fakes, in pools seeded apart."""
        rank, c = self.shard.rank, self.config
        if rank not in self._pools:
            self._pools[rank] = (ImagePool(c.pool_size, seed=c.seed + 7919 * rank),
                                 ImagePool(c.pool_size, seed=c.seed + 1 + 7919 * rank))  # fmt: skip
        return self._pools[rank]

    @property
    def pool_a(self) -> ImagePool:
        return self._rank_pools()[0]

    @property
    def pool_b(self) -> ImagePool:
        return self._rank_pools()[1]

    def discriminators(self) -> tuple[nn.Module, ...]:
        """The networks the generator update freezes, the D optimizer steps and WGAN clips."""
        return self.nets.d_a, self.nets.d_b

    def forward_cycle(self, real_a: torch.Tensor, real_b: torch.Tensor, *, generator_step: bool) -> Any:
        """One batch's forward passes: the whole cycle (with identity terms) for the generator update,
        the translations alone for the extra discriminator batches of ``--n-critic``."""
        return self.nets.cycle(real_a, real_b, identity=generator_step, cycle_noise=self.config.cycle_noise)

    def discriminator_terms(
        self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor, fake_b: torch.Tensor, out: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The discriminators' loss on one batch; ``out`` carries what else they judge (subclasses' codes)."""
        return self.nets.discriminator_loss(real_a, real_b, fake_a, fake_b)

    def train_step(self, batches: Sequence[Any], step: int) -> dict[str, torch.Tensor]:
        c, m = self.config, self.nets
        factor = lr_factor(step - 1, c.steps, c.schedule, decay_start=c.decay_start, time_decay=c.time_decay)
        set_lr(self._optimizers["G"], c.lr * factor)
        set_lr(self._optimizers["D"], (c.lr_d or c.lr) * factor)
        discriminators = self.discriminators()
        terms: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(batches):
            real_a = batch["A"].to(self.device, non_blocking=True)
            real_b = batch["B"].to(self.device, non_blocking=True)
            g_step = i == 0
            with self.precision.autocast(), torch.set_grad_enabled(True) if g_step else torch.no_grad():
                out = self.forward_cycle(real_a, real_b, generator_step=g_step)
            if g_step:
                set_requires_grad(discriminators, False)
                with self.precision.autocast():
                    loss_g, terms_g = m.generator_loss(real_a, real_b, out, self.semantic)
                self.precision.step(loss_g, self._optimizers["G"])
                terms |= terms_g
                set_requires_grad(discriminators, True)
            fake_a = self.pool_a.query(out.fake_a)
            fake_b = self.pool_b.query(out.fake_b)
            with self.precision.autocast():
                loss_d, terms_d = self.discriminator_terms(real_a, real_b, fake_a, fake_b, out)
            self.precision.step(loss_d, self._optimizers["D"])
            if c.gan_loss == "wgan":
                for d in discriminators:
                    clip_weights(d, c.clip)
            terms |= terms_d
        return terms

    def progress_terms(self, terms):
        nan = float("nan")
        return {"D": terms.get("D_a", 0.0) + terms.get("D_b", 0.0), "G": terms.get("G_total", nan),
                "cyc": terms.get("cycle_a", nan) + terms.get("cycle_b", nan)}  # fmt: skip

    def extra_state(self) -> dict[str, Any]:
        if not self.for_training:
            return {}
        if set(self._pools) - {self.shard.rank}:  # the ranks this process stands for (--accumulate)
            state = {"rank_pools": {str(r): {"a": a.state_dict(), "b": b.state_dict()}
                                    for r, (a, b) in self._pools.items()}}  # fmt: skip
        else:
            state = {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}
        if self.semantic is not None:
            state["semantic"] = semantic_state(self.semantic)
        return state

    def activation_bytes(self) -> int | None:
        """Measured, not guessed, for the generator update (the larger of the two: both cycles and the
        identity passes); see :meth:`probed_activation_bytes`."""
        return self.probed_activation_bytes(
            lambda a, b: self.nets.generator_loss(a, b, self.nets.cycle(a, b, identity=True))
        )

    def extra_state_bytes(self) -> int:
        c = self.config
        per_image = c.size * c.size * 4  # float32 pixels of one channel
        pools = c.pool_size * per_image * ((c.channels_a or 3) + (c.channels_b or 3)) * c.accumulate
        lenets = 2 * (2 if c.target_readers else 1)
        classifiers = lenets * 2_000_000 if c.semantic_loss else 0  # LeNets: ~0.43 M float32 parameters each
        return pools + classifiers if self.for_training else 0

    def load_extra_state(self, state) -> None:
        if self.for_training and "pool_a" in state:
            self.pool_a.load_state_dict(state["pool_a"], self.device)
            self.pool_b.load_state_dict(state["pool_b"], self.device)
        for rank, pools in state.get("rank_pools", {}).items() if self.for_training else ():
            a, b = self._pools.setdefault(int(rank), (ImagePool(), ImagePool()))
            a.load_state_dict(pools["a"], self.device)
            b.load_state_dict(pools["b"], self.device)
        if self.for_training and state.get("semantic"):
            self.semantic = load_semantic_state(self.config.semantic_source, state["semantic"], self.device)

    @torch.no_grad()
    def sample_grid(self, step: int) -> Image.Image:
        from gankit.data.grid import make_grid

        a, b = (t.to(self.device) for t in self.fixed_inputs())
        out = self.nets.cycle(a, b)
        rows = [[a[i], out.fake_b[i], out.rec_a[i]] for i in range(len(a))]
        rows += [[b[i], out.fake_a[i], out.rec_b[i]] for i in range(len(b))]
        row_labels = [f"A{i}" for i in range(len(a))] + [f"B{i}" for i in range(len(b))]
        return make_grid([[t.float().cpu() for t in r] for r in rows],
                         labels=["real", "translated", "reconstructed"], row_labels=row_labels)  # fmt: skip

    def describe(self) -> dict[str, str]:
        c = self.config
        return {
            "model": f"{c.generator} generator ({c.blocks} blocks) · {c.discriminator} discriminator · {c.gan_loss}",
            "images": f"{c.size}px crops, channels A={c.channels_a} B={c.channels_b}, batch {c.batch_size}",
            "grids": "each row: real | translated | reconstructed (A rows: A→B→A, B rows: B→A→B)",
        } | ({"semantic loss": f"λ_sem {c.lambda_sem}"
              + (f" (B → A: {c.lambda_sem_b2a})" if c.lambda_sem_b2a is not None else "")
              + ", frozen LeNet task classifier(s) trained on the labels of "
              f"{ {'a': 'domain A', 'b': 'domain B', 'both': 'each direction’s source domain'}[c.semantic_source]}"
              + (" (gray sources recoloured)" if c.semantic_recolour else "")
              + (" (digits reshaped)" if c.semantic_reshape else "")
              + ("; translations read by readers of the target domain taught by pseudo-labels"
                 if c.target_readers else "")}
             if c.semantic_loss else {}) | luminance_description(c) | (
            {"cycle noise": f"reconstructions start from translations plus N(0, {c.cycle_noise:g}²) noise"}
            if c.cycle_noise else {})  # fmt: skip

    # --- Translator ------------------------------------------------------------------------------------
    @property
    def directions(self) -> tuple[str, ...]:
        return DIRECTIONS

    def translator_network(self, direction: str) -> nn.Module:
        return self.nets.generator(direction)

    @property
    def labels_seen_in_training(self) -> frozenset[str]:
        c = self.config
        return frozenset(("ab" if c.semantic_source == "both" else c.semantic_source) if c.semantic_loss else "")

    def channels(self, direction: str = "a2b") -> tuple[int, int]:
        return self.nets.channels(direction)

    @property
    def conv_tuner(self) -> ConvAlgorithmTuner | None:
        return self.nets.conv_tuner


def cyclegan_config(**fields: Any) -> CycleGANConfig:
    """A validated config from field values (e.g. ``cyclegan_config(channels_a=3, channels_b=3, size=256)``)."""
    try:
        return dataclasses.replace(CycleGANConfig(), **fields).validate()
    except TypeError as e:
        raise ConfigError(str(e)) from None
