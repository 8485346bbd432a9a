"""Every recipe on the real data: sizes, channels, labels, and a sample through the training
transform; recipes that cannot be built offline fail with a message that says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


def test_demo_needs_no_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "nowhere"))
    train = load_recipe("demo", None)
    assert (len(train.source_a), len(train.source_b), train.channels_a, train.channels_b) == (3, 4, 1, 3)
    assert train.source_a.load(0).mode == "L" and min(train.source_b.load(0).size) == 256
    check_sample(train)
    test = load_recipe("demo", None, "test")
    names = {test.source_a.name(i) for i in range(len(test.source_a))}
    train_names = {s.name(i) for s in (train.source_a, train.source_b) for i in range(len(s))}
    assert names and not names & train_names  # held-out photos
    truth = test.test_a_truth.load(0)
    assert truth.mode == "RGB"
    assert np.array_equal(np.asarray(test.source_a.load(0)), np.asarray(truth.convert("L")))


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
