"""Built-in datasets ("recipes") by name: two image sources, their channels and sensible sizes.

The data lives under a data root (``--data-root``, else ``$GANKIT_DATA``, else
``../shared/data``); only ``demo`` needs none, it uses photos bundled with scikit-image and matplotlib.
Layouts follow the CycleGAN release (``<name>/{trainA,trainB,testA,testB}``, Zhu et al. 2017);
digit and colorization recipes build their domains from the standard files (idx, HDF5, zip).
"""

from __future__ import annotations

import csv
import functools
import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gankit.data.images import load_image
from gankit.data.sources import (
    ArraySource,
    FileSource,
    ImageSource,
    ListSource,
    MappedSource,
    ZipSource,
    to_gray,
    to_ink_drawing,
)
from gankit.errors import ConfigError, DataError

SPLITS = ("train", "test")
HINT = "pass --data-root DIR or set GANKIT_DATA"


@dataclass
class DomainPair:
    """What training needs to know about a dataset. ``test_a_truth`` is, where known, the true B image
    of each ``source_a`` image (aligned by index; colorization: the colour original), to score translations;
    ``test_b_truth`` the true A image of each ``source_b`` image."""

    source_a: ImageSource
    source_b: ImageSource
    channels_a: int
    channels_b: int
    name: str
    default_load_size: int = 286
    default_crop_size: int = 256
    description: str = ""
    test_a_truth: ImageSource | None = None
    default_preprocess: str = "resize_and_crop"
    classifier_size: int = 32
    """The image size at which the evaluation's domain classifier reads this data set: large enough to see
    what tells its domains apart (the demo's ink strokes are 1–3 px wide at 64 px and blur away at 32)."""
    test_b_truth: ImageSource | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    build: Callable[[Path | None, str, str], DomainPair]
    needs_data: bool = True
    options: tuple[tuple[str, Any], ...] = ()
    """Training options this data set wants by default (command-line flags and YAML still win)."""


DIGIT_OPTIONS = (("blocks", 6), ("ngf", 32), ("ndf", 32), ("batch_size", 4), ("kernel_size", 5), ("flip", False))
"""32 px digits: a ResNet-6 of width 32 and batches of 4 (docs/results.md measures it), not the 256 px photo
defaults (ResNet-9, width 64, batch 1); kernel size 5 in every generator and discriminator conv, seed 000's
choice for digits "because the two domains are completely different" (its MNIST ↔ SVHN CycleGAN, listing
7.1.7). ``--kernel-size 3 --d-kernel-size 4`` gives the networks digit runs had before. No random mirroring:
a mirrored 2, 3 or 7 is no digit, so flips would spend half of training on images no test set holds and give
the semantic loss's classifier (trained unmirrored) inputs it cannot read; ``--flip`` restores it."""


MNIST_USPS_OPTIONS = (*DIGIT_OPTIONS, ("steps", 4000))
"""MNIST ↔ USPS trains for 4,000 steps, whichever model (``--steps`` still wins): with ``--semantic-loss``
that budget reaches both of CyCADA's adaptation figures (Hoffman et al. 2018: 95.6 % / 96.5 %) at the pixel
level alone on every seed measured (four) and keeps more labels both ways than 2,000 steps, which falls short
USPS → MNIST. ``--steps 2000`` gives the budget digit runs had before. The pair's digits are resized to 34 px
and cropped at random to 32 in training (``--load-size 32`` gives the unshifted digits runs had before
2026-12-05): with shifts of up to 2 px the USPS → MNIST translator no longer satisfies the semantic loss in its
reader's blind spots, and keeps 0.963 ± 0.003 of the labels over three seeds (0.940 unshifted) while MNIST →
USPS keeps 0.960 ± 0.006 (0.964). 36 px, the photo recipes' ratio, costs MNIST → USPS three points."""


MNIST_MNISTM_OPTIONS = (*DIGIT_OPTIONS, ("semantic_recolour", True))
"""MNIST → MNIST-M's semantic loss is read by a LeNet of gray MNIST, which reads 37.8 ± 1.7 % of MNIST-M's digits
(their luma); trained on random recolourings of MNIST (no MNIST-M image) it reads 61.8 ± 1.4 % in colour (3 seeds),
and the loss no longer pulls the translations back to gray: over three seeds MNIST → MNIST-M keeps 0.60 of the
labels and adapts at 0.63 with the feature level, against 0.26 and 0.44 without the loss (docs/results.md,
"MNIST → MNIST-M over three seeds"). Only used with ``--semantic-loss``; ``--no-semantic-recolour`` gives the
plain LeNet."""


COLORIZATION_OPTIONS = (("keep_luminance", True), ("lambda_luma", 10.0))
"""Gray ↔ colour: the gray image is the colour image's luma, so the generators are tied to their input's luma
and the colour → gray translation is pulled to it (docs/results.md, "Augmented CycleGAN": the best of 5
colourings 16.1 → 24.0 dB PSNR against the true colours at 4,000 steps). ``--no-keep-luminance
--lambda-luma 0`` gives the networks colorization runs had before."""


def default_data_root() -> Path:
    """``$GANKIT_DATA`` if set, else ``../shared/data`` (relative to the working directory)."""
    return Path(os.environ.get("GANKIT_DATA") or "../shared/data")


def resolve_data_root(data_root: str | Path | None) -> Path:
    root = Path(data_root) if data_root else default_data_root()
    if not root.is_dir():
        raise DataError(f"data folder {root} not found; {HINT}")
    return root


def require_data(path: Path, recipe: str) -> Path:
    if not path.exists():
        raise DataError(f"{path} not found: recipe '{recipe}' needs it; {HINT}")
    return path


# --- folder layouts (CycleGAN release) ------------------------------------------------------------
def folder_pair(
    folders_a: str | Path | Sequence[str | Path],
    folders_b: str | Path | Sequence[str | Path],
    channels_a: int = 3,
    channels_b: int = 3,
    on_bad: str = "warn",
    name: str = "folders",
) -> DomainPair:
    """Any user folders, one or more per domain, with the official default sizes (286 → 256)."""
    a = FileSource.from_folders(folders_a, channels_a, on_bad=on_bad)
    b = FileSource.from_folders(folders_b, channels_b, on_bad=on_bad)
    return DomainPair(a, b, channels_a, channels_b, name, description=f"{a.description} ↔ {b.description}")


def _has_layout(d: Path, split: str = "train") -> bool:
    return (d / f"{split}A").is_dir() and (d / f"{split}B").is_dir()


def _layout_pair(base: Path, split: str, on_bad: str, name: str) -> DomainPair:
    folders = [base / f"{split}A", base / f"{split}B"]
    for f in folders:
        if not f.is_dir():
            raise DataError(f"{f} not found: '{name}' needs {base}/{{trainA,trainB,testA,testB}}; {HINT}")
    return folder_pair(folders[0], folders[1], on_bad=on_bad, name=name)


def _cyclegan_set(name: str) -> Callable[[Path | None, str, str], DomainPair]:
    def build(root, split, on_bad):
        return _layout_pair(require_data(resolve_data_root(root) / name, name), split, on_bad, name)

    return build


def _horse2zebra(root, split, on_bad) -> DomainPair:
    root = resolve_data_root(root)
    if _has_layout(root / "horse2zebra", split):
        return _layout_pair(root / "horse2zebra", split, on_bad, "horse2zebra")
    partial = root / "horse2zebra_partial"
    have = f" ({partial} holds only 50 test horses, testA)" if partial.is_dir() else ""
    raise DataError(
        f"horse2zebra is not available offline: the zebras (trainB/testB) and the training horses are "
        f"missing{have}. Put the full set at {root / 'horse2zebra'}/{{trainA,trainB,testA,testB}} "
        "or use apple2orange."
    )


# --- demo: photos that ship with scikit-image and matplotlib, photo ↔ ink drawing -------------------
# Every colour photo bundled with scikit-image and matplotlib is scaled to a 256 px short side and cut
# across its longer side into three bands: domain A trains on the first band as a photo, domain B on the
# last band in the ink-drawing style (drawn on the whole photo, then cut), and the middle band, one crop
# wide, is held out: its 64 px crops, photo and drawing of each, are the test set. A and B never show
# the same pixels and the held-out band separates them; training crops are 64 px on a 16 px stride, the
# held-out crops do not overlap, and all share one scale, so training, grids and the evaluation's domain
# classifier see the same kind of image. Held-out crops come from the photos' own unseen regions: ten
# photos cannot teach what an unseen photo looks like in general (docs/results.md, "Demo").
DEMO_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
               "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "grace_hopper.jpg")  # fmt: skip
"""The colour photos bundled with scikit-image and matplotlib (``motorcycle_right.png``, a stereo view of
``motorcycle_left.png``, is left out: its bands would show what the other's held-out band shows)."""
DEMO_SHORT_SIDE = 256
"""Every demo photo is scaled to this shorter side once; training and held-out crops share the scale."""
DEMO_CROP = 64
"""The size of every demo image, training and held-out."""
DEMO_TRAIN_STRIDE = 16
DEMO_MIN_CHANGE = 0.08
"""A demo crop's ink drawing differs from its photo by at least this much on average (mean absolute
difference of the pixels on [0, 1]): below it (a star field, a dim retina, a flat wall) drawing and photo look
alike, so the crop teaches and measures nothing (its real drawings were not told from photos either)."""


def demo_photo_path(file: str) -> Path:
    """A demo photo inside the installed scikit-image (``grace_hopper.jpg``: inside matplotlib)."""
    try:
        if file == "grace_hopper.jpg":
            import matplotlib

            return require_data(Path(matplotlib.get_data_path()) / "sample_data" / file, "demo")
        import skimage
    except ImportError as e:
        raise DataError(f"the demo recipe needs {e.name} (pip install {e.name})") from None
    return require_data(Path(skimage.__file__).parent / "data" / file, "demo")


@functools.cache
def demo_photo(file: str) -> tuple[Image.Image, Image.Image, np.ndarray]:
    """(photo, ink drawing, how much the drawing changes each pixel) of a demo photo at the demo scale,
    once per process."""
    img = load_image(demo_photo_path(file), 3)
    s = DEMO_SHORT_SIDE / min(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
    drawing = to_ink_drawing(img)
    change = np.abs(np.asarray(img, dtype=np.float32) - np.asarray(drawing, dtype=np.float32)).mean(2) / 255
    return img, drawing, change


Box = tuple[int, int, int, int]


def demo_bands(size: tuple[int, int], held_out: int = DEMO_CROP) -> tuple[Box, Box, Box]:
    """(A band, held-out band, B band) as (left, top, right, bottom) boxes of an image of ``size``, cut
    across its longer side; the held-out band in the middle is ``held_out`` px wide."""
    w, h = size
    long = max(w, h)
    cut1 = (long - held_out) // 2
    cut2 = cut1 + held_out
    if w >= h:
        return (0, 0, cut1, h), (cut1, 0, cut2, h), (cut2, 0, w, h)
    return (0, 0, w, cut1), (0, cut1, w, cut2), (0, cut2, w, h)


def demo_crops(box: Box, stride: int, crop: int = DEMO_CROP) -> list[Box]:
    """``crop`` px boxes on a ``stride`` px grid inside ``box``, the grid centred in it."""
    left, top, right, bottom = box
    cols, rows = (right - left - crop) // stride + 1, (bottom - top - crop) // stride + 1
    x0 = left + (right - left - crop - (cols - 1) * stride) // 2
    y0 = top + (bottom - top - crop - (rows - 1) * stride) // 2
    return [(x0 + c * stride, y0 + r * stride, x0 + c * stride + crop, y0 + r * stride + crop)
            for r in range(rows) for c in range(cols)]  # fmt: skip


def _changes_enough(change: np.ndarray, box: Box) -> bool:
    return bool(change[box[1] : box[3], box[0] : box[2]].mean() >= DEMO_MIN_CHANGE)


def _demo(root, split, on_bad) -> DomainPair:
    """Photo ↔ ink drawing on the bands of 9 real photos: a CPU demo in minutes (see the comment above).
    Crops whose drawing changes them by less than ``DEMO_MIN_CHANGE`` are left out."""
    a, b, names_a, names_b = [], [], [], []
    for f in DEMO_PHOTOS:
        photo, drawing, change = demo_photo(f)
        stem = Path(f).stem
        band_a, band_test, band_b = demo_bands(photo.size)
        if split == "train":
            for box, image, out, names, which in ((band_a, photo, a, names_a, "a"), (band_b, drawing, b, names_b, "b")):
                for k, crop in enumerate(demo_crops(box, DEMO_TRAIN_STRIDE)):
                    if _changes_enough(change, crop):
                        out.append(image.crop(crop))
                        names.append(f"{stem}-band{which}-{k:03d}")
        else:
            for k, crop in enumerate(demo_crops(band_test, DEMO_CROP)):
                if _changes_enough(change, crop):
                    a.append(photo.crop(crop))
                    b.append(drawing.crop(crop))
                    names_a.append(f"{stem}-{k:02d}")
                    names_b.append(f"{stem}-{k:02d}")
    where = f"{'training' if split == 'train' else 'held-out middle'} bands of {len(DEMO_PHOTOS)} photos"
    source_a = ListSource(a, 3, names_a, description=f"{len(a)} demo photo crops of the {where}")
    source_b = ListSource(b, 3, names_b, description=f"{len(b)} demo ink-drawing crops of the {where}")
    paired = split != "train"  # held-out crops are drawn and photographed: each is the other's truth
    return DomainPair(source_a, source_b, 3, 3, "demo", DEMO_CROP, DEMO_CROP,
                      "photos ↔ ink drawings (photos bundled with scikit-image and matplotlib)",
                      source_b if paired else None, "crop", classifier_size=DEMO_CROP,
                      test_b_truth=source_a if paired else None)  # fmt: skip


# --- CIFAR-10 colorization --------------------------------------------------------------------------
def cifar_files(base: Path, split: str) -> tuple[list[Path], np.ndarray]:
    table = require_data(base / f"{split}_labels.csv", "cifar10-colorization")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label"} <= rows[0].keys():
        raise DataError(f"{table}: expected a csv with columns path,label,class")
    return [base / r["path"] for r in rows], np.array([int(r["label"]) for r in rows], dtype=np.int64)


def _cifar_colorization(root, split, on_bad) -> DomainPair:
    """Train: gray A from the even rows, colour B from the odd rows of train_labels.csv (disjoint
    halves with the same class balance, so unpaired). Test: gray test images, their colours as
    ``test_a_truth``, and the same colour images as B. Sizes 32, only flips (``crop`` of 32)."""
    base = require_data(resolve_data_root(root) / "cifar10", "cifar10-colorization")
    paths, labels = cifar_files(base, split)
    if split == "train":
        a = FileSource(paths[0::2], 1, on_bad, labels[0::2], f"{base}/train (even rows, gray)")
        b = FileSource(paths[1::2], 3, on_bad, labels[1::2], f"{base}/train (odd rows)")
        truth = None
    else:
        truth = b = FileSource(paths, 3, on_bad, labels, f"{base}/test")
        a = MappedSource(truth, to_gray, 1)
    name = "cifar10-colorization"
    return DomainPair(a, b, 1, 3, name, 32, 32, "CIFAR-10 grayscale ↔ colour", truth, "crop")


# --- digits -----------------------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """An idx file (LeCun's MNIST format, optionally gzipped): big-endian header, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read idx file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not a uint8 idx file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: idx header says {shape} but holds {body.size} bytes")
    return body.reshape(shape)


def mnist_source(root: Path, split: str) -> ArraySource:
    base = require_data(root / "mnist", "mnist")
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(require_data(base / f"{prefix}-images-idx3-ubyte.gz", "mnist"))
    labels = read_idx(require_data(base / f"{prefix}-labels-idx1-ubyte.gz", "mnist"))
    if len(images) != len(labels):
        raise DataError(f"{base}: {len(images)} images but {len(labels)} labels")
    names = [f"mnist_{prefix}_{i:05d}" for i in range(len(images))]
    return ArraySource(images, 1, names, labels, f"MNIST {split} ({base})")


def _usps(root: Path, split: str) -> ArraySource:
    path = require_data(root / "usps" / "usps.h5", "mnist-usps")
    try:
        import h5py
    except ImportError:
        raise DataError(f"reading {path} needs h5py (pip install h5py)") from None
    try:
        with h5py.File(path, "r") as f:
            data, target = np.asarray(f[split]["data"]), np.asarray(f[split]["target"])
    except (OSError, KeyError) as e:
        raise DataError(f"{path}: expected HDF5 with {split}/data and {split}/target ({e})") from None
    images = np.clip(np.rint(data.reshape(-1, 16, 16) * 255), 0, 255).astype(np.uint8)
    names = [f"usps_{split}_{i:05d}" for i in range(len(images))]
    return ArraySource(images, 1, names, target, f"USPS {split} ({path})")


MNISTM_TRAIN_FRACTION = 0.8


def _mnistm(root: Path, split: str) -> ZipSource:
    """Only MNIST-M's test split (9,001 images) is available offline: its first 80% (by file name)
    serve as our train split and the last 20% as our test split."""
    base = require_data(root / "mnist_m", "mnist-mnistm")
    labels_txt = require_data(base / "mnist_m_test_labels.txt", "mnist-mnistm")
    label_of = {}
    for line in labels_txt.read_text().split("\n"):
        if line.strip():
            file, label = line.split()
            label_of[file] = int(label)
    source = ZipSource(require_data(base / "mnist_m_test.zip", "mnist-mnistm"), None, 3)
    members = source.members
    missing = [m for m in members if Path(m).name not in label_of]
    if missing:
        raise DataError(f"{labels_txt}: no label for {len(missing)} image(s), e.g. {missing[0]}")
    cut = int(len(members) * MNISTM_TRAIN_FRACTION)
    members = members[:cut] if split == "train" else members[cut:]
    return ZipSource(source.zip_path, members, 3, [label_of[Path(m).name] for m in members],
                     f"MNIST-M {split} ({len(members)} of the test zip)")  # fmt: skip


def _mnist_usps(root, split, on_bad) -> DomainPair:
    root = resolve_data_root(root)
    return DomainPair(mnist_source(root, split), _usps(root, split), 1, 1, "mnist-usps", 34, 32,
                      "MNIST 28px ↔ USPS 16px digits, resized to 34, random 32 px crops in training")  # fmt: skip


def _mnist_mnistm(root, split, on_bad) -> DomainPair:
    root = resolve_data_root(root)
    return DomainPair(mnist_source(root, split), _mnistm(root, split), 1, 3, "mnist-mnistm", 32, 32,
                      "MNIST (gray) ↔ MNIST-M (digits on colour photo patches)")  # fmt: skip


def _mnist_svhn(root, split, on_bad) -> DomainPair:
    raise DataError("SVHN is not available offline; use mnist-usps or mnist-mnistm")


# --- CelebA attributes ------------------------------------------------------------------------------
def read_celeba_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """``list_attr_celeba.txt``: a count line, a line of attribute names, then
    ``<file> v1 v2 …`` with values 1 / -1. Returns (names, {file: values})."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise DataError(f"{path}: not a CelebA attribute file (needs a count line and a header line)")
    names = lines[1].split()
    table = {}
    for n, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if len(parts) != len(names) + 1:
            raise DataError(f"{path}: line {n} has {len(parts) - 1} values, expected {len(names)}")
        table[parts[0]] = np.array([int(v) for v in parts[1:]], dtype=np.int64)
    return names, table


def _celeba(attribute_a: tuple[str, int], attribute_b: tuple[str, int], name: str):
    """Both domains from the attribute table; the shared copy (32 faces) is far too small to train
    on, so train and test splits both use all images. Faces are 178x218: aspect is kept."""

    def build(root, split, on_bad) -> DomainPair:
        base = require_data(resolve_data_root(root) / "celeba_hair", name)
        tables = sorted(base.rglob("list_attr_celeba*.txt"))
        if not tables:
            raise DataError(f"{base}: no list_attr_celeba*.txt attribute file")
        attrs, table = read_celeba_attributes(tables[0])
        images = {p.name: p for p in sorted(base.rglob("*.jpg"))}
        domains = []
        for attr, value in (attribute_a, attribute_b):
            if attr not in attrs:
                raise DataError(f"{tables[0]}: no attribute {attr}")
            col = attrs.index(attr)
            files = [images[f] for f in sorted(table) if f in images and table[f][col] == value]
            if not files:
                raise DataError(f"{base}: no image has {attr} = {value} (the attribute table covers "
                                f"{len(table)} files, {len(images)} images are present); recipe '{name}' "
                                f"cannot be built from this copy")  # fmt: skip
            domains.append(FileSource(files, 3, on_bad, description=f"{base} ({attr} = {value})"))
        return DomainPair(domains[0], domains[1], 3, 3, name, 72, 64, RECIPES[name].description,
                          default_preprocess="scale_shortside_and_crop")  # fmt: skip

    return build


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "demo", "photos ↔ ink drawings of photos that ship with scikit-image (no data folder needed)", _demo, False
        ),
        Recipe("apple2orange", "CycleGAN apples ↔ oranges (ImageNet, 256 px)", _cyclegan_set("apple2orange")),
        Recipe("horse2zebra", "CycleGAN horses ↔ zebras (needs the full set: not offline)", _horse2zebra),
        Recipe(
            "cifar10-colorization",
            "CIFAR-10 grayscale ↔ colour (unpaired halves)",
            _cifar_colorization,
            options=COLORIZATION_OPTIONS,
        ),
        Recipe("mnist-usps", "MNIST ↔ USPS handwritten digits, gray, 32 px", _mnist_usps, options=MNIST_USPS_OPTIONS),
        Recipe(
            "mnist-mnistm",
            "MNIST ↔ MNIST-M (80/20 split of its test set), 32 px",
            _mnist_mnistm,
            options=MNIST_MNISTM_OPTIONS,
        ),
        Recipe("mnist-svhn", "MNIST ↔ SVHN (SVHN is not available offline)", _mnist_svhn),
        Recipe(
            "celeba-hair",
            "CelebA black hair ↔ blond hair (32-face sample: too small to train)",
            _celeba(("Black_Hair", 1), ("Blond_Hair", 1), "celeba-hair"),
        ),
        Recipe(
            "celeba-eyeglasses",
            "CelebA eyeglasses ↔ none (the shared sample has no glasses)",
            _celeba(("Eyeglasses", 1), ("Eyeglasses", -1), "celeba-eyeglasses"),
        ),
    )
}


def recipe_options(name: str | None) -> dict[str, Any]:
    """The training options recipe ``name`` sets by default ({} for folders and unknown names)."""
    recipe = RECIPES.get(name or "")
    return dict(recipe.options) if recipe else {}


def list_recipes() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in recipe, for ``gankit recipes`` / ``--help``."""
    return [(r.name, r.description) for r in RECIPES.values()]


def load_recipe(
    name: str, data_root: str | Path | None = None, split: str = "train", on_bad: str = "warn"
) -> DomainPair:
    """A built-in recipe, ``folder:PATH``, a folder with ``trainA``/``trainB`` (…``testA``/``testB``),
    or any subfolder of the data root with that layout."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if name in RECIPES:
        return RECIPES[name].build(data_root, split, on_bad)
    if name.startswith("folder:"):
        path = Path(name[len("folder:") :])
        return _layout_pair(path, split, on_bad, path.name)
    path = Path(name)
    if path.is_dir() and (_has_layout(path) or _has_layout(path, "test")):
        return _layout_pair(path, split, on_bad, path.name or str(path))
    root = Path(data_root) if data_root else default_data_root()
    if (root / name).is_dir() and (_has_layout(root / name) or _has_layout(root / name, "test")):
        return _layout_pair(root / name, split, on_bad, name)
    known = ", ".join(RECIPES)
    raise DataError(
        f"unknown dataset '{name}': not a built-in recipe ({known}), nor a folder with trainA/trainB "
        f"here or in the data folder {root} ({HINT})"
    )
