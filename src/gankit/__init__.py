"""gankit: unpaired image-to-image translation (CycleGAN) and the GANs around it."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["CycleGAN", "__version__"]


def __getattr__(name: str):
    """``gankit.CycleGAN`` is imported on first use, so that ``gankit.launch`` can set OpenMP options
    before anything loads torch."""
    if name == "CycleGAN":
        from gankit.models.cyclegan import CycleGAN

        return CycleGAN
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
