"""The unpaired two-domain dataset of CycleGAN (Zhu et al. 2017), after ``UnalignedDataset`` of
the official pytorch-CycleGAN-and-pix2pix code: item ``i`` is A image ``i mod |A|`` with a B
image drawn at random (or ``i mod |B|`` with ``serial_b``), so the two domains are never paired.

The official code draws B's index and the augmentation from global RNGs, which makes a run
depend on worker count and timing. Here every random choice comes from a generator seeded by
``(seed, epoch, index)``: an item is a pure function of those three numbers, which is what makes
bit-exact resume possible.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from gankit.data.sources import ON_BAD, BadImageWarning, ImageSource
from gankit.errors import DataError, ImageReadError

MAX_RETRIES = 10

Transform = Callable[[Image.Image, np.random.Generator], torch.Tensor]


class UnalignedDataset(torch.utils.data.Dataset):
    """``{"A", "B", "A_name", "B_name", "skipped"}`` items (``skipped``: unreadable files passed over);
    ``len`` is ``max(|A|, |B|)`` as in the official code.

    An image that fails to decode is reported once (``BadImageWarning`` naming the file) and the
    next image of that domain is used instead, up to ``MAX_RETRIES`` times; with
    ``on_bad="error"`` the ``ImageReadError`` propagates.
    """

    def __init__(
        self,
        source_a: ImageSource,
        source_b: ImageSource,
        transform_a: Transform,
        transform_b: Transform,
        serial_b: bool = False,
        seed: int = 0,
        on_bad: str = "warn",
    ):
        if on_bad not in ON_BAD:
            raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
        for label, src in (("A", source_a), ("B", source_b)):
            if len(src) == 0:
                raise DataError(f"domain {label} ({src.description}) has no images")
        self.source_a, self.source_b = source_a, source_b
        self.transform_a, self.transform_b = transform_a, transform_b
        self.serial_b, self.seed, self.on_bad = serial_b, int(seed), on_bad
        self.epoch = 0
        self._reported: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random B pairing and augmentation ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(len(self.source_a), len(self.source_b))

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index, stream])

    def _load(self, source: ImageSource, i: int) -> tuple[Image.Image, int, int]:
        """The image at ``i`` or the next readable one: ``(image, index, files skipped)``."""
        n = len(source)
        for attempt in range(min(MAX_RETRIES, n)):
            j = (i + attempt) % n
            try:
                return source.load(j), j, attempt
            except ImageReadError as e:
                if self.on_bad == "error":
                    raise
                if str(e) not in self._reported:
                    self._reported.add(str(e))
                    warnings.warn(f"skipping unreadable image {e}", BadImageWarning, stacklevel=3)
        tries = min(MAX_RETRIES, n)
        raise DataError(f"{source.description}: {tries} images in a row from index {i} are unreadable")

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        ia = index % len(self.source_a)
        n_b = len(self.source_b)
        ib = index % n_b if self.serial_b else int(self._rng(index, 0).integers(n_b))
        img_a, ia, skipped_a = self._load(self.source_a, ia)
        img_b, ib, skipped_b = self._load(self.source_b, ib)
        return {
            "A": self.transform_a(img_a, self._rng(index, 1)),
            "B": self.transform_b(img_b, self._rng(index, 2)),
            "A_name": self.source_a.name(ia),
            "B_name": self.source_b.name(ib),
            "skipped": skipped_a + skipped_b,
        }
