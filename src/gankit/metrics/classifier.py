"""Classifiers trained by the project to score translations: a domain classifier (A vs B) whose
accuracy on translated images is the translation success rate and whose penultimate layer is the
feature space of the classifier FID/KID, and a digit classifier for label preservation.

Trained on the train split only, evaluated on the held-out test split, and cached (safetensors +
json) under ``~/.cache/gankit/classifiers`` (or ``$GANKIT_CACHE/classifiers``), keyed by the data
set name, a fingerprint of its files (names and sizes, or array bytes) and the hyper-parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.data.images import tensor_to_pil, uint8_to_unit
from gankit.data.recipes import DomainPair
from gankit.data.sources import (
    ArraySource,
    FileSource,
    ImageSource,
    ListSource,
    MappedSource,
    SubsetSource,
    ZipSource,
)
from gankit.errors import CheckpointError, DataError
from gankit.io import atomic_write_text, load_safetensors, save_safetensors
from gankit.nn.classifiers import SmallCNN, fit_classifier
from gankit.runtime import HEAP

RELIABLE_ACCURACY = 0.95
CACHE_VERSION = 3
GUARD = "neither"
BICUBIC = Image.Resampling.BICUBIC


ADAPTATION_FITS = 3
"""Classifiers (consecutive seeds) each adaptation figure averages: one seed moves it by about a point."""


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters (all part of the cache key)."""

    image_size: int = 32
    width: int = 16
    steps: int = 2400
    batch_size: int = 64
    lr: float = 2e-3
    flip: bool = True
    max_train_per_class: int = 3000
    seed: int = 0


def domain_classifier_config(
    pair: DomainPair, config: ClassifierConfig | None = None, size: int | None = None
) -> ClassifierConfig:
    """``config`` (default: the default hyper-parameters) at the image size ``pair`` asks for
    (``DomainPair.classifier_size``), unless ``size`` (``--classifier-size``) says otherwise."""
    return replace(config or ClassifierConfig(), image_size=size or pair.classifier_size)


@dataclass
class TrainedClassifier:
    model: SmallCNN
    test_accuracy: float
    config: ClassifierConfig
    num_classes: int
    class_names: list[str]
    train_seconds: float = 0.0
    cached: bool = False
    path: Path | None = None
    garbage_accuracy: dict[str, float] | None = None
    """Share of each garbage kind's images (made from held-out test images) classified as 'neither'."""

    @property
    def reliable(self) -> bool:
        return self.test_accuracy >= RELIABLE_ACCURACY

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 3, S, S) images -> (softmax probabilities (N, K), penultimate features (N, D))."""
        self.model.eval()
        probs, feats = [], []
        for i in range(0, len(images), batch_size):
            x = uint8_to_unit(images[i : i + batch_size])
            f = self.model.features(x)
            probs.append(self.model.head(f).softmax(1).double().numpy())
            feats.append(f.double().numpy())
        return np.concatenate(probs), np.concatenate(feats)


def default_cache_dir() -> Path:
    """``$GANKIT_CACHE/classifiers`` if set, else ``~/.cache/gankit/classifiers``."""
    base = os.environ.get("GANKIT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "gankit") / "classifiers"


# --- images ------------------------------------------------------------------------------------------
def prepare(img: Image.Image, size: int) -> np.ndarray:
    """PIL image -> uint8 (3, size, size): RGB (gray replicated), PIL bicubic resize on uint8 pixels
    (the clean-fid convention: every image, real or translated, goes through the same path)."""
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), BICUBIC)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def load_uint8(source: ImageSource, size: int, indices=None) -> torch.Tensor:
    """Images of ``source`` (all, or ``indices``) as a uint8 tensor (N, 3, size, size)."""
    idx = range(len(source)) if indices is None else indices
    arrays = [prepare(source.load(int(i)), size) for i in idx]
    if not arrays:
        raise DataError(f"{source.description}: no images to load")
    return torch.from_numpy(np.stack(arrays))


def tensor_to_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Generator output (N, C, H, W) in [-1, 1] -> uint8 (N, 3, size, size), quantized as a saved
    image would be, then resized like real images (see :func:`prepare`)."""
    return torch.from_numpy(np.stack([prepare(tensor_to_pil(im), size) for im in x]))


# --- cache key ---------------------------------------------------------------------------------------
def source_fingerprint(source: ImageSource) -> str:
    """A content hash of a source: file names and sizes, array bytes, zip member names and sizes."""
    h = hashlib.sha256()
    h.update(type(source).__name__.encode())
    if isinstance(source, FileSource):
        for p in source.paths:
            h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
    elif isinstance(source, ArraySource):
        h.update(np.ascontiguousarray(source.array).tobytes())
    elif isinstance(source, ZipSource):
        with zipfile.ZipFile(source.zip_path) as zf:
            for m in source.members:
                h.update(f"{m}\0{zf.getinfo(m).file_size}\0{zf.getinfo(m).CRC}\n".encode())
    elif isinstance(source, ListSource):
        for im in source.images:
            h.update(im.tobytes())
    elif isinstance(source, MappedSource):
        h.update(getattr(source.fn, "__name__", repr(source.fn)).encode())
        h.update(source_fingerprint(source.source).encode())
    elif isinstance(source, SubsetSource):
        h.update(source.indices.tobytes())
        h.update(source_fingerprint(source.source).encode())
    else:
        h.update(str(len(source)).encode())
        for i in range(len(source)):
            h.update(source.name(i).encode())
    if source.labels is not None:
        h.update(np.asarray(source.labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _cache_paths(cache_dir: Path, dataset: str, kind: str, key: str) -> tuple[Path, Path]:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset) or "data"
    stem = cache_dir / f"{safe}-{kind}-{key[:16]}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


# --- training ----------------------------------------------------------------------------------------
def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, cap, replace=False)) if n > cap else np.arange(n)


def fit(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, config: ClassifierConfig,
        target_x: torch.Tensor | None = None) -> SmallCNN:  # fmt: skip
    """Train a :class:`SmallCNN` on uint8 images with the project's classifier recipe
    (:func:`gankit.nn.classifiers.fit_classifier`) and a fixed seed; with unlabelled uint8 ``target_x``,
    its features are aligned to the target domain's (feature-level adaptation)."""
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = SmallCNN(num_classes, config.width)
    with HEAP.reusing_heap():  # same-sized batches: reuse heap blocks rather than fault in fresh mmaps
        return fit_classifier(model, train_x, train_y, steps=config.steps, batch_size=config.batch_size,
                              lr=config.lr, generator=gen, flip=config.flip, to_input=uint8_to_unit,
                              target_images=target_x)  # fmt: skip


@torch.no_grad()
def accuracy(model: SmallCNN, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(uint8_to_unit(x[i : i + batch_size])).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def _train_or_load(
    kind: str,
    dataset: str,
    fingerprints: list[str],
    class_names: list[str],
    config: ClassifierConfig,
    data,  # () -> (train_x, train_y, test_x, test_y)
    cache_dir: str | Path | None,
    use_cache: bool,
    garbage_test=None,  # (model) -> {kind: share classified as the guard class}
) -> TrainedClassifier:
    num_classes = len(class_names)
    key_data = {
        "v": CACHE_VERSION,
        "kind": kind,
        "dataset": dataset,
        "sources": fingerprints,
        "classes": class_names,
        "config": asdict(config),
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    weights, meta_path = _cache_paths(cache, dataset, kind, key)
    if use_cache and weights.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            tensors, _ = load_safetensors(weights)
            model = SmallCNN(num_classes, config.width)
            model.load_state_dict(tensors)
            return TrainedClassifier(
                model.eval(),
                float(meta["test_accuracy"]),
                config,
                num_classes,
                class_names,
                float(meta.get("train_seconds", 0.0)),
                True,
                weights,
                meta.get("garbage_accuracy"),
            )
        except (CheckpointError, KeyError, ValueError, RuntimeError):
            pass  # a stale or corrupt cache entry: train again and overwrite it
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = data()
    model = fit(train_x, train_y, num_classes, config)
    acc = accuracy(model, test_x, test_y)
    garbage = garbage_test(model) if garbage_test is not None else None
    seconds = time.perf_counter() - start
    if use_cache:
        save_safetensors(model.state_dict(), weights, {"key": key})
        meta = key_data | {
            "key": key,
            "test_accuracy": acc,
            "train_seconds": seconds,
            "train_images": len(train_x),
            "test_images": len(test_x),
            "garbage_accuracy": garbage,
        }
        atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return TrainedClassifier(
        model, acc, config, num_classes, class_names, seconds, False, weights if use_cache else None, garbage
    )


def _labelled(sources: list[ImageSource], size: int, cap: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k, s in enumerate(sources):
        xs.append(load_uint8(s, size, _subsample(len(s), cap, rng)))
        ys.append(torch.full((len(xs[-1]),), k, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def garbage_like(images: torch.Tensor, kinds: tuple[str, ...], seed: int) -> torch.Tensor:
    """uint8 garbage images (N, 3, S, S) made from ``images`` (uint8, same shape), the kinds taking turns."""
    from gankit.metrics.garbage import make_garbage

    gen = torch.Generator().manual_seed(seed)
    out = torch.empty_like(images)
    for k, kind in enumerate(kinds):
        idx = torch.arange(len(images))[k :: len(kinds)]
        if len(idx):
            junk = make_garbage(kind, uint8_to_unit(images[idx]), gen)
            out[idx] = ((junk.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return out


def train_domain_classifier(
    train_a: ImageSource,
    train_b: ImageSource,
    test_a: ImageSource,
    test_b: ImageSource,
    dataset: str,
    config: ClassifierConfig | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    guard: bool = True,
) -> TrainedClassifier:
    """A vs B (class 0 = A, 1 = B), trained on the train sources, accuracy on the test sources
    (balanced by capping each domain at ``max_train_per_class``; test sets are used whole).

    With ``guard`` a third class, 'neither', is trained on garbage made from the training images
    (:data:`gankit.metrics.garbage.TRAIN_KINDS`: noise of several kinds, heavy blur, patch shuffles,
    colour scrambles, untrained ResNet generators), so that an image of neither domain is not forced
    onto the nearer one: a translation only counts as a success when it is assigned to its target
    domain. Its generalisation is measured on garbage kinds kept out of training
    (:data:`~gankit.metrics.garbage.HELD_OUT_KINDS`) and reported as ``garbage_accuracy``."""
    from gankit.metrics.garbage import GARBAGE_KINDS, TRAIN_KINDS

    config = config or ClassifierConfig()
    fps = [source_fingerprint(s) for s in (train_a, train_b, test_a, test_b)]
    names = ["A", "B", GUARD] if guard else ["A", "B"]

    def data():
        tx, ty = _labelled([train_a, train_b], config.image_size, config.max_train_per_class, config.seed)
        vx, vy = _labelled([test_a, test_b], config.image_size, 10**9, config.seed)
        if guard:
            n = max(int((ty == 0).sum()), int((ty == 1).sum()))
            pick = torch.from_numpy(np.random.default_rng(config.seed + 1).integers(0, len(tx), n))
            tx = torch.cat([tx, garbage_like(tx[pick], TRAIN_KINDS, config.seed + 2)])
            ty = torch.cat([ty, torch.full((n,), 2, dtype=torch.long)])
        return tx, ty, vx, vy

    def garbage_test(model: SmallCNN) -> dict[str, float]:
        vx, _ = _labelled([test_a, test_b], config.image_size, 100, config.seed)
        shares = {}
        for k, kind in enumerate(GARBAGE_KINDS):
            junk = garbage_like(vx, (kind,), config.seed + 100 + k)
            shares[kind] = accuracy(model, junk, torch.full((len(junk),), 2, dtype=torch.long))
        return shares

    kind = "domain-guarded" if guard else "domain"
    return _train_or_load(kind, dataset, fps, names, config, data, cache_dir, use_cache,
                          garbage_test if guard else None)  # fmt: skip


def train_label_classifier(
    train: ImageSource,
    test: ImageSource,
    dataset: str,
    num_classes: int = 10,
    config: ClassifierConfig | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> TrainedClassifier:
    """A class-label (e.g. digit) classifier on one domain's labelled train data; accuracy on its
    labelled test data. Use ``flip=False`` in the config for digits."""
    config = config or ClassifierConfig(image_size=32, flip=False, max_train_per_class=10000)
    for s in (train, test):
        if s.labels is None:
            raise DataError(f"{s.description}: has no labels; a label classifier needs labelled images")
    fps = [source_fingerprint(train), source_fingerprint(test)]

    def data():
        rng = np.random.default_rng(config.seed)
        idx = _subsample(len(train), config.max_train_per_class, rng)
        tx = load_uint8(train, config.image_size, idx)
        ty = torch.from_numpy(np.asarray(train.labels)[idx].astype(np.int64))
        vx = load_uint8(test, config.image_size)
        vy = torch.from_numpy(np.asarray(test.labels).astype(np.int64))
        return tx, ty, vx, vy

    names = [str(k) for k in range(num_classes)]
    return _train_or_load("labels", dataset, fps, names, config, data, cache_dir, use_cache)
