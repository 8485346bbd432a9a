"""Transforms and UnalignedDataset: shapes, ranges, and items as pure functions of (seed, epoch, index)."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data.sources import ArraySource, BadImageWarning, FileSource
from gankit.data.transforms import PREPROCESS_CHOICES, EvalTransform, TrainTransform
from gankit.data.unaligned import UnalignedDataset
from gankit.errors import ConfigError, DataError, ImageReadError


def noise_source(n, h, w, channels, seed=0):
    shape = (n, h, w) if channels == 1 else (n, h, w, 3)
    return ArraySource(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), channels)


@pytest.mark.parametrize("preprocess", PREPROCESS_CHOICES)
def test_train_transform_shapes(preprocess):
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    t = TrainTransform(40, 32, preprocess=preprocess)(img, np.random.default_rng(0))
    assert t.dtype == torch.float32 and t.min() >= -1 and t.max() <= 1
    expected = {"scale_width": (3, 32, 40), "none": (3, 48, 72)}.get(preprocess, (3, 32, 32))
    assert tuple(t.shape) == expected


def test_crop_pads_small_images_and_rng_types():
    small = Image.new("L", (10, 12), 100)
    transform = TrainTransform(16, 16, preprocess="crop")
    for rng in (random.Random(0), np.random.default_rng(0)):
        t = transform(small, rng)
        assert t.shape == (1, 16, 16) and torch.allclose(t, torch.tensor(100 / 127.5 - 1))
    img = Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    tr = TrainTransform(64, 32, preprocess="crop")
    same = [tr(img, np.random.default_rng(7)) for _ in range(2)]
    assert torch.equal(*same)
    assert not torch.equal(same[0], tr(img, np.random.default_rng(8)))
    with pytest.raises(ConfigError):
        TrainTransform(64, 32, preprocess="zoom")
    with pytest.raises(ConfigError):
        TrainTransform(16, 32)


def test_eval_transform():
    img = Image.new("RGB", (50, 30))
    assert EvalTransform()(img).shape == (3, 30, 50)
    assert EvalTransform(24)(img).shape == (3, 24, 24)


def test_dataset_is_a_pure_function_of_seed_epoch_index():
    a, b = noise_source(5, 20, 20, 1), noise_source(7, 24, 24, 3, seed=1)
    tr = TrainTransform(20, 16)
    ds = UnalignedDataset(a, b, tr, tr, seed=3)
    assert len(ds) == 7
    item = ds[6]
    assert item["A"].shape == (1, 16, 16) and item["B"].shape == (3, 16, 16) and item["A_name"] == "000001"
    again = UnalignedDataset(a, b, tr, tr, seed=3)
    for i in range(7):
        x, y = ds[i], again[i]
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"]) and x["B_name"] == y["B_name"]
    first = [ds[i] for i in range(7)]
    ds.set_epoch(1)
    second = [ds[i] for i in range(7)]
    assert any(not torch.equal(p["A"], q["A"]) for p, q in zip(first, second))
    assert [p["B_name"] for p in first] != [q["B_name"] for q in second]
    ds.set_epoch(0)
    assert torch.equal(ds[2]["B"], first[2]["B"])
    other_seed = UnalignedDataset(a, b, tr, tr, seed=4)
    assert any(not torch.equal(other_seed[i]["A"], first[i]["A"]) for i in range(7))
    serial = UnalignedDataset(a, b, tr, tr, serial_b=True)
    assert [serial[i]["B_name"] for i in range(7)] == [f"{i:06d}" for i in range(7)]


def test_dataset_in_dataloader_workers_matches_main_process():
    a, b = noise_source(6, 20, 20, 3), noise_source(4, 20, 20, 3, seed=2)
    tr = TrainTransform(20, 16)
    ds = UnalignedDataset(a, b, tr, tr, seed=0)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2))
    assert torch.equal(torch.cat([x["A"] for x in batches]), torch.stack([ds[i]["A"] for i in range(6)]))


def test_unreadable_image_is_replaced_by_the_next(tmp_path, shared_data):
    folder = tmp_path / "a"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{i}.png")
    data = (shared_data / "apple2orange/testA/n07740461_10011.jpg").read_bytes()
    (folder / "1.png").write_bytes(data[: len(data) // 2])  # truncated JPEG: passes the cheap check
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src = FileSource.from_folders(folder, 3)
    tr = TrainTransform(8, 8, flip=False)
    ds = UnalignedDataset(src, noise_source(2, 8, 8, 3), tr, tr)
    with pytest.warns(BadImageWarning, match="1.png"):
        item = ds[1]
    assert item["A_name"] == "2"
    strict = UnalignedDataset(src, noise_source(2, 8, 8, 3), tr, tr, on_bad="error")
    with pytest.raises(ImageReadError, match="1.png"):
        strict[1]
    with pytest.raises(DataError, match="unreadable"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        UnalignedDataset(FileSource([folder / "1.png"], 3), src, tr, tr)[0]
