"""The user-facing Python API, a thin facade over the layers below it::

from gankit import CycleGAN
m = CycleGAN.load("runs/apple2orange")          # run folder, .safetensors or checkpoint (any gankit version)
orange = m.translate(Image.open("apple.jpg"), direction="a2b")
G = m.generator("a2b")                          # plain nn.Module: batched (N, C, H, W) in [-1, 1]
m2 = CycleGAN.load_official("latest_net_G_A.pth", "latest_net_G_B.pth")
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from gankit.errors import CheckpointError
from gankit.inference.translate import translate_image
from gankit.models.cyclegan import CycleGANModel, CycleGANNetworks, cyclegan_config
from gankit.models.persist import load_model, write_weights


class CycleGAN(CycleGANNetworks):
    """CycleGAN's networks with loading and one-image translation (the Python API of SPEC §6)."""

    def translate(self, image: Image.Image, direction: str = "a2b") -> Image.Image:
        """Translate one PIL image of any size and mode; the result has the input's size."""
        return translate_image(self.generator(direction), image, self.channels(direction)[0])

    def save_generators(self, path: str | Path) -> Path:
        """Both generators and the config as a ``model.safetensors`` (loadable by every command)."""
        tensors = {f"{name}.{k}": v.detach().cpu().contiguous()
                   for name in ("g_ab", "g_ba") for k, v in getattr(self, name).state_dict().items()}  # fmt: skip
        return write_weights("cyclegan", self.config, tensors, {}, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> CycleGAN:
        """Generators of a CycleGAN run folder (its ``model.safetensors`` or newest checkpoint), a
        ``model.safetensors`` or a training checkpoint ``.pt``, in eval mode."""
        model = load_model(path, device)
        if not isinstance(model, CycleGANModel):
            raise CheckpointError(f"{path}: a {model.kind} model, not a CycleGAN (use gankit.models.load_model)")
        if getattr(model.config, "latent_dim", 0):
            raise CheckpointError(f"{path}: an Augmented CycleGAN (--latent-dim {model.config.latent_dim}), whose "
                                  "generators take a latent code; use gankit.models.persist.load_model")  # fmt: skip
        nets = cls(model.config, with_discriminators=False)
        nets.load_state_dict(model.nets.state_dict())
        return nets.to(model.device).eval()

    @classmethod
    def load_official(
        cls, path_g_a: str | Path, path_g_b: str | Path, device: str | torch.device = "cpu", **config_overrides
    ) -> CycleGAN:
        """Load ``latest_net_G_A.pth`` / ``latest_net_G_B.pth`` of junyanz/pytorch-CycleGAN-and-pix2pix
        (G_A maps A→B). The architecture defaults to theirs (resnet, 9 blocks, ngf 64, 3 channels);
        pass config fields (``generator="unet-skip"``, ``blocks=6``…) for other variants."""
        from gankit.models.official import load_official_generator

        fields = {"channels_a": 3, "channels_b": 3, "size": 256, "generator": "resnet", "blocks": 9}
        model = cls(cyclegan_config(**(fields | config_overrides)), with_discriminators=False)
        load_official_generator(model.g_ab, path_g_a)
        load_official_generator(model.g_ba, path_g_b)
        return model.to(device).eval()
