"""Reading uploads: the pixel limit holds before anything is decoded, every mode ``translate`` reads is
read, EXIF orientation is applied and colour profiles are converted to sRGB."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms

from gankit.data.images import load_image
from gankit.serve.errors import BadUpload, TooLarge
from gankit.serve.uploads import open_checked, png_bytes, read_upload


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` with almost no data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    data = bomb_png(30_000, 30_000)  # 900 megapixels claimed by 100 bytes: decoding would need gigabytes
    assert len(data) < 200
    with pytest.raises(TooLarge, match="--max-pixels"):
        open_checked(data, 16_000_000)
    with pytest.raises(TooLarge, match=r"3000×2000 = 6,000,000 pixels"):
        open_checked(bomb_png(3000, 2000), 5_000_000)
    assert open_checked(bomb_png(3000, 2000), 6_000_000).size == (3000, 2000)  # header read, nothing decoded


def test_bad_bytes_are_400_with_a_reason():
    with pytest.raises(BadUpload, match="empty"):
        read_upload(b"", 3, 10**6)
    with pytest.raises(BadUpload, match="not an image"):
        read_upload(b"GIF? no, plain text", 3, 10**6)
    jpeg = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(BadUpload, match="truncated"):
        read_upload(jpeg[: len(jpeg) // 2], 3, 10**6)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "F", "CMYK"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_becomes_the_networks_mode(mode, channels):
    image = (
        Image.new("I;16", (7, 5), 50000) if mode == "I;16" else Image.new("RGB", (7, 5), (250, 120, 10)).convert(mode)
    )
    out = read_upload(encode(image, "TIFF" if mode in ("CMYK", "F", "I") else "PNG"), channels, 10**6)
    assert out.size == (7, 5) and out.mode == ("L" if channels == 1 else "RGB")


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), "white")
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to show
    out = read_upload(encode(image, "JPEG", exif=exif.tobytes(), quality=95), 3, 10**6)
    assert out.size == (20, 40)
    r, g, b = out.getpixel((10, 3))  # the red band is now on top
    assert r > 200 and g < 60 and b < 60


def swapped_primaries_profile() -> bytes:
    """An RGB profile whose red and blue primaries are exchanged: pure red stored under it *is* blue."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    tags = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    r, b = tags[b"rXYZ"], tags[b"bXYZ"]
    data[r + 4 : r + 12], data[b + 4 : b + 12] = data[b + 4 : b + 12], data[r + 4 : r + 12]
    return bytes(data)


def test_colour_profiles_are_converted_to_srgb(tmp_path):
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    tagged = read_upload(encode(red, "PNG", icc_profile=swapped_primaries_profile()), 3, 10**6)
    r, g, b = tagged.getpixel((4, 4))
    assert b > 200 and r < 60, (r, g, b)
    (tmp_path / "tagged.png").write_bytes(encode(red, "PNG", icc_profile=swapped_primaries_profile()))
    assert load_image(tmp_path / "tagged.png", 3).getpixel((4, 4)) == (r, g, b)  # `translate` reads it alike
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert read_upload(encode(red, "PNG", icc_profile=srgb), 3, 10**6).getpixel((4, 4)) == (255, 0, 0)
    assert read_upload(encode(red, "PNG", icc_profile=b"garbage"), 3, 10**6).getpixel((4, 4)) == (255, 0, 0)


def test_png_bytes_are_lossless():
    image = Image.frombytes("RGB", (16, 16), bytes(range(256)) * 3)
    out = Image.open(io.BytesIO(png_bytes(image)))
    assert out.format == "PNG" and out.tobytes() == image.tobytes()
