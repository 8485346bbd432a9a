"""CUT and FastCUT (Park, Efros, Zhang & Zhu, "Contrastive Learning for Unpaired Image-to-Image
Translation", ECCV 2020): one generator G: A→B, one discriminator on B, and no inverse mapping.
Instead of a cycle, PatchNCE (eq. 2, 5) asks each patch of a translation to be recognisable as the
input patch at the same place among the other patches of that image, in the generator's own
encoder features (the output is encoded again by G's first layers, through a small MLP head per
layer).

- ``cut``: λ_NCE = 1 plus the same loss on domain-B images (G(b) should keep b, the identity
  NCE of §3.2, eq. 6), the paper's default.
- ``fastcut``: λ_NCE = 10, no identity NCE, and flip equivariance: the input is flipped
  horizontally at random and the translation's features flipped back are compared with the
  unflipped input's (§4).

One training step, as in the reference code: G translates the batch (one pass over A and, for CUT,
B); D is updated on real B against the detached translations (no history pool); then G and the MLP
heads are updated on the adversarial loss and PatchNCE. Where the keys' input is exactly G's input
(nothing flipped), the keys are the features of that same pass; flipped images are encoded again
unflipped, without gradient (keys are targets).

Differences from the reference code, on purpose: patch positions are drawn per image rather than
once per batch (same distribution; it makes N data-parallel ranks draw what one process with N
times the batch draws), and the discriminator is the PatchGAN of CycleGAN (the reference also blurs
its subsampling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from gankit.config import opt, option_error
from gankit.errors import ConfigError
from gankit.losses import AdversarialLoss, clip_weights, gradient_penalty, patch_nce_loss
from gankit.models.base import make_optimizer, set_requires_grad
from gankit.models.registry import register
from gankit.models.schedules import lr_factor, set_lr
from gankit.models.translation import (
    INITS,
    TranslationConfig,
    UnpairedTranslationModel,
    build_translation_discriminator,
    build_translation_generator,
    conv_tuner_for,
    init_translation_networks,
    score_real_and_fake,
)
from gankit.nn.contrastive import PatchProjector

NCE_LAYERS = ["input", "down1", "down2", "block1", "block5"]


@dataclass
class CUTConfig(TranslationConfig):
    """A CUT run: the translation options (data, networks, game, optimizer) with the reference code's
    CUT defaults — antialiased resnet-9, xavier init, LSGAN, Adam(2e-4, 0.5, 0.999), linear decay over
    the second half — plus PatchNCE's own."""

    antialias: bool = opt(True, "resnet generator: anti-aliased (blurred) down- and upsampling (Zhang 2019; CUT's "
                          "default)", group="model")  # fmt: skip
    init: str = opt("xavier", "weight init", choices=INITS, group="model")
    lambda_gan: float = opt(1.0, "adversarial weight λ_GAN", group="loss", ge=0)
    lambda_nce: float = opt(1.0, "PatchNCE weight λ_NCE", group="loss", ge=0)
    nce_idt: bool = opt(True, "identity PatchNCE on domain-B images: G(b) keeps b (CUT)", group="loss")
    flip_equivariance: bool = opt(False, "flip inputs at random and compare the translation's features flipped "
                                  "back with the unflipped input's (FastCUT)", group="loss")  # fmt: skip
    nce_layers: list[str] = opt(NCE_LAYERS, "generator taps PatchNCE compares: input, stem, down1, down2, "
                                "block1…blockN", group="loss")  # fmt: skip
    nce_patches: int = opt(256, "patches sampled per image and layer", group="loss", ge=2)
    nce_dim: int = opt(256, "width of the MLP heads' embeddings", group="loss", ge=1)
    nce_temperature: float = opt(0.07, "PatchNCE temperature τ", group="loss", gt=0)
    out: str = opt("runs/cut", "run folder", group="run")

    def validate(self):
        super().validate()
        if self.generator != "resnet":
            raise option_error("generator", self.generator, "CUT compares resnet generator features; use resnet")
        taps = ("input", "stem", "down1", "down2", *(f"block{i + 1}" for i in range(self.blocks)))
        unknown = [t for t in self.nce_layers if t not in taps]
        if unknown or not self.nce_layers:
            raise option_error("nce_layers", " ".join(self.nce_layers),
                               f"expected taps of a {self.blocks}-block generator: {', '.join(taps)}")  # fmt: skip
        return self


@dataclass
class FastCUTConfig(CUTConfig):
    """FastCUT: λ_NCE = 10, no identity NCE, flip equivariance (CUT §4)."""

    lambda_nce: float = opt(10.0, "PatchNCE weight λ_NCE", group="loss", ge=0)
    nce_idt: bool = opt(False, "identity PatchNCE on domain-B images: G(b) keeps b (CUT)", group="loss")
    flip_equivariance: bool = opt(True, "flip inputs at random and compare the translation's features flipped "
                                  "back with the unflipped input's (FastCUT)", group="loss")  # fmt: skip
    out: str = opt("runs/fastcut", "run folder", group="run")


@dataclass
class StepForward:
    """G's pass over one batch: what the discriminator update and the generator loss both read."""

    fake: torch.Tensor  # G(inputs): translations of A, then (CUT) G(b)
    keys: list[torch.Tensor]  # encoder features of the unflipped inputs, detached
    flipped: torch.Tensor  # (N,) bool: which inputs were flipped
    n: int  # images of A in the batch

    @property
    def fake_b(self) -> torch.Tensor:
        return self.fake[: self.n]


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with the images selected by ``mask`` flipped horizontally."""
    if not mask.any():
        return x
    return torch.where(mask.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)


@register
class CUTModel(UnpairedTranslationModel):
    kind = "cut"
    summary = "one-sided contrastive translation A→B (Park et al. 2020)"
    config_class = CUTConfig
    exported = ("g",)

    def __init__(self, config: CUTConfig, device: torch.device, *, for_training: bool = True):
        super().__init__(config, device, for_training=for_training)
        config = self.config
        if config.channels_a != config.channels_b:
            raise ConfigError(f"{self.kind} needs domains with equal channels (G encodes its own translations); "
                              f"A has {config.channels_a}, B has {config.channels_b}")  # fmt: skip
        self.g = build_translation_generator(config, config.channels_a, config.channels_b)
        nets: list[nn.Module] = [self.g]
        if for_training:
            self.d = build_translation_discriminator(config, config.channels_b)
            self.heads = PatchProjector([self.g.tap_channels(t) for t in config.nce_layers], config.nce_dim)
            nets += [self.d, self.heads]
        init_translation_networks(config, nets)
        for net in nets:
            net.to(device)
        self.conv_tuner = conv_tuner_for(config, nn.ModuleList(nets))
        if for_training:
            self.adversarial = AdversarialLoss(config.gan_loss, real_label=1.0 - config.label_smoothing,
                                               label_noise=config.label_noise)  # fmt: skip
            g_params = [*self.g.parameters(), *self.heads.parameters()]
            self._optimizers = {"G": make_optimizer(g_params, config, config.lr),
                                "D": make_optimizer(self.d.parameters(), config, config.lr_d or config.lr)}  # fmt: skip

    # --- Model ---------------------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {"g": self.g, "d": self.d, "heads": self.heads} if self.for_training else {"g": self.g}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers if self.for_training else {}

    def forward_batch(self, real_a: torch.Tensor, real_b: torch.Tensor) -> StepForward:
        """Translate A (and, with identity NCE, B) in one pass; flip first where FastCUT draws a flip."""
        c = self.config
        inputs = torch.cat([real_a, real_b]) if c.nce_idt else real_a
        n = real_a.shape[0]
        if c.flip_equivariance:
            flipped = (self.shard.rand(n, device=self.device) < 0.5).repeat(inputs.shape[0] // n)
        else:
            flipped = torch.zeros(inputs.shape[0], dtype=torch.bool, device=self.device)
        fake, keys = self.g.forward_with_taps(flip_where(inputs, flipped), c.nce_layers)
        if flipped.any():
            with torch.no_grad():
                _, keys = self.g.forward_with_taps(inputs, c.nce_layers, encode_only=True)
        return StepForward(fake=fake, keys=[k.detach() for k in keys], flipped=flipped, n=n)

    def nce_losses(self, forward: StepForward) -> torch.Tensor:
        """(N,) λ_NCE · PatchNCE of each translation against its input, averaged over the layers."""
        c = self.config
        _, queries = self.g.forward_with_taps(forward.fake, c.nce_layers, encode_only=True)
        queries = [flip_where(q, forward.flipped) for q in queries]

        def draw(rows: int, m: int) -> torch.Tensor:  # A's images first, then B's: each group as a rank draws it
            return torch.cat([self.shard.rand(forward.n, m) for _ in range(rows // forward.n)])

        positions = PatchProjector.sample_positions(forward.keys, c.nce_patches, draw)
        q_emb, k_emb = self.heads(queries, positions), self.heads(forward.keys, positions)
        per_layer = [patch_nce_loss(q, k, c.nce_temperature) for q, k in zip(q_emb, k_emb)]
        return c.lambda_nce * torch.stack(per_layer).mean(dim=0)

    def generator_loss(self, forward: StepForward) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """λ_GAN·L_GAN(G, D) + L_PatchNCE(G, H, X) [+ L_PatchNCE(G, H, Y), the two NCE terms averaged]
        (CUT eq. 5)."""
        c = self.config
        terms = {"G_adv": self.adversarial.g_loss(self.d(forward.fake_b))}
        nce = self.nce_losses(forward)
        terms["NCE"] = nce[: forward.n].mean()
        if c.nce_idt:
            terms["NCE_idt"] = nce[forward.n :].mean()
        terms["G_total"] = c.lambda_gan * terms["G_adv"] + nce.mean()
        return terms["G_total"], terms

    def discriminator_loss(self, real_b: torch.Tensor, fake_b: torch.Tensor) -> torch.Tensor:
        fake_b = fake_b.detach()
        score_real, score_fake = score_real_and_fake(self.d, real_b, fake_b, one_pass=self.config.norm != "batch")
        loss = self.adversarial.d_loss(score_real, score_fake)
        if self.config.gan_loss == "wgan-gp":
            loss = loss + self.config.gp_weight * gradient_penalty(self.d, real_b, fake_b)
        return loss

    def train_step(self, batches: Sequence[Any], step: int) -> dict[str, torch.Tensor]:
        c = self.config
        factor = lr_factor(step - 1, c.steps, c.schedule, decay_start=c.decay_start, time_decay=c.time_decay)
        set_lr(self._optimizers["G"], c.lr * factor)
        set_lr(self._optimizers["D"], (c.lr_d or c.lr) * factor)
        terms: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(batches):
            real_a = batch["A"].to(self.device, non_blocking=True)
            real_b = batch["B"].to(self.device, non_blocking=True)
            g_step = i == 0
            with self.precision.autocast():
                if g_step:
                    forward = self.forward_batch(real_a, real_b)
                    fake_b = forward.fake_b
                else:  # a further discriminator update (--n-critic): translations only, no features
                    with torch.no_grad():
                        fake_b = self.g(real_a)
                loss_d = self.discriminator_loss(real_b, fake_b)
            self.precision.step(loss_d, self._optimizers["D"])
            if c.gan_loss == "wgan":
                clip_weights(self.d, c.clip)
            terms["D"] = loss_d
            if g_step:
                set_requires_grad([self.d], False)
                with self.precision.autocast():
                    loss_g, terms_g = self.generator_loss(forward)
                self.precision.step(loss_g, self._optimizers["G"])
                set_requires_grad([self.d], True)
                terms |= terms_g
        return terms

    def progress_terms(self, terms):
        nan = float("nan")
        return {"D": terms.get("D", nan), "G": terms.get("G_adv", nan), "NCE": terms.get("NCE", nan)}

    def activation_bytes(self) -> int | None:
        """Measured for the generator update, the larger of the two (see :meth:`probed_activation_bytes`)."""
        if not self.for_training:
            return None
        return self.probed_activation_bytes(lambda a, b: self.generator_loss(self.forward_batch(a, b)))

    @torch.no_grad()
    def sample_grid(self, step: int) -> Image.Image:
        from gankit.data.grid import make_grid

        a, b = (t.to(self.device) for t in self.fixed_inputs())
        fake_b, idt_b = self.g(torch.cat([a, b])).split([len(a), len(b)])
        rows = [[a[i], fake_b[i]] for i in range(len(a))] + [[b[i], idt_b[i]] for i in range(len(b))]
        row_labels = [f"A{i}" for i in range(len(a))] + [f"B{i} (identity)" for i in range(len(b))]
        return make_grid([[t.float().cpu() for t in r] for r in rows], labels=["input", "G(input)"],
                         row_labels=row_labels)  # fmt: skip

    def describe(self) -> dict[str, str]:
        c = self.config
        sampling = "antialiased" if c.antialias else "strided"
        nce = [f"layers {', '.join(c.nce_layers)}", f"λ_NCE {c.lambda_nce:g}", f"τ {c.nce_temperature:g}",
               f"{c.nce_patches} patches", "identity NCE" if c.nce_idt else "no identity NCE"]  # fmt: skip
        if c.flip_equivariance:
            nce.append("flip equivariance")
        return {
            "model": f"{c.generator} generator ({c.blocks} blocks, {sampling} sampling) · {c.discriminator} "
            f"discriminator · {c.gan_loss}",
            "PatchNCE": " · ".join(nce),
            "images": f"{c.size}px crops, channels A={c.channels_a} B={c.channels_b}, batch {c.batch_size}",
            "grids": "each row: input | G(input) (A rows: translations; B rows: G on a B image, which should keep it)",
        }

    # --- Translator ------------------------------------------------------------------------------------
    @property
    def directions(self) -> tuple[str, ...]:
        return ("a2b",)

    def translator_network(self, direction: str) -> nn.Module:
        return self.g

    def channels(self, direction: str = "a2b") -> tuple[int, int]:
        return self.config.channels_a, self.config.channels_b


@register
class FastCUTModel(CUTModel):
    kind = "fastcut"
    summary = "CUT's faster variant: no identity NCE, flip equivariance (Park et al. 2020)"
    config_class = FastCUTConfig
