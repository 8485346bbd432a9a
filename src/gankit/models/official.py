"""Loading generator weights of the official CycleGAN/pix2pix code (junyanz/pytorch-CycleGAN-and-pix2pix).

Their ``latest_net_G_A.pth`` is a plain state dict of one ``nn.Sequential`` (``model.1.weight`` …
``model.26.bias`` for resnet_9blocks) or of nested U-Net blocks (``model.model.1.model.3…``). Our
``ResnetGenerator`` and ``SkipUnetGenerator`` create the same layers in the same order under more
readable names, so tensors are matched by position, and every pair must agree in shape and kind
(weight, bias, running_mean…), which catches a wrong architecture instead of loading garbage.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gankit.errors import CheckpointError
from gankit.io import safe_torch_load

_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an official generator file, in file order, cleaned of wrappers.

    Accepts a ``{"state_dict": …}`` wrapper and DataParallel ``module.`` prefixes, and drops the
    running statistics that checkpoints saved before PyTorch 0.4 carry for InstanceNorm (the
    official code deletes them too): they are recognised as norm buffers whose layer has no
    ``weight``, i.e. a non-affine InstanceNorm. BatchNorm (affine) keeps its statistics.
    """
    path = Path(path)
    state = safe_torch_load(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: not a generator state dict (found {type(state).__name__})")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: not a generator state dict (entry {bad[0]!r} is not a named tensor)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    cleaned = {}
    for key, value in state.items():
        layer, _, leaf = key.rpartition(".")
        if leaf in _NORM_BUFFERS and f"{layer}.weight" not in state:
            continue
        cleaned[key] = value
    return cleaned


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def map_official_state_dict(
    official: dict[str, torch.Tensor], target: nn.Module, *, source: str | Path = "official checkpoint"
) -> dict[str, torch.Tensor]:
    """Rename ``official`` tensors to ``target``'s keys by position.

    Raises ``CheckpointError`` naming ``source``, the first key pair that disagrees and both
    shapes when the architectures differ (blocks, width, channels, norm, generator type).
    """
    own = target.state_dict()
    has_counter = any(k.endswith(".num_batches_tracked") for k in official)
    # BatchNorm checkpoints from before PyTorch 0.4.1 lack the batch counter; keep ours for those
    wanted = [k for k in own if has_counter or not k.endswith(".num_batches_tracked")]
    mapped = {k: v for k, v in own.items() if k not in wanted}
    items = list(official.items())
    for (theirs, value), ours in zip(items, wanted):
        expected = own[ours]
        if value.shape != expected.shape or theirs.rpartition(".")[2] != ours.rpartition(".")[2]:
            raise CheckpointError(
                f"{source}: does not fit this generator: official {theirs!r} {_shape(value)} meets "
                f"{ours!r} {_shape(expected)} ({len(items)} tensors in the file, {len(wanted)} expected); "
                "check the architecture options (generator, blocks, ngf, norm, channels)"
            )
        mapped[ours] = value.detach().to(dtype=expected.dtype)
    if len(items) != len(wanted):
        n = min(len(items), len(wanted))
        extra = f"unused official {items[n][0]!r}" if len(items) > n else f"nothing for {wanted[n]!r}"
        raise CheckpointError(
            f"{source}: does not fit this generator: {len(items)} tensors in the file, {len(wanted)} "
            f"expected ({extra}); check the architecture options (generator, blocks, ngf, norm, channels)"
        )
    return {k: mapped[k] for k in own}


def load_official_generator(generator: nn.Module, path: str | Path) -> nn.Module:
    """Load an official ``*_net_G*.pth`` into ``generator`` (strictly; every tensor must fit)."""
    mapped = map_official_state_dict(official_state_dict(path), generator, source=path)
    generator.load_state_dict(mapped, strict=True)
    return generator
