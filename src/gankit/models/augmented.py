"""Augmented CycleGAN (Almahairi, Rajeswar, Sordoni, Bachman & Courville, "Augmented CycleGAN: Learning
Many-to-Many Mappings from Unpaired Data", ICML 2018) as an option of CycleGAN: ``gankit train cyclegan
--latent-dim K``. CycleGAN's translations are functions, one output per input; here each domain has a
latent code, z_a, z_b ∈ R^K with prior N(0, I), and one input has many translations, one per code.

The networks (:mod:`gankit.nn.latent`), in the paper's notation (§4):

- G_AB: A × Z_b → B and G_BA: B × Z_a → A, CycleGAN's resnet generators whose instance norms take
  their scale and shift from the code (conditional instance norm);
- E_A: A × B → Z_a and E_B: A × B → Z_b, encoders that infer a code from an (a, b) pair;
- D_A, D_B on images (CycleGAN's), D_Za, D_Zb on codes.

The augmented cycles (§4), for a ~ p(a), z_b ~ p(z_b) and symmetrically for b ~ p(b), z_a ~ p(z_a)::

    (a, z_b) → b̃ = G_AB(a, z_b),  z̃_a = E_A(a, b̃)  →  ã = G_BA(b̃, z̃_a) ≈ a,  E_B(a, b̃) ≈ z_b
    (b, z_a) → ã = G_BA(b, z_a),  z̃_b = E_B(ã, b)  →  b̂ = G_AB(ã, z̃_b) ≈ b,  E_A(ã, b) ≈ z_a

and the objective, minimised by G_AB, G_BA, E_A, E_B (maximised by the discriminators)::

    L_GAN^B(G_AB, D_B) + L_GAN^A(G_BA, D_A)                 marginal matching of images
  + λ_Z·(L_GAN^Za(E_A, D_Za) + L_GAN^Zb(E_B, D_Zb))        marginal matching of the inferred codes z̃_a, z̃_b
  + λ_cyc·(L_CYC^A + L_CYC^B)                               ‖ã − a‖₁, ‖b̂ − b‖₁
  + λ_latent·(L_CYC^Zb + L_CYC^Za)                          ‖E_B(a, b̃) − z_b‖₁, ‖E_A(ã, b) − z_a‖₁

(λ_Z = ``--lambda-latent-gan``, λ_latent = ``--lambda-latent``). The code reconstruction is what makes
the generators use the code: a translation that ignored z_b would leave nothing for E_B to recover.

Choices of this implementation: deterministic encoders with the adversarial loss on codes (the
paper's main setting), no identity loss (the paper has none; ``--lambda-id`` is unused here), the same
history pool of images for D_A, D_B as CycleGAN and none for codes, encoders and code discriminators
left at PyTorch's fan-in scaled init (unnormalised stacks; ``--init`` applies to the generators' convs
and the image discriminators as in CycleGAN), and the code's scale-and-shift maps started at N(0, 1/K)
so that the code matters from the first step (:class:`~gankit.nn.latent.ConditionalInstanceNorm2d`).
One training step has CycleGAN's order: the generator and encoder update on the first batch, then
``--n-critic`` discriminator updates, each on its own batch and codes.

For inference the model is a :class:`~gankit.models.base.Translator` whose default translator is the
generator at the prior's mode z = 0; :meth:`AugmentedCycleGANModel.coded_generator` binds any code,
:meth:`~AugmentedCycleGANModel.sample_codes` draws them and :meth:`~AugmentedCycleGANModel.infer_code`
infers the target code from an example of the target domain (``gankit translate --samples / --like``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gankit.losses import AdversarialLoss, cycle_loss, gradient_penalty
from gankit.models.base import Model, make_optimizer
from gankit.models.cyclegan import (
    DIRECTIONS,
    CycleGANConfig,
    CycleGANModel,
    consistency_terms,
    luminance_description,
    perturbed_for_reconstruction,
)
from gankit.models.semantic import SemanticConsistency
from gankit.models.translation import (
    build_translation_discriminator,
    conv_tuner_for,
    init_translation_networks,
    score_real_and_fake,
)
from gankit.nn.latent import (
    CodedGenerator,
    CodeDiscriminator,
    ConditionalInstanceNorm2d,
    ConditionalResnetGenerator,
    LatentEncoder,
)

GRID_CODES = 3
"""Translations per input in the sample grids, one column per fixed code."""


@dataclass
class AugmentedOutputs:
    """One forward pass of both augmented cycles (kept for the discriminator update)."""

    z_a: torch.Tensor  # codes drawn from the prior
    z_b: torch.Tensor
    fake_b: torch.Tensor  # b̃ = G_AB(a, z_b)
    fake_a: torch.Tensor  # ã = G_BA(b, z_a)
    inferred_a: torch.Tensor  # z̃_a = E_A(a, b̃)
    inferred_b: torch.Tensor  # z̃_b = E_B(ã, b)
    rec_a: torch.Tensor | None = None  # G_BA(b̃, z̃_a)
    rec_b: torch.Tensor | None = None  # G_AB(ã, z̃_b)
    rec_z_b: torch.Tensor | None = None  # E_B(a, b̃)
    rec_z_a: torch.Tensor | None = None  # E_A(ã, b)


def code_loss(code: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """L_CYC^Z: ‖Ẽ − z‖₁ per code entry, the latent half of an augmented cycle (paper §4)."""
    return F.l1_loss(reconstructed.float(), code.float())


class AugmentedCycleGANNetworks(nn.Module):
    """G_AB, G_BA, E_A, E_B (and for training D_A, D_B, D_Za, D_Zb) with the losses of the augmented
    cycles; one ``nn.Module`` so that ``.to()``, ``.train()`` and state dicts cover all of them."""

    def __init__(self, config: CycleGANConfig, *, with_discriminators: bool = True):
        super().__init__()
        c = config
        ca, cb, k = c.channels_a, c.channels_b, c.latent_dim
        if ca is None or cb is None or k < 1:
            raise ValueError("Augmented CycleGAN needs a resolved config (channels_a, channels_b) and latent_dim ≥ 1")
        self.config = config

        def generator(cin: int, cout: int) -> ConditionalResnetGenerator:
            return ConditionalResnetGenerator(cin, cout, k, c.ngf or 64, c.blocks, padding=c.g_padding,
                                              dropout=c.dropout, final=c.final, antialias=c.antialias,
                                              kernel_size=c.generator_kernel or 3, activation=c.activation,
                                              downsample=c.downsample, luminance=c.luminance_mode(cin))  # fmt: skip

        self.g_ab, self.g_ba = generator(ca, cb), generator(cb, ca)
        if with_discriminators:
            self.d_a = build_translation_discriminator(config, ca)
            self.d_b = build_translation_discriminator(config, cb)
        init_translation_networks(config, [m for m in self.children()])  # CycleGAN's init of G and D
        for norm in (m for g in (self.g_ab, self.g_ba) for m in g.modules()):
            if isinstance(norm, ConditionalInstanceNorm2d):
                norm.reset_modulation()  # a code that matters from the first step (see its docstring)
        self.e_a = LatentEncoder(ca, cb, k, c.encoder_width)
        self.e_b = LatentEncoder(ca, cb, k, c.encoder_width)
        if with_discriminators:
            self.dz_a = CodeDiscriminator(k, 2 * c.encoder_width)
            self.dz_b = CodeDiscriminator(k, 2 * c.encoder_width)
        self.conv_tuner = conv_tuner_for(config, self)
        self.adversarial = AdversarialLoss(c.gan_loss, real_label=1.0 - c.label_smoothing, label_noise=c.label_noise)

    # --- inference --------------------------------------------------------------------------------
    def generator(self, direction: str = "a2b") -> ConditionalResnetGenerator:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
        return self.g_ab if direction == "a2b" else self.g_ba

    def encoder(self, direction: str = "a2b") -> LatentEncoder:
        """The encoder of the code a direction's generator takes: E_B for a2b, E_A for b2a."""
        return self.e_b if direction == "a2b" else self.e_a

    def channels(self, direction: str = "a2b") -> tuple[int, int]:
        ca, cb = self.config.channels_a, self.config.channels_b
        return (ca, cb) if direction == "a2b" else (cb, ca)

    # --- the augmented cycles -----------------------------------------------------------------------
    def cycle(self, real_a: torch.Tensor, real_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor, *,
              reconstruct: bool = True, cycle_noise: float = 0.0) -> AugmentedOutputs:  # fmt: skip
        """Translations with the prior codes, the codes inferred from them and, with ``reconstruct``,
        the reconstructions of both images and both codes (the augmented cycles, paper §4), the images'
        from translations perturbed by ``cycle_noise`` (:func:`perturbed_for_reconstruction`)."""
        fake_b, fake_a = self.g_ab(real_a, z_b), self.g_ba(real_b, z_a)
        out = AugmentedOutputs(z_a=z_a, z_b=z_b, fake_b=fake_b, fake_a=fake_a,
                               inferred_a=self.e_a(real_a, fake_b), inferred_b=self.e_b(fake_a, real_b))  # fmt: skip
        if reconstruct:
            out.rec_a = self.g_ba(perturbed_for_reconstruction(fake_b, cycle_noise), out.inferred_a)
            out.rec_z_b = self.e_b(real_a, fake_b)
            out.rec_b = self.g_ab(perturbed_for_reconstruction(fake_a, cycle_noise), out.inferred_b)
            out.rec_z_a = self.e_a(fake_a, real_b)
        return out

    def generator_loss(
        self,
        real_a: torch.Tensor,
        real_b: torch.Tensor,
        out: AugmentedOutputs,
        semantic: SemanticConsistency | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective of G_AB, G_BA, E_A, E_B (module docstring): adversarial terms on images and on
        inferred codes, image cycles weighted λ_cyc, code cycles weighted λ_latent; plus, as for CycleGAN,
        λ_sem·L_sem with a ``semantic`` consistency term (``--semantic-loss``, CyCADA eq. 4) and the luminance
        term of ``--lambda-luma``."""
        c, adv = self.config, self.adversarial
        terms = {
            "G_adv_a2b": adv.g_loss(self.d_b(out.fake_b)),
            "G_adv_b2a": adv.g_loss(self.d_a(out.fake_a)),
            "Z_adv_a": adv.g_loss(self.dz_a(out.inferred_a)),
            "Z_adv_b": adv.g_loss(self.dz_b(out.inferred_b)),
            "cycle_a": cycle_loss(real_a, out.rec_a),
            "cycle_b": cycle_loss(real_b, out.rec_b),
            "code_a": code_loss(out.z_a, out.rec_z_a),
            "code_b": code_loss(out.z_b, out.rec_z_b),
        }
        total = (terms["G_adv_a2b"] + terms["G_adv_b2a"] + c.lambda_latent_gan * (terms["Z_adv_a"] + terms["Z_adv_b"])
                 + c.lambda_cyc * (terms["cycle_a"] + terms["cycle_b"])
                 + c.lambda_latent * (terms["code_a"] + terms["code_b"]))  # fmt: skip
        extra, weighted = consistency_terms(semantic, c, real_a, real_b, out.fake_a, out.fake_b)
        terms |= extra
        total = total + weighted
        terms["G_total"] = total
        return total, terms

    def discriminator_loss(
        self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor, fake_b: torch.Tensor,
        out: AugmentedOutputs,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        """D_A, D_B: real images against (pooled) translations; D_Za, D_Zb: codes drawn from the prior
        (real) against the inferred codes (fake), each game halved as CycleGAN's."""
        c = self.config
        one_pass = c.norm != "batch"
        pairs = (
            ("D_a", self.d_a, real_a, fake_a),
            ("D_b", self.d_b, real_b, fake_b),
            ("D_za", self.dz_a, out.z_a, out.inferred_a),
            ("D_zb", self.dz_b, out.z_b, out.inferred_b),
        )
        terms = {}
        for name, d, real, fake in pairs:
            fake = fake.detach()
            score_real, score_fake = score_real_and_fake(d, real, fake, one_pass=one_pass)
            loss = self.adversarial.d_loss(score_real, score_fake)
            if c.gan_loss == "wgan-gp":
                terms[f"{name}_gp"] = penalty = gradient_penalty(d, real, fake)
                loss = loss + c.gp_weight * penalty
            terms[name] = loss
        total = terms["D_a"] + terms["D_b"] + terms["D_za"] + terms["D_zb"]
        return total, terms


class AugmentedCycleGANModel(CycleGANModel):
    """CycleGAN with ``--latent-dim K`` > 0: what ``CycleGANModel(config, …)`` builds for such a config
    (kind ``cyclegan``, the same config class, checkpoints and commands). Inherits CycleGAN's history
    pools, their resumable state, the learning-rate schedule and the Translator basics."""

    exported = ("g_ab", "g_ba", "e_a", "e_b")

    def __init__(self, config: CycleGANConfig, device: torch.device, *, for_training: bool = True):
        super(CycleGANModel, self).__init__(config, device, for_training=for_training)
        config = self.config
        self.nets = AugmentedCycleGANNetworks(config, with_discriminators=for_training).to(device)
        if for_training:
            m = self.nets
            g_params = [p for net in (m.g_ab, m.g_ba, m.e_a, m.e_b) for p in net.parameters()]
            d_params = [p for net in self.discriminators() for p in net.parameters()]
            self._optimizers = {"G": make_optimizer(g_params, config, config.lr),
                                "D": make_optimizer(d_params, config, config.lr_d or config.lr)}  # fmt: skip
            self._pools = {}
        self.semantic: SemanticConsistency | None = None  # --semantic-loss: set by prepare(), as for CycleGAN

    # --- Model ---------------------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        names = ["g_ab", "g_ba", "e_a", "e_b"] + (["d_a", "d_b", "dz_a", "dz_b"] if self.for_training else [])
        return {name: getattr(self.nets, name) for name in names}

    def compile_for_training(self) -> None:
        Model.compile_for_training(self)

    def reference_passes(self):
        return Model.reference_passes(self)

    def draw_codes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z_a, z_b ~ N(0, I), (n, K) each, through the shard (data-parallel ranks draw their rows)."""
        k = self.config.latent_dim
        return self.shard.randn(n, k, device=self.device), self.shard.randn(n, k, device=self.device)

    def discriminators(self) -> tuple[nn.Module, ...]:
        m = self.nets
        return m.d_a, m.d_b, m.dz_a, m.dz_b

    def forward_cycle(self, real_a: torch.Tensor, real_b: torch.Tensor, *, generator_step: bool) -> AugmentedOutputs:
        z_a, z_b = self.draw_codes(real_a.shape[0])
        noise = self.config.cycle_noise
        return self.nets.cycle(real_a, real_b, z_a, z_b, reconstruct=generator_step, cycle_noise=noise)

    def discriminator_terms(
        self,
        real_a: torch.Tensor,
        real_b: torch.Tensor,
        fake_a: torch.Tensor,
        fake_b: torch.Tensor,
        out: AugmentedOutputs,
    ) -> tuple[torch.Tensor, dict]:
        """Adds the code discriminators' terms, which read the codes of ``out``."""
        return self.nets.discriminator_loss(real_a, real_b, fake_a, fake_b, out)

    def progress_terms(self, terms):
        nan = float("nan")
        return {"D": terms.get("D_a", 0.0) + terms.get("D_b", 0.0), "G": terms.get("G_total", nan),
                "cyc": terms.get("cycle_a", nan) + terms.get("cycle_b", nan),
                "code": terms.get("code_a", nan) + terms.get("code_b", nan)}  # fmt: skip

    def activation_bytes(self) -> int | None:
        """Measured for the generator and encoder update (both augmented cycles), the larger update."""
        if not self.for_training:
            return None
        k = self.config.latent_dim

        def update(a: torch.Tensor, b: torch.Tensor) -> object:
            z = torch.randn(2, 1, k, device=self.device)
            return self.nets.generator_loss(a, b, self.nets.cycle(a, b, z[0], z[1]))

        return self.probed_activation_bytes(update)

    @torch.no_grad()
    def sample_grid(self, step: int) -> Image.Image:
        from gankit.data.grid import make_grid

        a, b = (t.to(self.device) for t in self.fixed_inputs())
        rows, row_labels = [], []
        for letter, x, direction in (("A", a, "a2b"), ("B", b, "b2a")):
            back = "b2a" if direction == "a2b" else "a2b"
            codes = self.sample_codes(GRID_CODES, seed=self.config.seed).to(self.device)
            fakes = [self.nets.generator(direction)(x, z[None]) for z in codes]
            rec = self.nets.generator(back)(fakes[0], self.infer_code(back, fakes[0], x))
            rows += [[x[i], *(f[i] for f in fakes), rec[i]] for i in range(len(x))]
            row_labels += [f"{letter}{i}" for i in range(len(x))]
        labels = ["real", *(f"code {k + 1}" for k in range(GRID_CODES)), "reconstructed"]
        return make_grid([[t.float().cpu() for t in r] for r in rows], labels=labels, row_labels=row_labels)

    def describe(self) -> dict[str, str]:
        c = self.config
        return {
            "model": f"Augmented CycleGAN (Almahairi et al. 2018): codes z_a, z_b of dimension {c.latent_dim} "
            f"~ N(0, I) through conditional instance norm · {c.generator} generator ({c.blocks} blocks) · encoders "
            f"E_A, E_B (width {c.encoder_width}) · {c.discriminator} and code discriminators · {c.gan_loss}",
            "loss": f"λ_cyc {c.lambda_cyc:g} · λ_latent {c.lambda_latent:g} (code cycles) · λ_Z "
            f"{c.lambda_latent_gan:g} (inferred codes vs the prior) · no identity loss",
            "images": f"{c.size}px crops, channels A={c.channels_a} B={c.channels_b}, batch {c.batch_size}",
            "grids": f"each row: real | translations with {GRID_CODES} fixed codes | reconstruction of the first "
            "(A rows: A→B→A, B rows: B→A→B, with the code inferred by the encoder)",
        } | luminance_description(c)

    # --- Translator (stochastic) ------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    def translator_network(self, direction: str) -> nn.Module:
        """The generator of ``direction`` at the prior's mode z = 0 (a plain one-input translator)."""
        return self.coded_generator(direction, torch.zeros(1, self.latent_dim, device=self.device))

    def conditional_generator(self, direction: str) -> ConditionalResnetGenerator:
        """The generator of ``direction`` taking ``(x, z)``."""
        return self.nets.generator(self.check_direction(direction))

    def coded_generator(self, direction: str, code: torch.Tensor) -> CodedGenerator:
        """The generator of ``direction`` with ``code`` fixed: (1, K) for any batch (and every tile of a
        large image), or (N, K), one per image of a batch of N."""
        return CodedGenerator(self.conditional_generator(direction), code.to(self.device))

    def sample_codes(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` codes (n, K) from the prior N(0, I), drawn from their own generator seeded ``seed`` (the
        global random state is left alone), on the CPU."""
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def infer_code(self, direction: str, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The code of ``direction``'s target domain for the pair (``source`` in its input domain, ``target``
        in its output domain), (N, C, H, W) in [-1, 1] each: E_B(a, b) for a2b, E_A(a, b) for b2a, the
        paper's inference of a code from an (a, b) pair. Both images are resized to the training size
        first (the encoder's view in training). Returns (N, K)."""
        encoder = self.nets.encoder(self.check_direction(direction))
        s = self.image_size
        source, target = (F.interpolate(x.to(self.device, torch.float32), size=(s, s), mode="bilinear",
                                        antialias=True, align_corners=False) for x in (source, target))  # fmt: skip
        a, b = (source, target) if direction == "a2b" else (target, source)
        with _eval_mode(encoder):
            return encoder(a, b)


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


CycleGANModel.latent_variant = AugmentedCycleGANModel
