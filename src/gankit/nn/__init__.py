"""Network building blocks: layers, generators, discriminators."""

from gankit.nn.discriminators import (
    DISCRIMINATORS,
    PatchDiscriminator,
    PixelDiscriminator,
    ScalarDiscriminator,
    build_discriminator,
)
from gankit.nn.generators import (
    GENERATORS,
    ResnetBlock,
    ResnetGenerator,
    SkipUnetGenerator,
    UnetGenerator,
    UnetUpsampleGenerator,
    build_generator,
)
from gankit.nn.layers import count_parameters, init_weights

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "PatchDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "ScalarDiscriminator",
    "SkipUnetGenerator",
    "UnetGenerator",
    "UnetUpsampleGenerator",
    "build_discriminator",
    "build_generator",
    "count_parameters",
    "init_weights",
]
