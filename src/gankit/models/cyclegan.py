"""CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017): two generators G: A→B, F: B→A and two
discriminators, trained with adversarial, cycle-consistency and identity losses.

Naming: ``g_ab`` is G (A→B), ``g_ba`` is F (B→A); ``d_a`` judges domain-A images, ``d_b`` domain-B
images. (The official code calls G ``netG_A`` and the judge of B ``netD_A``.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from gankit.config import CycleGANConfig
from gankit.errors import CheckpointError
from gankit.io import list_checkpoints, load_safetensors, safe_torch_load, save_safetensors
from gankit.losses import AdversarialLoss, cycle_loss, gradient_penalty, identity_loss
from gankit.nn import build_discriminator, build_generator, init_weights
from gankit.nn.conv import ConvAlgorithmTuner, tune_convolutions

DIRECTIONS = ("a2b", "b2a")
WEIGHTS_FORMAT = "gankit-cyclegan-1"


@dataclass
class GeneratorOutputs:
    """The images one forward pass of both cycles produces (kept for the D step and sample grids)."""

    fake_b: torch.Tensor
    rec_a: torch.Tensor
    fake_a: torch.Tensor
    rec_b: torch.Tensor
    idt_a: torch.Tensor | None = None  # G(b) and F(a), when computed with the fakes (identity loss)
    idt_b: torch.Tensor | None = None


class CycleGAN(nn.Module):
    """The four networks plus the loss terms of CycleGAN eq. 3.

    Python API::

        m = CycleGAN.load("runs/apple2orange")          # run folder, .safetensors or checkpoint
        orange = m.translate(Image.open("apple.jpg"), direction="a2b")
        G = m.generator("a2b")                          # plain nn.Module: batched (N, C, H, W) in [-1, 1]
    """

    def __init__(self, config: CycleGANConfig, *, with_discriminators: bool = True):
        super().__init__()
        if config.channels_a is None or config.channels_b is None:
            raise ValueError("CycleGAN needs a resolved config (channels_a and channels_b set)")
        self.config = config
        ca, cb = config.channels_a, config.channels_b
        g = dict(
            ngf=config.ngf, n_blocks=config.blocks, depth=config.unet_depth, kernel_size=config.kernel_size,
            norm=config.norm, padding=config.g_padding, dropout=config.dropout, final=config.final,
        )  # fmt: skip
        self.g_ab = build_generator(config.generator, ca, cb, **g)
        self.g_ba = build_generator(config.generator, cb, ca, **g)
        nets = [self.g_ab, self.g_ba]
        if with_discriminators:
            d = dict(
                ndf=config.ndf, n_layers=config.d_layers, norm=config.norm, padding=config.d_padding,
                sigmoid=config.d_sigmoid, image_size=config.size, kernel_size=config.kernel_size,
            )  # fmt: skip
            self.d_a = build_discriminator(config.discriminator, ca, **d)
            self.d_b = build_discriminator(config.discriminator, cb, **d)
            nets += [self.d_a, self.d_b]
        for net in nets:
            init_weights(net, config.init, config.init_gain)
        self.conv_tuner = None
        if config.conv_algorithms != "plain" and not config.deterministic:
            force = {"nnpack": ("nnpack",), "winograd": ("nnpack", "winograd")}.get(config.conv_algorithms, ())
            self.conv_tuner = ConvAlgorithmTuner(force=force)  # timings, not weights: not in the state dict
            tune_convolutions(self, self.conv_tuner)
        self.adversarial = AdversarialLoss(config.gan_loss, real_label=1.0 - config.label_smoothing)

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

    def translate(self, image: Image.Image, direction: str = "a2b") -> Image.Image:
        """Translate one PIL image of any size and mode; the result has the input's size."""
        from gankit.inference.translate import translate_image

        return translate_image(self.generator(direction), image, self.channels(direction)[0])

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

    def cycle(self, real_a: torch.Tensor, real_b: torch.Tensor, *, identity: bool = False) -> GeneratorOutputs:
        """Both cycles; with ``identity`` (and :attr:`uses_identity`) also G(b) and F(a) for the
        identity loss. G's two inputs, real a and real b, are then one batch of two, and likewise F's:
        the same arithmetic per image (see :attr:`shares_batches`) in fewer, larger passes."""
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
        return GeneratorOutputs(fake_b=fake_b, rec_a=g_ba(fake_b), fake_a=fake_a, rec_b=g_ab(fake_a),
                                idt_a=idt_a, idt_b=idt_b)  # fmt: skip

    def generator_loss(
        self, real_a: torch.Tensor, real_b: torch.Tensor, out: GeneratorOutputs
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_GAN(G, D_B) + L_GAN(F, D_A) + λ_cyc·L_cyc + λ_cyc·λ_id·L_id (CycleGAN eq. 3 and §5.2)."""
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
            if self.shares_batches and real.shape[1:] == fake.shape[1:]:
                score_real, score_fake = d(torch.cat([real, fake])).split([real.shape[0], fake.shape[0]])
            else:
                score_real, score_fake = d(real), d(fake)
            loss = self.adversarial.d_loss(score_real, score_fake)
            if self.config.gan_loss == "wgan-gp":
                penalty = gradient_penalty(getattr(self, name.lower()), real, fake)  # eager: double backward
                terms[f"{name}_gp"] = penalty
                loss = loss + self.config.gp_weight * penalty
            terms[name] = loss
        total = terms["D_a"] + terms["D_b"]
        return total, terms

    # --- persistence ------------------------------------------------------------------------------
    def save_generators(self, path: str | Path) -> Path:
        """One self-describing ``.safetensors`` file with both generators and the config (what you
        ship; training state lives in the checkpoints)."""
        tensors = {f"g_ab.{k}": v for k, v in self.g_ab.state_dict().items()}
        tensors |= {f"g_ba.{k}": v for k, v in self.g_ba.state_dict().items()}
        meta = {"format": WEIGHTS_FORMAT, "config": json.dumps(self.config.to_dict())}
        return save_safetensors(tensors, Path(path), meta)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> CycleGAN:
        """Load generators from a run folder (its ``model.safetensors`` or newest checkpoint), a
        ``.safetensors`` file written by :meth:`save_generators`, or a training checkpoint ``.pt``."""
        path = Path(path)
        if path.is_dir():
            if (path / "model.safetensors").is_file():
                path = path / "model.safetensors"
            else:
                ckpts = list_checkpoints(path / "checkpoints")
                if not ckpts:
                    raise CheckpointError(f"{path}: no model.safetensors and no checkpoints/step_*.pt inside")
                path = ckpts[-1][1]
        if path.suffix == ".safetensors":
            tensors, meta = load_safetensors(path)
            if meta.get("format") != WEIGHTS_FORMAT or "config" not in meta:
                raise CheckpointError(f"{path}: not a gankit CycleGAN weights file (no gankit metadata)")
            config = CycleGANConfig.from_dict(json.loads(meta["config"]), source=str(path))
            model = cls(config, with_discriminators=False)
            _load_prefixed(model, tensors, path)
        else:
            state = safe_torch_load(path)
            if not isinstance(state, dict) or "model" not in state or "config" not in state:
                raise CheckpointError(f"{path}: not a gankit training checkpoint")
            config = CycleGANConfig.from_dict(state["config"], source=str(path))
            model = cls(config)
            try:
                model.load_state_dict(state["model"])
            except RuntimeError as e:
                raise CheckpointError(f"{path}: weights do not fit the saved config ({e})") from None
        return model.to(device).eval()

    @classmethod
    def load_official(
        cls, path_g_a: str | Path, path_g_b: str | Path, device: str | torch.device = "cpu", **config_overrides
    ) -> CycleGAN:
        """Load ``latest_net_G_A.pth`` / ``latest_net_G_B.pth`` of junyanz/pytorch-CycleGAN-and-pix2pix
        (G_A maps A→B). The architecture defaults to theirs (resnet, 9 blocks, ngf 64, 3 channels);
        pass config fields (``generator="unet-skip"``, ``blocks=6``…) for other variants."""
        from gankit.models.official import load_official_generator

        fields = {"channels_a": 3, "channels_b": 3, "size": 256, "generator": "resnet", "blocks": 9}
        config = dataclasses.replace(CycleGANConfig(), **(fields | config_overrides)).validate()
        model = cls(config, with_discriminators=False)
        load_official_generator(model.g_ab, path_g_a)
        load_official_generator(model.g_ba, path_g_b)
        return model.to(device).eval()


def _load_prefixed(model: CycleGAN, tensors: dict[str, torch.Tensor], path: Path) -> None:
    for prefix, net in (("g_ab.", model.g_ab), ("g_ba.", model.g_ba)):
        sub = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(sub)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: {prefix[:-1]} weights do not fit the saved config ({e})") from None
