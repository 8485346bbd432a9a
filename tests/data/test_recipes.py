"""Every recipe on the real data: sizes, channels, labels, and a sample through the training
transform; recipes that cannot be built offline fail with a message that says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.data.images import pil_to_tensor
from gankit.data.recipes import RECIPES, DomainPair, folder_pair, list_recipes, load_recipe
from gankit.data.transforms import TrainTransform
from gankit.data.unaligned import UnalignedDataset
from gankit.errors import ConfigError, DataError


def check_sample(pair: DomainPair):
    tr = TrainTransform(pair.default_load_size, pair.default_crop_size, preprocess=pair.default_preprocess)
    item = UnalignedDataset(pair.source_a, pair.source_b, tr, tr)[0]
    size = pair.default_crop_size
    assert item["A"].shape == (pair.channels_a, size, size)
    assert item["B"].shape == (pair.channels_b, size, size)
    for t in (item["A"], item["B"]):
        assert t.dtype == torch.float32 and -1 <= t.min() < t.max() <= 1
    assert pair.source_a.channels == pair.channels_a and pair.source_b.channels == pair.channels_b


def _thumbnail(img) -> np.ndarray:
    return np.asarray(img.convert("L").resize((16, 16)), dtype=np.float64).ravel()


def _same_picture(x, y) -> float:
    """Pearson correlation of two 16 x 16 gray thumbnails (one picture twice scores ≈ 1)."""
    return float(np.corrcoef(_thumbnail(x), _thumbnail(y))[0, 1])


def test_demo_needs_no_data_root(monkeypatch, tmp_path):
    from gankit.data.recipes import DEMO_CROP

    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "nowhere"))
    train = load_recipe("demo", None)
    assert (train.channels_a, train.channels_b) == (3, 3) and len(train.source_a) >= 100 and len(train.source_b) >= 100
    check_sample(train)
    test = load_recipe("demo", None, "test")
    for source in (train.source_a, train.source_b, test.source_a, test.source_b):
        assert {source.load(i).size for i in range(len(source))} == {(DEMO_CROP, DEMO_CROP)}  # one scale everywhere


def test_demo_holds_out_enough_unseen_crops():
    """At least 20 held-out images per domain, cut from a band of each photo that neither training domain
    shows (the stereo twin of a demo photo is left out, since its bands would show the held-out band
    again), and unpaired training domains."""
    from gankit.data.recipes import (
        DEMO_CROP,
        DEMO_MIN_CHANGE,
        DEMO_PHOTOS,
        DEMO_TRAIN_STRIDE,
        demo_bands,
        demo_crops,
        demo_photo,
    )
    from gankit.metrics.content import edge_structure_similarity

    train, test = load_recipe("demo", None), load_recipe("demo", None, "test")
    assert len(test.source_a) == len(test.source_b) >= 20
    assert "motorcycle_right.png" not in DEMO_PHOTOS
    for i in range(len(test.source_a)):  # every held-out drawing differs visibly from its photo
        photo, drawing = (np.asarray(s.load(i), dtype=np.float32) / 255 for s in (test.source_a, test.source_b))
        assert np.abs(photo - drawing).mean() >= DEMO_MIN_CHANGE, test.source_a.name(i)
    assert _same_picture(demo_photo("motorcycle_left.png")[0], _skimage_photo("motorcycle_right.png")) > 0.8

    def covered(boxes, shape):
        mask = np.zeros(shape, dtype=bool)
        for left, top, right, bottom in boxes:
            mask[top:bottom, left:right] = True
        return mask

    for f in DEMO_PHOTOS:
        photo = demo_photo(f)[0]
        shape = (photo.height, photo.width)
        band_a, band_test, band_b = demo_bands(photo.size)
        seen_a = covered(demo_crops(band_a, DEMO_TRAIN_STRIDE), shape)
        seen_b = covered(demo_crops(band_b, DEMO_TRAIN_STRIDE), shape)
        held_out = covered(demo_crops(band_test, DEMO_CROP), shape)
        assert held_out.any() and not (held_out & (seen_a | seen_b)).any() and not (seen_a & seen_b).any()

    def batch(source, indices):
        return torch.stack([pil_to_tensor(source.load(i)) for i in indices])

    # held-out pairs show one crop twice (the drawing only darkens its photo, pixel by pixel) ...
    idx = range(len(test.source_a))
    photos, drawings = batch(test.source_a, idx), batch(test.source_b, idx)
    assert (drawings <= photos + 1 / 127.5).all()
    assert (test.test_a_truth, test.test_b_truth) == (test.source_b, test.source_a)  # so eval scores against them
    # ... training images never: A and B are cut from different bands of each photo
    idx = range(0, min(len(train.source_a), len(train.source_b)), 7)
    assert edge_structure_similarity(batch(train.source_a, idx), batch(train.source_b, idx)).abs().mean() < 0.15


def _skimage_photo(file: str):
    from gankit.data.images import load_image
    from gankit.data.recipes import demo_photo_path

    return load_image(demo_photo_path(file), 3)


def test_apple2orange(shared_data):
    train = load_recipe("apple2orange", shared_data)
    assert (len(train.source_a), len(train.source_b)) == (995, 1019)
    assert train.source_a.name(0).startswith("n07740461_") and train.source_b.name(0).startswith("n07749192_")
    check_sample(train)
    test = load_recipe("apple2orange", str(shared_data), "test")
    assert (len(test.source_a), len(test.source_b)) == (266, 248) and test.test_a_truth is None


def test_folder_layouts(shared_data, tmp_path, monkeypatch):
    by_path = load_recipe(str(shared_data / "apple2orange"), None, "test")
    by_prefix = load_recipe(f"folder:{shared_data / 'apple2orange'}", None, "test")
    assert len(by_path.source_a) == len(by_prefix.source_a) == 266
    pair = folder_pair([shared_data / "apple2orange/testA", shared_data / "apple2orange/trainA"],
                       shared_data / "apple2orange/testB", channels_a=1)  # fmt: skip
    assert len(pair.source_a) == 266 + 995 and pair.channels_a == 1 and pair.source_a.load(0).mode == "L"
    monkeypatch.setenv("GANKIT_DATA", str(shared_data))
    (tmp_path / "mine/trainA").mkdir(parents=True)
    with pytest.raises(DataError, match="unknown dataset 'mine'"):
        load_recipe("mine", None)
    with pytest.raises(DataError, match="trainB"):
        load_recipe(f"folder:{tmp_path / 'mine'}", None)


def test_cifar10_colorization(shared_data):
    train = load_recipe("cifar10-colorization", shared_data)
    a, b = train.source_a, train.source_b
    assert (len(a), len(b), train.channels_a, train.channels_b) == (2500, 2500, 1, 3)
    assert {a.name(i) for i in range(len(a))}.isdisjoint(b.name(i) for i in range(len(b)))
    assert np.bincount(a.labels).tolist() == [250] * 10 and np.bincount(b.labels).tolist() == [250] * 10
    check_sample(train)
    test = load_recipe("cifar10-colorization", shared_data, "test")
    assert len(test.source_a) == len(test.test_a_truth) == len(test.source_b) == 10000
    assert np.bincount(test.source_a.labels).tolist() == [1000] * 10
    assert test.source_a.load(5).mode == "L" and test.test_a_truth.load(5).mode == "RGB"
    gray, colour = np.asarray(test.source_a.load(5)), np.asarray(test.test_a_truth.load(5).convert("L"))
    assert np.array_equal(gray, colour)


def test_mnist_usps(shared_data):
    train = load_recipe("mnist-usps", shared_data)
    assert (len(train.source_a), len(train.source_b)) == (60000, 7291)
    assert (train.channels_a, train.channels_b) == (1, 1)
    assert np.bincount(train.source_a.labels)[:3].tolist() == [5923, 6742, 5958]
    assert np.bincount(train.source_b.labels).tolist() == [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    assert train.source_a.load(0).size == (28, 28) and train.source_b.load(0).size == (16, 16)
    check_sample(train)
    test = load_recipe("mnist-usps", shared_data, "test")
    assert (len(test.source_a), len(test.source_b)) == (10000, 2007)
    assert test.source_a.array.mean() == pytest.approx(33.79, abs=0.01)  # SOURCES.md: MNIST test mean pixel


def test_mnist_mnistm(shared_data):
    train = load_recipe("mnist-mnistm", shared_data)
    test = load_recipe("mnist-mnistm", shared_data, "test")
    assert len(train.source_b) + len(test.source_b) == 9001 and len(train.source_b) == 7200
    assert train.channels_b == 3 and train.source_b.load(0).size == (32, 32)
    # MNIST-M image i is MNIST test digit i on a photo patch: labels agree
    mnist_test = load_recipe("mnist-usps", shared_data, "test").source_a.labels
    assert np.array_equal(train.source_b.labels, mnist_test[:7200])
    assert np.array_equal(test.source_b.labels, mnist_test[7200:9001])
    check_sample(train)
    with pytest.raises(DataError, match="SVHN is not available offline"):
        load_recipe("mnist-svhn", shared_data)


def test_celeba(shared_data):
    pair = load_recipe("celeba-hair", shared_data)
    assert (len(pair.source_a), len(pair.source_b)) == (8, 6)
    assert pair.source_a.name(0) == "000007" and pair.source_b.name(0) == "000013"
    check_sample(pair)
    with pytest.raises(DataError, match="Eyeglasses = 1"):
        load_recipe("celeba-eyeglasses", shared_data)


def test_missing_data_and_bad_arguments(shared_data, tmp_path):
    with pytest.raises(DataError, match="not available offline") as e:
        load_recipe("horse2zebra", shared_data)
    assert "horse2zebra_partial" in str(e.value)
    with pytest.raises(DataError, match="GANKIT_DATA") as e:
        load_recipe("apple2orange", tmp_path / "absent")
    assert str(tmp_path / "absent") in str(e.value)
    with pytest.raises(DataError, match="--data-root") as e:
        load_recipe("cifar10-colorization", tmp_path)
    assert str(tmp_path / "cifar10") in str(e.value)
    with pytest.raises(ConfigError):
        load_recipe("demo", None, split="val")
    assert [n for n, _ in list_recipes()] == list(RECIPES) and all(d for _, d in list_recipes())


def test_swapping_the_domains_swaps_their_true_translations():
    """--swap makes B the source: the held-out truths follow, so eval still scores each direction."""
    from gankit.data.loading import domain_pair
    from gankit.models.cyclegan import CycleGANConfig

    plain = domain_pair(CycleGANConfig(dataset="demo"), "test")
    swapped = domain_pair(CycleGANConfig(dataset="demo", swap=True), "test")

    def kind(source):  # the sources are built afresh per call: tell them apart by what they hold
        return source.description.split(" crops")[0]

    assert kind(swapped.source_a) == kind(plain.source_b) == kind(swapped.test_b_truth) == "24 demo ink-drawing"
    assert kind(swapped.source_b) == kind(plain.source_a) == kind(swapped.test_a_truth) == "24 demo photo"
