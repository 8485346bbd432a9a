"""Image sources: bad files among good ones, arrays, zips read from DataLoader workers, pickling."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data.images import pil_to_tensor
from gankit.data.sources import (
    ArraySource,
    BadImageWarning,
    FileSource,
    ListSource,
    MappedSource,
    SubsetSource,
    ZipSource,
    to_gray,
)
from gankit.errors import DataError, ImageReadError


def good_folder(folder, n=4, size=(8, 6)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (40 * i, 100, 200)).save(folder / f"img{i}.png")
    return folder


def add_bad_files(folder):
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    (folder / "garbage.bmp").write_bytes(b"\x00\x01" * 50)


def test_bad_files_are_skipped_with_one_warning_that_counts_them(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    add_bad_files(folder)
    with pytest.warns(BadImageWarning, match=r"skipped 3 unreadable image file\(s\) of 7") as record:
        src = FileSource.from_folders(folder, 3)
    assert len(record) == 1 and "empty.jpg" in str(record[0].message)
    assert len(src) == 4 and [src.name(i) for i in range(4)] == ["img0", "img1", "img2", "img3"]
    assert src.load(1).mode == "RGB" and src.load(1).getpixel((0, 0)) == (40, 100, 200)


def test_on_bad_error_raises_naming_the_file(tmp_path):
    folder = good_folder(tmp_path / "imgs")
    (folder / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError) as e:
        FileSource.from_folders(folder, 3, on_bad="error")
    assert str(folder / "notes.png") in str(e.value)


def test_all_bad_names_the_folder(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    add_bad_files(folder)
    with pytest.raises(DataError, match="none of the 3") as e:
        FileSource.from_folders(folder, 3)
    assert str(folder) in str(e.value)


def test_several_folders_and_load_time_failures(tmp_path, shared_data):
    a, b = good_folder(tmp_path / "a", 2), good_folder(tmp_path / "b", 3)
    src = FileSource.from_folders([a, b], 1)
    assert len(src) == 5 and src.load(4).mode == "L" and str(a) in src.description
    # a truncated JPEG passes the cheap check; it fails, by name, when loaded
    data = (shared_data / "apple2orange/testA/n07740461_10011.jpg").read_bytes()
    (b / "cut.jpg").write_bytes(data[: len(data) // 2])
    src = FileSource.from_folders(b, 3)
    with pytest.raises(ImageReadError, match="cut.jpg"):
        src.load([src.name(i) for i in range(len(src))].index("cut"))


def test_array_list_mapped_subset_sources():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 7, 6), dtype=np.uint8)
    src = ArraySource(gray, 3, labels=[0, 1, 2, 3, 4])
    img = src.load(2)
    assert img.mode == "RGB" and img.size == (6, 7) and img.getpixel((1, 1))[0] == gray[2, 1, 1]
    assert src.name(2) == "000002" and src.labels.tolist() == [0, 1, 2, 3, 4]
    colour = ArraySource(rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8), 1, names=["x", "y", "z"])
    assert colour.load(0).mode == "L" and colour.name(-1) == "z" and colour.labels is None
    with pytest.raises(ValueError):
        ArraySource(gray.astype(np.float32), 1)
    with pytest.raises(IndexError):
        src.load(5)

    sub = SubsetSource(src, [4, 0])
    assert len(sub) == 2 and sub.labels.tolist() == [4, 0] and sub.name(0) == "000004"
    grayed = MappedSource(ListSource([Image.new("RGB", (3, 3), (255, 0, 0))], 3, ["red"]), to_gray, 1)
    assert grayed.load(0).mode == "L" and grayed.load(0).getpixel((0, 0)) == 76 and grayed.name(0) == "red"
    for s in (src, sub, grayed):
        copy = pickle.loads(pickle.dumps(s))
        assert np.array_equal(np.asarray(copy.load(0)), np.asarray(s.load(0)))


def make_zip(path, n=12):
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            img = Image.new("RGB", (4, 4), (i * 20, 0, 0))
            with zf.open(f"digits/{i:03d}.png", "w") as f:
                img.save(f, format="PNG")
        zf.writestr("digits/readme.txt", "not an image")
    return path


class _ZipDataset(torch.utils.data.Dataset):
    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        return pil_to_tensor(self.source.load(i)), int(self.source.labels[i])


def test_zip_source_in_dataloader_workers(tmp_path):
    path = make_zip(tmp_path / "d.zip")
    src = ZipSource(path, None, 3, labels=list(range(12)))
    assert len(src) == 12 and src.name(3) == "003" and src.load(3).getpixel((0, 0)) == (60, 0, 0)
    src.load(0)  # the parent has an open handle now: workers must not reuse it
    loader = torch.utils.data.DataLoader(_ZipDataset(src), batch_size=4, num_workers=2)
    images, labels = zip(*loader)
    images = torch.cat(images)
    assert images.shape == (12, 3, 4, 4) and torch.cat(labels).tolist() == list(range(12))
    expected = torch.tensor([i * 20 for i in range(12)], dtype=torch.float32) / 127.5 - 1
    assert torch.allclose(images[:, 0, 0, 0], expected)
    copy = pickle.loads(pickle.dumps(src))
    assert copy._zip is None and copy.load(11).getpixel((0, 0)) == (220, 0, 0)


def test_zip_source_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ZipSource(tmp_path / "none.zip", None, 3)
    path = make_zip(tmp_path / "d.zip", 2)
    with pytest.raises(DataError, match="missing"):
        ZipSource(path, ["digits/999.png"], 3)
    src = ZipSource(path, ["digits/readme.txt"], 3)
    with pytest.raises(ImageReadError, match="readme.txt"):
        src.load(0)


def test_the_ink_drawing_darkens_edges_only_and_keeps_each_pixels_colour():
    """The demo's domain B: strokes where the luma changes, flat regions untouched, no pixel darkened
    by more than INK_MAX, and darkening by one factor per pixel (the colour's hue survives)."""
    from gankit.data.sources import INK_MAX, to_ink_drawing

    photo = np.zeros((40, 40, 3), dtype=np.uint8)
    photo[:, :20] = (200, 120, 40)
    photo[:, 20:] = (60, 90, 220)
    drawing = np.asarray(to_ink_drawing(Image.fromarray(photo))).astype(np.float32)
    change = 1 - drawing / photo
    assert np.abs(change[:, :8]).max() < 0.01 and np.abs(change[:, 32:]).max() < 0.01  # flat: untouched
    assert change[:, 18:22].mean() > 0.5 and change.max() <= INK_MAX + 0.01  # the edge: inked, bounded
    assert np.allclose(change[:, 19, 0], change[:, 19, 2], atol=0.02)  # one factor for R, G and B
    assert np.array_equal(drawing, np.asarray(to_ink_drawing(Image.fromarray(photo))))
