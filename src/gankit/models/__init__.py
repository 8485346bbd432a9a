"""Models built on gankit's core: CycleGAN (companion GANs to come)."""

from gankit.models.cyclegan import DIRECTIONS, CycleGAN

__all__ = ["DIRECTIONS", "CycleGAN"]
