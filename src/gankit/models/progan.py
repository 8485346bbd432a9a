"""The progressive GAN (Karras et al. 2018; GANs in Action ch.6). WORK IN PROGRESS: being written by a helper."""

from __future__ import annotations

from dataclasses import dataclass

from gankit.config import CompanionConfig, opt
from gankit.training.companion import GANModel


@dataclass
class ProGANConfig(CompanionConfig):
    out: str = opt("runs/progan", "run folder", group="run")


class ProgressiveGAN(GANModel):
    kind = "progan"
    config_class = ProGANConfig
