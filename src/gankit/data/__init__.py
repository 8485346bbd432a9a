"""Data layer: robust image reading, image sources, recipes (built-in datasets) and the unpaired
dataset of CycleGAN (Zhu et al. 2017)."""

from gankit.data.images import (
    IMAGE_EXTENSIONS,
    convert_image,
    decode_image,
    list_images,
    load_image,
    pil_to_tensor,
    tensor_to_pil,
)
from gankit.data.recipes import RECIPES, DomainPair, default_data_root, folder_pair, list_recipes, load_recipe
from gankit.data.sources import (
    ArraySource,
    BadImageWarning,
    FileSource,
    ImageSource,
    ListSource,
    MappedSource,
    SubsetSource,
    ZipSource,
    to_gray,
)
from gankit.data.transforms import PREPROCESS_CHOICES, EvalTransform, TrainTransform
from gankit.data.unaligned import UnalignedDataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "PREPROCESS_CHOICES",
    "RECIPES",
    "ArraySource",
    "BadImageWarning",
    "DomainPair",
    "EvalTransform",
    "FileSource",
    "ImageSource",
    "ListSource",
    "MappedSource",
    "SubsetSource",
    "TrainTransform",
    "UnalignedDataset",
    "ZipSource",
    "convert_image",
    "decode_image",
    "default_data_root",
    "folder_pair",
    "list_images",
    "list_recipes",
    "load_image",
    "load_recipe",
    "pil_to_tensor",
    "tensor_to_pil",
    "to_gray",
]
