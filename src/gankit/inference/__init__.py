"""Inference: translate tensors, PIL images, files and folders of any size and mode; export generators."""

from gankit.inference.export import check_export, export_generator, read_export_metadata
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
    "check_export",
    "export_generator",
    "pad_to_multiple",
    "read_export_metadata",
    "roundtrip_strip",
    "translate_image",
    "translate_paths",
    "translate_tensor",
]
