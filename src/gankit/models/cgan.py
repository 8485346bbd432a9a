"""The conditional GAN on MNIST (GANs in Action ch.8). WORK IN PROGRESS: being written by a helper."""

from __future__ import annotations

from dataclasses import dataclass

from gankit.config import CompanionConfig, opt
from gankit.training.companion import GANModel


@dataclass
class CGANConfig(CompanionConfig):
    out: str = opt("runs/cgan", "run folder", group="run")


class ConditionalGAN(GANModel):
    kind = "cgan"
    config_class = CGANConfig
