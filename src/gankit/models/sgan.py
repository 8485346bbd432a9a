"""The semi-supervised GAN on MNIST (GANs in Action ch.7). WORK IN PROGRESS: being written by a helper."""

from __future__ import annotations

from dataclasses import dataclass

from gankit.config import CompanionConfig, opt
from gankit.training.companion import GANModel


@dataclass
class SGANConfig(CompanionConfig):
    out: str = opt("runs/sgan", "run folder", group="run")


class SemiSupervisedGAN(GANModel):
    kind = "sgan"
    config_class = SGANConfig
