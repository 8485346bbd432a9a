"""Every image mode loads to the right mode, size, orientation and pixel values; bad files fail
with an error that names them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data.images import convert_image, list_images, load_image, pil_to_tensor, tensor_to_pil
from gankit.errors import DataError, ImageReadError


def save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def px(img, xy=(0, 0)):
    return img.getpixel(xy)


def test_gray_and_colour_basics(tmp_path):
    rgb = Image.new("RGB", (5, 4), (255, 0, 0))
    p = save(rgb, tmp_path / "red.png")
    assert load_image(p, 3).mode == "RGB" and load_image(p, 3).size == (5, 4)
    gray = load_image(p, 1)
    assert gray.mode == "L" and px(gray) == 76  # ITU-R 601: 0.299 * 255
    g = save(Image.new("L", (3, 3), 200), tmp_path / "g.png")
    assert px(load_image(g, 3)) == (200, 200, 200)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 255, 255))
    img = load_image(save(rgba, tmp_path / "a.png"), 3)
    assert img.mode == "RGB" and px(img) == (255, 255, 255) and px(img, (1, 1)) == (0, 0, 255)
    la = Image.new("LA", (2, 2), (0, 0))
    assert px(load_image(save(la, tmp_path / "la.png"), 1)) == 255


def test_palette_with_and_without_transparency(tmp_path):
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert px(load_image(save(p, tmp_path / "p.png"), 3)) == (10, 200, 30)
    assert px(load_image(save(p, tmp_path / "pt.png", transparency=1), 3)) == (255, 255, 255)
    gif = load_image(save(p, tmp_path / "p.gif"), 3)
    assert gif.mode == "RGB" and px(gif) == (10, 200, 30)


def test_cmyk_and_bilevel(tmp_path):
    cmyk = Image.new("CMYK", (3, 3), (0, 255, 255, 0))  # pure red in CMYK
    img = load_image(save(cmyk, tmp_path / "c.jpg", quality=100), 3)
    r, g, b = px(img)
    assert img.mode == "RGB" and r > 240 and g < 15 and b < 15
    one = Image.new("1", (3, 3), 1)
    one.putpixel((0, 0), 0)
    img = load_image(save(one, tmp_path / "one.png"), 1)
    assert img.mode == "L" and px(img) == 0 and px(img, (1, 1)) == 255


def test_16_bit_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 32768, 65535]], dtype=np.uint16)
    for mode, dtype in (("I;16", "<u2"), ("I;16B", ">u2")):
        img = convert_image(Image.frombytes(mode, (3, 1), a.astype(dtype).tobytes()), 1)
        assert [px(img, (x, 0)) for x in range(3)] == [0, 128, 255], mode
    loaded = load_image(save(Image.fromarray(a), tmp_path / "w.png"), 3)  # Pillow reads it back as I or I;16
    assert [px(loaded, (x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]
    i32 = Image.fromarray(np.array([[0, 255, 65535]], dtype=np.int32))
    out = convert_image(i32, 1)  # 32-bit "I" holding 16-bit values: scaled by 16 bits
    assert i32.mode == "I" and px(out, (2, 0)) == 255 and px(out, (1, 0)) == 1


def test_float_images(tmp_path):
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert f.mode == "F"
    img = load_image(save(f, tmp_path / "f.tif"), 1)
    assert [px(img, (x, 0)) for x in range(3)] == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90° clockwise
    p = save(img, tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(p, 3)
    assert out.size == (20, 40)
    top, bottom = px(out, (10, 5)), px(out, (10, 35))
    assert top[0] > 200 and top[2] < 50, top  # red ends up on top after a clockwise turn
    assert bottom[2] > 200 and bottom[0] < 50, bottom


def make_bad_file(folder, kind: str):
    """A missing file, a 0-byte .jpg, or a text file renamed .png."""
    if kind == "missing":
        return folder / "missing.png"
    if kind == "zero-bytes":
        (folder / "empty.jpg").write_bytes(b"")
        return folder / "empty.jpg"
    (folder / "notes.png").write_text("hello, not a picture")
    return folder / "notes.png"


@pytest.mark.parametrize(
    "kind, reason", [("missing", "not found"), ("zero-bytes", "empty file"), ("text", "not an image")]
)
def test_bad_files_name_the_file(tmp_path, kind, reason):
    path = make_bad_file(tmp_path, kind)
    with pytest.raises(ImageReadError, match=reason) as e:
        load_image(path, 3)
    assert str(path) in str(e.value) and e.value.path == path


def test_truncated_jpeg_fails_with_its_name(tmp_path, shared_data):
    data = (shared_data / "apple2orange/testA/n07740461_10011.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated") as e:
        load_image(path, 3)
    assert str(path) in str(e.value)


def test_list_images(tmp_path):
    with pytest.raises(DataError, match="not found") as e:
        list_images(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty") as e:
        list_images(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(e.value)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("x")
    (docs / "b.csv").write_text("x")
    with pytest.raises(DataError, match="2 file") as e:
        list_images(docs)
    assert str(docs) in str(e.value)
    with pytest.raises(DataError, match="not a folder"):
        list_images(docs / "a.txt")
    (docs / "sub").mkdir()
    for name in ("b.PNG", "sub/a.jpg", ".hidden.png", "c.webp"):
        (docs / name).write_bytes(b"x")
    assert [p.relative_to(docs).as_posix() for p in list_images(docs)] == ["b.PNG", "c.webp", "sub/a.jpg"]
    assert [p.name for p in list_images(docs, recursive=False)] == ["b.PNG", "c.webp"]


def test_tensor_round_trip():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    t = pil_to_tensor(rgb)
    assert t.shape == (3, 6, 5) and t.dtype == torch.float32 and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(np.asarray(tensor_to_pil(t)), np.asarray(rgb))
    gray = pil_to_tensor(Image.new("L", (2, 3), 255))
    assert gray.shape == (1, 3, 2) and torch.all(gray == 1)
    out = tensor_to_pil(torch.full((1, 2, 2), 5.0))
    assert out.mode == "L" and px(out) == 255  # clamped
    assert tensor_to_pil(torch.zeros(3, 2, 2)).mode == "RGB"
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(2, 2, 2))
