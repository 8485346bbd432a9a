"""Feeding an image-translation run: the two image domains a config asks for, the config completed from the
data, and a loader whose every batch is a pure function of (seed, step) so a resumed run sees
exactly the images the uninterrupted run would have."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from gankit.data.recipes import DomainPair, folder_pair, load_recipe
from gankit.data.transforms import TrainTransform
from gankit.data.unaligned import UnalignedDataset
from gankit.errors import DataError


def domain_pair(config: Any, split: str = "train") -> DomainPair:
    """The two image sources a config asks for, with ``--swap`` applied."""
    if config.domain_a or config.domain_b:
        if not (config.domain_a and config.domain_b):
            raise DataError("give folders for both --domain-a and --domain-b")
        pair = folder_pair(config.domain_a, config.domain_b, config.channels_a or 3, config.channels_b or 3,
                           on_bad=config.on_bad)  # fmt: skip
    else:
        pair = load_recipe(config.dataset, config.data_root, split=split, on_bad=config.on_bad)
    if config.swap:
        pair = dataclasses.replace(
            pair, source_a=pair.source_b, source_b=pair.source_a, channels_a=pair.channels_b,
            channels_b=pair.channels_a, test_a_truth=None,
        )  # fmt: skip
    return pair


def resolve_config(config: Any, pair: DomainPair) -> Any:
    """Fill what the data decides (channels, sizes, preprocessing) so the saved config is complete."""
    size = config.size or pair.default_crop_size
    return dataclasses.replace(
        config,
        channels_a=config.channels_a or pair.channels_a,
        channels_b=config.channels_b or pair.channels_b,
        size=size,
        load_size=config.load_size or max(size, round(pair.default_load_size * size / pair.default_crop_size)),
        preprocess=config.preprocess or getattr(pair, "default_preprocess", None) or "resize_and_crop",
    ).validate()


class StepSampler(Sampler):
    """Yields ``(epoch, index)`` for every image from global position ``start`` on: epoch e is a
    permutation seeded by (seed, e). A resumed run therefore sees exactly the images the
    uninterrupted run would have, whatever the number of workers."""

    def __init__(self, n: int, seed: int, start: int, shuffle: bool = True):
        self.n, self.seed, self.start, self.shuffle = n, seed, start, shuffle

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.n)
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
            for i in order[offset:]:
                yield epoch, int(i)
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:  # infinite; DataLoader only needs it for len()
        return 2**62


class EpochIndexed(torch.utils.data.Dataset):
    """Lets a sampler pass the epoch with each index, so augmentation is a pure function of
    (seed, epoch, index) even inside worker processes."""

    def __init__(self, dataset: UnalignedDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


def make_loader(config: Any, pair: DomainPair, start_step: int) -> DataLoader:
    transform = TrainTransform(config.load_size, config.size, flip=config.flip, preprocess=config.preprocess)
    dataset = UnalignedDataset(pair.source_a, pair.source_b, transform, transform, serial_b=config.serial_batches,
                               seed=config.seed, on_bad=config.on_bad)  # fmt: skip
    sampler = StepSampler(len(dataset), config.seed, start_step * config.batch_size)
    return DataLoader(
        EpochIndexed(dataset),
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers > 0 else None,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG untouched (exact resume)
    )
