"""Sample grids without torchvision: rows of CHW tensors in [-1, 1] → one labelled RGB image.

Columns may mix 1-channel (gray) and 3-channel tensors and differ in size (a gray input beside its
colour translation); every cell is scaled to the tallest cell's height so rows line up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from gankit.data import images

BACKGROUND = (255, 255, 255)
TEXT = (34, 34, 38)
# mkstemp creates 0600 files; finished files get the usual umask-derived mode so a served run folder works.


def _rgb_cell(t: torch.Tensor) -> Image.Image:
    """CHW (or HW) in [-1, 1] → RGB cell (gray shown as RGB so cells of both kinds share a canvas)."""
    return images.tensor_to_pil(t).convert("RGB")


def _fit_height(img: Image.Image, height: int) -> Image.Image:
    """Integer upscales stay crisp (nearest); anything else is resampled smoothly (bicubic)."""
    w, h = img.size
    if h == height:
        return img
    exact = height % h == 0
    size = (w * height // h if exact else max(1, round(w * height / h)), height)
    return img.resize(size, Image.Resampling.NEAREST if exact else Image.Resampling.BICUBIC)


def _font(cell_height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Labels grow with the cells so they stay legible on 256 px grids and do not swamp 32 px ones.
    size = int(min(28, max(12, round(cell_height / 12))))
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _text_size(font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _draw_text(draw: ImageDraw.ImageDraw, x: int, cy: int, text: str, font) -> None:
    """Left edge at ``x``, vertically centred on ``cy`` (by bbox: anchors fail on bitmap fonts)."""
    left, top, _, bottom = font.getbbox(text)
    draw.text((x - left, cy - (top + bottom) // 2), text, fill=TEXT, font=font)


def make_grid(
    rows: Sequence[Sequence[torch.Tensor]],
    labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    pad: int = 2,
    min_height: int = 96,
) -> Image.Image:
    """Lay ``rows[i][j]`` out as an RGB grid on white, ``pad`` pixels between and around cells.

    ``labels`` head the columns and ``row_labels`` sit left of the rows (PIL's default font). A column
    is as wide as its widest cell or label; narrower cells are centred in it. Short rows leave blanks.
    Cells shorter than ``min_height`` are blown up by a whole factor (crisp pixels), so 32 px training
    samples stay visible next to their labels; ``min_height=0`` keeps native size.
    """
    if not rows or not any(rows):
        raise ValueError("make_grid needs at least one non-empty row")
    ncols = max(len(r) for r in rows)
    if labels is not None and len(labels) != ncols:
        raise ValueError(f"{len(labels)} column labels for {ncols} columns")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"{len(row_labels)} row labels for {len(rows)} rows")
    pad = max(0, int(pad))

    cells = [[_rgb_cell(t) for t in r] for r in rows]
    cell_h = max(im.height for r in cells for im in r)
    if cell_h < min_height:
        cell_h *= -(-min_height // cell_h)
    cells = [[_fit_height(im, cell_h) for im in r] for r in cells]

    font = _font(cell_h) if labels is not None or row_labels is not None else None
    gap = max(pad, 4)  # breathing room around text, even with pad=0
    line_h = _text_size(font, "Ag")[1] if font else 0
    col_w = [max((r[j].width for r in cells if j < len(r)), default=0) for j in range(ncols)]
    header_h = 0
    if labels is not None:
        col_w = [max(w, _text_size(font, str(lab))[0] + 2 * gap) for w, lab in zip(col_w, labels)]
        header_h = line_h + 2 * gap
    left_w = 0
    if row_labels is not None:
        left_w = max(_text_size(font, str(lab))[0] for lab in row_labels) + 2 * gap

    width = left_w + pad + sum(w + pad for w in col_w)
    height = header_h + pad + len(rows) * (cell_h + pad)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    col_x = [left_w + pad + sum(w + pad for w in col_w[:j]) for j in range(ncols)]

    if labels is not None:
        for x, w, lab in zip(col_x, col_w, labels):
            tw = _text_size(font, str(lab))[0]
            _draw_text(draw, x + (w - tw) // 2, header_h // 2, str(lab), font)
    for i, r in enumerate(cells):
        y = header_h + pad + i * (cell_h + pad)
        for j, im in enumerate(r):
            canvas.paste(im, (col_x[j] + (col_w[j] - im.width) // 2, y))
        if row_labels is not None:
            _draw_text(draw, gap, y + cell_h // 2, str(row_labels[i]), font)
    return canvas
