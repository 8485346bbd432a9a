"""Image sources: an indexable list of images with names, so one dataset class serves folders,
in-memory arrays (MNIST, USPS), zip archives (MNIST-M) and derived views (grayscale, subsets).

Every source is picklable and opens files lazily, because DataLoader workers receive a pickled
copy (spawn) or a forked one, and a file handle shared across processes is unsafe.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from gankit.data.images import convert_image, decode_image, is_image_file, list_images, load_image
from gankit.errors import DataError, ImageReadError

ON_BAD = ("warn", "error")


class BadImageWarning(UserWarning):
    """Some image files could not be read and were skipped."""


def _check_on_bad(on_bad: str) -> None:
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")


def _labels(labels, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {labels.shape}")
    return labels


class ImageSource(ABC):
    """``len(source)`` images; ``load(i)`` gives a PIL image already in ``channels`` (1 → "L",
    3 → "RGB"), ``name(i)`` a file-name-safe stem, ``labels`` class indices or None."""

    channels: int
    description: str = ""
    labels: np.ndarray | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, i: int) -> Image.Image: ...

    @abstractmethod
    def name(self, i: int) -> str: ...

    def __getitem__(self, i: int) -> Image.Image:
        return self.load(i)

    def _index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images ({self.description})")
        return i % n

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, channels={self.channels}, {self.description!r})"


def _probe(path: Path) -> str | None:
    """Cheap check (header + ``verify``, no full decode); the reason it is bad, or None."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            im.verify()
    except FileNotFoundError:
        return "file not found"
    except Exception as e:  # Pillow raises many types for bad data
        return f"not a readable image ({type(e).__name__}: {e})"
    return None


class FileSource(ImageSource):
    """Image files. At construction every file is probed cheaply; unreadable ones are skipped
    with one ``BadImageWarning`` that counts them (``on_bad="warn"``), or the first raises
    ``ImageReadError`` (``on_bad="error"``). A file that only fails when fully decoded (e.g. a
    truncated JPEG, which ``verify`` cannot see) raises ``ImageReadError`` from ``load``."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        channels: int,
        on_bad: str = "warn",
        labels=None,
        description: str | None = None,
        check: bool = True,
    ):
        _check_on_bad(on_bad)
        paths = [Path(p) for p in paths]
        labels = _labels(labels, len(paths))
        self.channels = channels
        self.description = description or (str(paths[0].parent) if paths else "no files")
        if check:
            bad = []
            for p in paths:
                reason = _probe(p)
                if reason is not None:
                    if on_bad == "error":
                        raise ImageReadError(p, reason)
                    bad.append((p, reason))
            if bad:
                if len(bad) == len(paths):
                    raise DataError(f"{self.description}: none of the {len(paths)} image files is readable "
                                    f"(first: {bad[0][0]}: {bad[0][1]})")  # fmt: skip
                shown = "; ".join(f"{p}: {r}" for p, r in bad[:3])
                more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
                msg = f"skipped {len(bad)} unreadable image file(s) of {len(paths)} in {self.description}"
                warnings.warn(f"{msg}: {shown}{more}", BadImageWarning, stacklevel=2)
                bad_paths = {b for b, _ in bad}
                keep = np.array([p not in bad_paths for p in paths], dtype=bool)
                paths = [p for p, k in zip(paths, keep) if k]
                labels = labels[keep] if labels is not None else None
        if not paths:
            raise DataError(f"{self.description}: no image files")
        self.paths = paths
        self.labels = labels

    @classmethod
    def from_folders(
        cls,
        folders: str | Path | Sequence[str | Path],
        channels: int,
        on_bad: str = "warn",
        recursive: bool = True,
    ) -> FileSource:
        """All images in one or more folders (each must hold at least one image file)."""
        folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
        if not folders:
            raise DataError("no folder given")
        paths = [p for f in folders for p in list_images(f, recursive=recursive)]
        return cls(paths, channels, on_bad=on_bad, description=", ".join(str(f) for f in folders))

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> Image.Image:
        return load_image(self.paths[self._index(i)], self.channels)

    def name(self, i: int) -> str:
        return self.paths[self._index(i)].stem


class ArraySource(ImageSource):
    """uint8 images held in memory, shape (N, H, W) or (N, H, W, C) with C in 1, 3, 4."""

    def __init__(self, array: np.ndarray, channels: int, names=None, labels=None, description: str = "array"):
        array = np.asarray(array)
        if array.dtype != np.uint8:
            raise ValueError(f"ArraySource needs uint8 images, got {array.dtype}")
        if array.ndim == 4 and array.shape[3] == 1:
            array = array[..., 0]
        if not (array.ndim == 3 or (array.ndim == 4 and array.shape[3] in (3, 4))):
            raise ValueError(f"expected (N,H,W) or (N,H,W,C) with C in 1,3,4, got shape {array.shape}")
        if names is not None and len(names) != len(array):
            raise ValueError(f"expected {len(array)} names, got {len(names)}")
        self.array = array
        self.channels = channels
        self.names = list(names) if names is not None else None
        self.labels = _labels(labels, len(array))
        self.description = description

    def __len__(self) -> int:
        return len(self.array)

    def load(self, i: int) -> Image.Image:
        return convert_image(Image.fromarray(self.array[self._index(i)]), self.channels)

    def name(self, i: int) -> str:
        i = self._index(i)
        return self.names[i] if self.names is not None else f"{i:06d}"


class ListSource(ImageSource):
    """A few PIL images kept in memory (e.g. the demo photos, decoded and downscaled once)."""

    def __init__(self, images: Sequence[Image.Image], channels: int, names: Sequence[str], labels=None,
                 description: str = "images"):  # fmt: skip
        if len(images) != len(names):
            raise ValueError("images and names differ in length")
        self.images = [convert_image(im, channels) for im in images]
        self.channels = channels
        self.names = list(names)
        self.labels = _labels(labels, len(images))
        self.description = description

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> Image.Image:
        return self.images[self._index(i)].copy()

    def name(self, i: int) -> str:
        return self.names[self._index(i)]


class ZipSource(ImageSource):
    """Images inside a zip archive, read lazily. The ``ZipFile`` is opened on first use in each
    process (and dropped when pickled), so forked or spawned DataLoader workers never share one."""

    def __init__(self, zip_path: str | Path, members: Sequence[str] | None, channels: int, labels=None,
                 description: str | None = None):  # fmt: skip
        self.zip_path = Path(zip_path)
        if not self.zip_path.is_file():
            raise DataError(f"{self.zip_path}: zip file not found")
        try:
            with zipfile.ZipFile(self.zip_path) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{self.zip_path}: not a readable zip file ({e})") from None
        if members is None:
            members = sorted(n for n in names if is_image_file(n))
        missing = [m for m in members if m not in names]
        if missing:
            raise DataError(f"{self.zip_path}: {len(missing)} member(s) missing, e.g. {missing[0]}")
        if not members:
            raise DataError(f"{self.zip_path}: no image files in the archive")
        self.members = list(members)
        self.channels = channels
        self.labels = _labels(labels, len(self.members))
        self.description = description or str(self.zip_path)
        self._zip: zipfile.ZipFile | None = None
        self._pid: int | None = None

    def _file(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            self._zip = zipfile.ZipFile(self.zip_path)
            self._pid = os.getpid()
        return self._zip

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_zip"] = state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.members)

    def load(self, i: int) -> Image.Image:
        member = self.members[self._index(i)]
        try:
            data = self._file().read(member)
        except (zipfile.BadZipFile, OSError, KeyError) as e:
            raise ImageReadError(self.zip_path / member, f"cannot read from the zip ({e})") from None
        return decode_image(data, self.zip_path / member, self.channels)

    def name(self, i: int) -> str:
        return Path(self.members[self._index(i)]).stem


class MappedSource(ImageSource):
    """``fn`` (PIL → PIL) applied to every image of ``source``; ``fn`` must be picklable (a
    module-level function or ``functools.partial``) for DataLoader workers."""

    def __init__(self, source: ImageSource, fn: Callable[[Image.Image], Image.Image], channels: int,
                 description: str | None = None):  # fmt: skip
        self.source, self.fn, self.channels = source, fn, channels
        self.labels = source.labels
        self.description = description or f"{getattr(fn, '__name__', 'mapped')}({source.description})"

    def __len__(self) -> int:
        return len(self.source)

    def load(self, i: int) -> Image.Image:
        return convert_image(self.fn(self.source.load(i)), self.channels)

    def name(self, i: int) -> str:
        return self.source.name(i)


class SubsetSource(ImageSource):
    """The images of ``source`` at ``indices`` (labels follow)."""

    def __init__(self, source: ImageSource, indices: Sequence[int], description: str | None = None):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(source)):
            raise IndexError(f"subset indices out of range for {len(source)} images")
        self.channels = source.channels
        self.labels = source.labels[self.indices] if source.labels is not None else None
        self.description = description or f"{len(self.indices)} of {source.description}"

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, i: int) -> Image.Image:
        return self.source.load(int(self.indices[self._index(i)]))

    def name(self, i: int) -> str:
        return self.source.name(int(self.indices[self._index(i)]))


def to_gray(img: Image.Image) -> Image.Image:
    """RGB → "L" by ITU-R 601 luma (PIL ``convert("L")``), the gray input of colorization."""
    return img.convert("L")


INK_SIGMA = 1.5
INK_GAIN = 3.5
INK_MAX = 0.85


def ink_amount(img: Image.Image) -> np.ndarray:
    """How much ink :func:`to_ink_drawing` puts on each pixel, in [0, ``INK_MAX``]: ``INK_GAIN`` times the
    gradient magnitude (Sobel) of the luma smoothed by a Gaussian of σ ``INK_SIGMA`` px."""
    from scipy.ndimage import gaussian_filter, sobel

    luma = np.asarray(img.convert("L"), dtype=np.float32) / 255
    smooth = gaussian_filter(luma, INK_SIGMA)
    return np.clip(INK_GAIN * np.hypot(sobel(smooth, 0), sobel(smooth, 1)), 0, INK_MAX)


def to_ink_drawing(img: Image.Image) -> Image.Image:
    """RGB photo → the demo's ink-drawing style: each pixel darkened by :func:`ink_amount`, so bold strokes
    follow the photo's edges and hatching its texture while flat regions keep their colour.

    The style is chosen for what cycle-consistent training can learn in minutes: it is a smooth, local
    function of the photo (a blur, two derivative filters and a product) and keeps nearly all of the
    photo's information, so neither direction has to discard detail that the cycle loss asks back.
    A cartoon style that flattens texture into a palette is many-to-one, and its photo → cartoon
    direction failed in every variant measured (docs/results.md, "Demo"). Deterministic."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    out = rgb * (1 - ink_amount(img))[..., None]
    return Image.fromarray(np.round(out).astype(np.uint8))
