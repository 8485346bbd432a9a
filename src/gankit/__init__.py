"""gankit: unpaired image-to-image translation (CycleGAN) and the GANs around it."""

from gankit.models.cyclegan import CycleGAN

__version__ = "0.1.0"
__all__ = ["CycleGAN", "__version__"]
