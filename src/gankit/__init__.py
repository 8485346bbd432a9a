"""gankit: unpaired image-to-image translation (CycleGAN) and the GANs around it."""

from __future__ import annotations

from gankit.version import VERSION as __version__

__all__ = ["CycleGAN", "CycleGANConfig", "__version__"]


def __getattr__(name: str):
    """``gankit.CycleGAN`` is imported on first use, so that ``gankit.launch`` can set OpenMP options
    before anything loads torch."""
    if name == "CycleGAN":
        from gankit.api import CycleGAN

        return CycleGAN
    if name == "CycleGANConfig":
        from gankit.models.cyclegan import CycleGANConfig

        return CycleGANConfig
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
