"""The projection head of patch-wise contrastive learning (CUT, Park et al. 2020 §3.1): feature maps
→ embeddings of a few sampled positions, one small MLP per feature layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PatchProjector(nn.Module):
    """For each feature layer: the features at sampled positions through a two-layer MLP (Linear →
    ReLU → Linear, as SimCLR's projection head) to ``dim``, then L2-normalised. Positions are chosen
    by the caller (:meth:`sample_positions`), so that queries and keys are read at the same places."""

    def __init__(self, channels: Sequence[int], dim: int = 256):
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) for c in channels)

    @staticmethod
    def sample_positions(features: Sequence[torch.Tensor], count: int, draw) -> list[torch.Tensor]:
        """Per layer, (N, P) distinct flat positions (P = min(count, H·W)) of each image, drawn at random
        for each image on its own: ``draw(n, m)`` returns (n, m) uniform numbers (a data-parallel rank
        passes the slice of one global draw, so that N ranks pick what one process would)."""
        positions = []
        for f in features:
            n, hw = f.shape[0], f.shape[2] * f.shape[3]
            positions.append(draw(n, hw).to(f.device).topk(min(count, hw), dim=1).indices)
        return positions

    def forward(self, features: Sequence[torch.Tensor], positions: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """(N, C, H, W) maps and (N, P) positions per layer → (N, P, dim) unit embeddings per layer."""
        out = []
        for head, f, ids in zip(self.heads, features, positions):
            n, c = f.shape[:2]
            picked = f.flatten(2).gather(2, ids[:, None, :].expand(n, c, ids.shape[1])).transpose(1, 2)
            out.append(F.normalize(head(picked), dim=2, eps=1e-7))
        return out
