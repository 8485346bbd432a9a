"""MNIST as in-memory tensors for the companion GANs (cgan, sgan) and the digit classifier."""

from __future__ import annotations

import numpy as np
import torch

from gankit.data.recipes import mnist_source, resolve_data_root
from gankit.errors import DataError


def mnist_tensors(data_root: str | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 1, 28, 28), int64 labels (N,)) of MNIST ``split`` ("train" or "test")."""
    if split not in ("train", "test"):
        raise DataError(f"MNIST split must be 'train' or 'test', got {split!r}")
    source = mnist_source(resolve_data_root(data_root), split)
    images = torch.from_numpy(np.array(source.array, dtype=np.uint8))[:, None]
    labels = torch.from_numpy(np.asarray(source.labels).astype(np.int64))
    return images, labels


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] → uint8 pixels, quantized exactly as a saved PNG would be."""
    return ((torch.nan_to_num(x.detach().float(), nan=0.0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def balanced_subset(labels: torch.Tensor, n: int, seed: int, num_classes: int = 10) -> torch.Tensor:
    """Sorted indices of ``n`` examples, ``n / num_classes`` per class, drawn with ``seed``."""
    if n % num_classes or n < num_classes:
        raise DataError(f"the number of labels ({n}) must be a positive multiple of {num_classes}")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for k in range(num_classes):
        idx = (labels == k).nonzero().flatten()
        if len(idx) < n // num_classes:
            raise DataError(f"only {len(idx)} examples of class {k}, {n // num_classes} requested")
        picks.append(idx[torch.randperm(len(idx), generator=gen)[: n // num_classes]])
    return torch.cat(picks).sort().values
