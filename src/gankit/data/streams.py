"""Batch sources for training: every batch is a pure function of the seed and the position in the
stream, and the position is saved with each checkpoint, so a resumed run sees exactly the batches
the uninterrupted run would have."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import torch

from gankit.distributed import SINGLE, Shard
from gankit.errors import ConfigError


class BatchSource(Protocol):
    """What the training loop draws batches from: ``next()`` gives one batch (one per discriminator
    update); ``state_dict``/``load_state_dict`` hold the position as pickle-free values."""

    description: str

    def next(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class BatchStream:
    """Random minibatches from in-memory tensors, one shuffled epoch after another, with its own
    generator (the global RNG is left alone). In a data-parallel run every rank draws the same global
    batch of ``batch_size · world`` indices and keeps its own slice."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int, shard: Shard = SINGLE):
        if not tensors or len(tensors[0]) == 0:
            raise ConfigError("BatchStream needs at least one non-empty tensor")
        self.tensors, self.shard = tensors, shard
        self.global_batch = min(batch_size * shard.world, len(tensors[0]))
        self.batch_size = self.global_batch // shard.world
        self.generator = torch.Generator().manual_seed(seed)
        self._order, self._pos = torch.empty(0, dtype=torch.long), 0

    def next(self) -> tuple[torch.Tensor, ...]:
        if self._pos + self.global_batch > len(self._order):
            self._order, self._pos = torch.randperm(len(self.tensors[0]), generator=self.generator), 0
        idx = self.shard.take(self._order[self._pos : self._pos + self.global_batch])
        self._pos += self.global_batch
        return tuple(t[idx] for t in self.tensors)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self._order, "pos": self._pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._order, self._pos = state["order"], int(state["pos"])


class StreamSource:
    """Named :class:`BatchStream` s drawn together: ``next()`` is ``{name: stream.next()}``."""

    def __init__(self, description: str, **streams: BatchStream):
        self.description, self.streams = description, streams

    def next(self) -> dict[str, tuple[torch.Tensor, ...]]:
        return {name: s.next() for name, s in self.streams.items()}

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.streams.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, s in self.streams.items():
            if name in state:
                s.load_state_dict(state[name])


class PositionedSource:
    """Batches from an iterator that can be started at any position (e.g. a DataLoader over a
    position-seeded sampler): the state is the number of items consumed. Dict batches may carry a
    ``"skipped"`` tensor: how many unreadable files (deleted or truncated since the run started) each
    item replaced; their total is ``skipped_images``."""

    def __init__(self, description: str, start: Callable[[int], Iterator[Any]], items_per_batch: int):
        self.description, self._start, self._per_batch = description, start, items_per_batch
        self.position, self.skipped_images, self._it = 0, 0, None

    def next(self) -> Any:
        if self._it is None:
            self._it = self._start(self.position)
        batch = next(self._it)
        self.position += self._per_batch
        if isinstance(batch, dict) and "skipped" in batch:
            self.skipped_images += int(torch.as_tensor(batch["skipped"]).sum())
        return batch

    def close(self) -> None:
        """Stop the iterator's worker processes now (a loader left to the interpreter's exit after a
        worker died prints errors from its half-closed pipes)."""
        shutdown = getattr(self._it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._it = None

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "skipped_images": self.skipped_images}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.position, self._it = int(state.get("position", 0)), None
        self.skipped_images = int(state.get("skipped_images", 0))


def split_rows(batch: Any, parts: int) -> list[Any]:
    """``batch`` (a tensor, or a dict / list / tuple of them) cut into ``parts`` consecutive row blocks
    of equal size; scalars and values that are not tensors are repeated in every part."""
    if isinstance(batch, torch.Tensor) and batch.dim() > 0:
        if len(batch) % parts:
            raise ValueError(f"a batch of {len(batch)} rows does not split into {parts} equal parts")
        return list(batch.split(len(batch) // parts))
    if isinstance(batch, Mapping):
        split = {k: split_rows(v, parts) for k, v in batch.items()}
        return [{k: v[i] for k, v in split.items()} for i in range(parts)]
    if isinstance(batch, (list, tuple)):
        split = [split_rows(v, parts) for v in batch]
        return [type(batch)(v[i] for v in split) for i in range(parts)]
    return [batch] * parts
