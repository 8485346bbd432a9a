"""Inference: translate tensors, PIL images, files and folders of any size and mode."""

from gankit.inference.translate import (
    TranslateResult,
    pad_to_multiple,
    roundtrip_strip,
    translate_image,
    translate_paths,
    translate_tensor,
)

__all__ = [
    "TranslateResult",
    "pad_to_multiple",
    "roundtrip_strip",
    "translate_image",
    "translate_paths",
    "translate_tensor",
]
