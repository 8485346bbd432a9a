"""Feeding an image-translation run: the two image domains a config asks for, the config completed from the
data, and a loader whose every batch is a pure function of (seed, step) so a resumed run sees
exactly the images the uninterrupted run would have."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from gankit.data.recipes import DomainPair, folder_pair, load_recipe
from gankit.data.transforms import TrainTransform
from gankit.data.unaligned import UnalignedDataset
from gankit.distributed import SINGLE, Shard
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
            channels_b=pair.channels_a, test_a_truth=pair.test_b_truth, test_b_truth=pair.test_a_truth,
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
    uninterrupted run would have, whatever the number of workers. With ``world`` ranks the global
    sequence is dealt out in runs of ``per_rank`` items (``start`` is a multiple of
    ``per_rank · world``): rank r keeps runs r, r + world, … — its part of each global batch."""

    def __init__(self, n: int, seed: int, start: int, shuffle: bool = True, *, rank: int = 0, world: int = 1,
                 per_rank: int = 1):  # fmt: skip
        self.n, self.seed, self.start, self.shuffle = n, seed, start, shuffle
        self.rank, self.world, self.per_rank = rank, world, per_rank

    def _global(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.n)
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
            for i in order[offset:]:
                yield epoch, int(i)
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.world == 1:
            yield from self._global()
            return
        for k, item in enumerate(self._global()):
            if (k // self.per_rank) % self.world == self.rank:
                yield item

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


def make_loader(config: Any, pair: DomainPair, start_step: int, shard: Shard = SINGLE) -> DataLoader:
    """Batches of ``config.batch_size`` from step ``start_step`` on; in a data-parallel run, the
    rank's slice of each global batch of ``batch_size · world`` items."""
    transform = TrainTransform(config.load_size, config.size, flip=config.flip, preprocess=config.preprocess)
    dataset = UnalignedDataset(pair.source_a, pair.source_b, transform, transform, serial_b=config.serial_batches,
                               seed=config.seed, on_bad=config.on_bad)  # fmt: skip
    global_batch = config.batch_size * shard.world
    sampler = StepSampler(len(dataset), config.seed, start_step * global_batch, rank=shard.rank, world=shard.world,
                          per_rank=config.batch_size)  # fmt: skip
    return DataLoader(
        EpochIndexed(dataset),
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers > 0 else None,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG untouched (exact resume)
        worker_init_fn=ignore_stop_signals if config.workers > 0 else None,
    )


def ignore_stop_signals(worker_id: int) -> None:
    """In data-loading workers: SIGTERM and SIGINT sent to the whole process group (Ctrl-C in a
    terminal, torchrun stopping its ranks) are for the training process, which checkpoints and then
    shuts its workers down; a worker that died first would end the run without that checkpoint."""
    del worker_id
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
