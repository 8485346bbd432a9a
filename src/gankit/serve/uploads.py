"""Reading an uploaded image safely: its pixel count is checked from the header before anything is
decoded (a decompression bomb is a few kilobytes that decode to gigabytes), then it is decoded once
and made "L"/"RGB" by the same code ``gankit translate`` uses (:func:`gankit.data.images.convert_image`:
colour profiles, EXIF orientation, transparency, 16-bit, CMYK, palettes)."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from gankit.data.images import convert_image
from gankit.io import encode_image
from gankit.serve.errors import BadUpload, TooLarge


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """The image in ``data``, opened lazily (only the header is read), or :class:`BadUpload` /
    :class:`TooLarge` when it is not an image or has more than ``max_pixels`` pixels."""
    if not data:
        raise BadUpload("the uploaded image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides below
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadUpload("not an image file (unknown or unsupported format)") from None
    except Image.DecompressionBombError:
        raise TooLarge(f"image has far more pixels than this server accepts ({max_pixels:,}, --max-pixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        raise BadUpload(f"corrupt or truncated image header ({e})") from None
    w, h = im.size
    if w * h > max_pixels:
        raise TooLarge(f"image is {w}×{h} = {w * h:,} pixels; this server accepts at most {max_pixels:,} "
                       "(--max-pixels)")  # fmt: skip
    return im


def read_upload(data: bytes, channels: int, max_pixels: int) -> Image.Image:
    """Uploaded bytes → an upright sRGB "L" (``channels=1``) or "RGB" (``channels=3``) image."""
    im = open_checked(data, max_pixels)
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        raise BadUpload(f"corrupt or truncated image ({e})") from None
    return convert_image(im, channels)


def png_bytes(image: Image.Image) -> bytes:
    """Lossless PNG: what a download of a translation should be (never a lossy WebP or JPEG)."""
    return encode_image(image, ".png")
