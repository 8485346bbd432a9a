"""Padding an image batch to a generator's size multiple (shared by one-piece and tiled translation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pad_axis(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    if before == 0 and after == 0:
        return x
    pad = (before, after, 0, 0) if dim == -1 else (0, 0, before, after)
    # reflect needs a pad smaller than the side; tiny images fall back to repeating the edge
    mode = "reflect" if max(before, after) < x.shape[dim] else "replicate"
    return F.pad(x, pad, mode=mode)


def pad_to_multiple(
    x: torch.Tensor, multiple: int, min_size: int = 0
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad (N, C, H, W) so H and W divide by ``multiple`` (and are at least ``min_size``), split
    evenly between both sides so no edge sees much more invented context than the other. Returns
    the padded tensor and the ``(top, bottom, left, right)`` amounts."""
    h, w = x.shape[-2:]
    ph = max(h + (-h) % multiple, min_size + (-min_size) % multiple) - h
    pw = max(w + (-w) % multiple, min_size + (-min_size) % multiple) - w
    top, left = ph // 2, pw // 2
    bottom, right = ph - top, pw - left
    x = _pad_axis(x, left, right, -1)
    x = _pad_axis(x, top, bottom, -2)
    return x, (top, bottom, left, right)
