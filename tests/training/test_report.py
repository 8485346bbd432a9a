"""Sample grids, atomic image writes, the loss log and plot, the HTML report and the TensorBoard wrapper."""

from __future__ import annotations

import math
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data.grid import make_grid
from gankit.data.images import tensor_to_pil
from gankit.io import save_image_atomic
from gankit.training.report import (
    LossLog,
    TensorBoardLogger,
    TensorBoardUnavailable,
    loss_group,
    plot_losses,
    write_index_html,
)

RED, GREEN, BLUE = (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-1.0, -1.0, 1.0)


def solid(rgb, size=8) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(-1, 1, 1).expand(-1, size, size).clone()


def px(img: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return img.getpixel((x, y))


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


# --- grid -------------------------------------------------------------------------------------------------
def test_grid_places_cells_at_known_positions():
    img = make_grid([[solid(RED), solid(GREEN)], [solid(BLUE), solid((0.0, 0.0, 0.0))]], pad=2, min_height=0)
    assert img.mode == "RGB" and img.size == (2 + 2 * (8 + 2), 2 + 2 * (8 + 2))
    cell = lambda i, j: (2 + j * 10, 2 + i * 10)  # noqa: E731
    for (i, j), colour in {(0, 0): (255, 0, 0), (0, 1): (0, 255, 0), (1, 0): (0, 0, 255)}.items():
        x, y = cell(i, j)
        assert px(img, x, y) == px(img, x + 7, y + 7) == colour
    assert px(img, *cell(1, 1)) == (128, 128, 128)  # 0 maps to mid-gray
    assert px(img, 0, 0) == px(img, 10, 5) == (255, 255, 255)  # border and gutter are padding


def test_grid_mixes_gray_and_colour_columns_of_different_sizes():
    gray = torch.full((1, 4, 4), -1.0)
    gray[0, 0, 0] = 1.0  # one white pixel: nearest 2x upscale turns it into a 2x2 block
    img = make_grid([[gray, solid(RED, 8)]], pad=0, min_height=0)
    assert img.size == (16, 8)
    arr = np.asarray(img)
    assert (arr[:2, :2] == 255).all() and (arr[2:8, 2:8] == 0).all()
    assert (arr[:, :8, 0] == arr[:, :8, 1]).all() and (arr[:, :8, 1] == arr[:, :8, 2]).all()  # gray as RGB
    assert px(img, 12, 4) == (255, 0, 0)


def test_grid_resizes_non_integer_ratio_and_blanks_short_rows():
    img = make_grid([[solid(GREEN, 6), solid(RED, 8)], [solid(BLUE, 8)]], pad=1, min_height=0)
    # column 0 holds an 8 px (upscaled 6 px) and an 8 px cell; row 1 has no second cell
    assert img.size == (1 + 8 + 1 + 8 + 1, 1 + 2 * (8 + 1))
    assert px(img, 1, 1) == (0, 255, 0)
    assert px(img, 1 + 8 + 1 + 3, 1 + 9 + 3) == (255, 255, 255)


def test_small_cells_are_blown_up_by_a_whole_factor():
    gray = torch.full((1, 32, 32), 1.0)
    gray[0, 0, 0] = -1.0
    img = make_grid([[gray, solid(RED, 16)]], pad=0)  # default min_height=96: 3x, and 6x for the 16 px cell
    assert img.size == (96 + 96, 96)
    arr = np.asarray(img)
    assert (arr[:3, :3] == 0).all() and (arr[3:, 3:96] == 255).all()
    assert make_grid([[gray]], pad=0, min_height=40).size == (64, 64)
    assert make_grid([[solid(RED, 100)]], pad=0).size == (100, 100)


def test_labels_make_the_grid_taller_and_wider():
    rows = [[solid(RED), solid(GREEN)], [solid(BLUE), solid(RED)]]
    plain = make_grid(rows)
    headed = make_grid(rows, labels=["real", "translated"])
    both = make_grid(rows, labels=["real", "translated"], row_labels=["A0", "B0"])
    assert headed.height > plain.height and headed.width >= plain.width  # long label widens its column
    assert both.width > headed.width and both.height == headed.height
    header = np.asarray(headed)[: headed.height - plain.height]
    assert (header < 128).any(), "no label text drawn above the columns"


def test_grid_rejects_bad_input_and_tames_nan():
    with pytest.raises(ValueError):
        make_grid([])
    with pytest.raises(ValueError):
        make_grid([[solid(RED)]], labels=["a", "b"])
    with pytest.raises(ValueError):
        make_grid([[torch.zeros(2, 4, 4)]])
    t = torch.tensor([[[math.nan, 5.0], [-7.0, 0.0]]])
    assert list(np.asarray(tensor_to_pil(t).convert("RGB"))[..., 0].ravel()) == [128, 255, 0, 128]


def test_save_image_atomic_leaves_only_the_final_file(tmp_path, monkeypatch):
    img = make_grid([[solid(RED), solid(BLUE)]])
    out = save_image_atomic(img, tmp_path / "samples" / "step_0000001.png")
    assert out == tmp_path / "samples" / "step_0000001.png"
    with Image.open(out) as back:
        assert back.format == "PNG" and np.array_equal(np.asarray(back), np.asarray(img))
    with Image.open(save_image_atomic(img.convert("RGBA"), tmp_path / "samples" / "x.jpg")) as back:
        assert back.format == "JPEG"
    assert leftovers(tmp_path / "samples") == []
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600

    with pytest.raises(ValueError, match="suffix"):
        save_image_atomic(img, tmp_path / "samples" / "grid.unknown")

    def crash(*_):
        raise OSError("disk full")

    before = out.read_bytes()
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_image_atomic(make_grid([[solid(GREEN)]]), out)
    assert out.read_bytes() == before and leftovers(tmp_path / "samples") == []


# --- loss log ---------------------------------------------------------------------------------------------
def test_loss_log_appends_with_a_sorted_header(tmp_path):
    log = LossLog(tmp_path / "losses.csv")
    log.append(10, {"cycle_a": 1.5, "D_a": 0.25})
    log.append(20, {"cycle_a": 1.0, "D_a": 0.5})
    assert (tmp_path / "losses.csv").read_text() == "step,D_a,cycle_a\n10,0.25,1.5\n20,0.5,1.0\n"
    expected = {"step": [10.0, 20.0], "D_a": [0.25, 0.5], "cycle_a": [1.5, 1.0]}
    assert LossLog.read(tmp_path / "losses.csv") == expected
    with pytest.raises(ValueError):
        log.append(30, {"step": 1.0})


def test_loss_log_survives_reopen_truncate_and_torn_line(tmp_path):
    path = tmp_path / "losses.csv"
    log = LossLog(path)
    for s in (1, 2, 3, 4):
        log.append(s, {"D_a": s / 10})
    with open(path, "a") as f:
        f.write("5,0.")  # a kill in the middle of an append
    log = LossLog(path)
    assert path.read_text().endswith("4,0.4\n"), "torn line not dropped on reopen"
    log.truncate_after(2)  # resumed from the step-2 checkpoint
    log.append(3, {"D_a": 0.33})
    assert LossLog.read(path) == {"step": [1.0, 2.0, 3.0], "D_a": [0.1, 0.2, 0.33]}
    log.append(2, {"D_a": 0.22})  # going back in time replaces the later rows instead of duplicating
    assert LossLog.read(path)["step"] == [1.0, 2.0]
    assert leftovers(tmp_path) == []


def test_resumed_log_is_byte_identical_to_an_uninterrupted_one(tmp_path):
    values = lambda s: {"D_a": s * 0.1, "G_adv_a2b": 1 / (s + 3), "cycle_a": math.pi / s}  # noqa: E731
    straight = LossLog(tmp_path / "a.csv")
    for s in range(1, 9):
        straight.append(s, values(s))
    killed = LossLog(tmp_path / "b.csv")
    for s in range(1, 7):  # ran past the step-4 checkpoint, then was killed
        killed.append(s, values(s))
    resumed = LossLog(tmp_path / "b.csv")
    resumed.truncate_after(4)
    for s in range(5, 9):
        resumed.append(s, values(s))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_loss_log_widens_header_when_keys_change(tmp_path):
    path = tmp_path / "losses.csv"
    log = LossLog(path)
    log.append(1, {"D_a": 1.0})  # generator terms only every n_critic steps
    log.append(2, {"D_a": 2.0, "G_adv_a2b": 3.0})
    log.append(3, {"D_a": 4.0})
    assert path.read_text().splitlines() == ["step,D_a,G_adv_a2b", "1,1.0,", "2,2.0,3.0", "3,4.0,"]
    data = LossLog.read(path)
    assert data["D_a"] == [1.0, 2.0, 4.0]
    assert math.isnan(data["G_adv_a2b"][0]) and data["G_adv_a2b"][1] == 3.0
    assert LossLog(path).keys == ["D_a", "G_adv_a2b"]


# --- loss plot --------------------------------------------------------------------------------------------
def test_loss_groups():
    assert [loss_group(k) for k in ("D_a", "D_b_gp", "G_adv_a2b", "cycle_b", "idt_a", "G_total")] == [
        "D",
        "D",
        "G_adv",
        "cycle",
        "idt",
        "other",
    ]


@pytest.mark.parametrize("smooth", [None, 1, 5])
def test_plot_losses_writes_a_png(tmp_path, smooth):
    log = LossLog(tmp_path / "losses.csv")
    for s in range(0, 400, 10):
        v = {"D_a": 0.3 + 0.01 * math.sin(s), "cycle_a": math.exp(-s / 100), "G_total": 2.0, "idt_a": 0.1}
        if s % 20:
            v["G_adv_a2b"] = math.nan if s == 50 else 0.7
        log.append(s, v)
    out = plot_losses(tmp_path / "losses.csv", tmp_path / "losses.png", smooth=smooth)
    with Image.open(out) as im:
        im.verify()
        assert im.format == "PNG" and im.width > 300 and im.height > 200
    assert leftovers(tmp_path) == []


def test_plot_losses_without_rows(tmp_path):
    (tmp_path / "losses.csv").write_text("step,D_a\n")
    with Image.open(plot_losses(tmp_path / "losses.csv", tmp_path / "losses.png")) as im:
        assert im.format == "PNG" and im.width > 0


# --- HTML report ------------------------------------------------------------------------------------------
def make_run(tmp_path: Path) -> tuple[Path, list[tuple[int, str]]]:
    run = tmp_path / "run"
    samples = []
    for step in (200, 600, 400, 1000, 800):
        path = save_image_atomic(make_grid([[solid(RED)]]), run / "samples" / f"step_{step:07d}.png")
        samples.append((step, f"samples/{path.name}"))
    (run / "checkpoints").mkdir()
    for step in (400, 600):
        (run / "checkpoints" / f"step_{step:07d}.pt").write_bytes(b"\0" * 2048)
    (run / "checkpoints" / ".step_0000800.pt.abc.tmp").write_bytes(b"")  # a save in progress
    return run, samples


def test_index_html_lists_samples_newest_first_and_links_checkpoints(tmp_path):
    run, samples = make_run(tmp_path)
    LossLog(run / "losses.csv").append(1, {"D_a": 1.0})
    plot_losses(run / "losses.csv", run / "losses.png")
    config = {"dataset": "apple2orange", "lr": 0.0002, "note": "<b>bold</b> & co"}
    out = write_index_html(run, "CycleGAN · step 600/1000", config, samples, extra={"step": 600})
    assert out == run / "index.html"
    text = out.read_text()
    positions = [text.index(f'src="samples/step_{s:07d}.png"') for s in (1000, 800, 600, 400, 200)]
    assert positions == sorted(positions), "samples not newest first"
    assert "<b>step 1000</b>" in text
    # sizes reserved before lazy loading; a 100 px grid is shown 4x with crisp pixels
    assert 'alt="samples at step 200" width="400" height="400" class="pixel" loading="lazy">' in text
    assert 'step_0001000.png" alt="samples at step 1000" width="400" height="400" class="pixel">' in text
    assert re.search(r'<img src="losses\.png\?v=\d+"', text)
    assert 'href="checkpoints/step_0000600.pt"' in text and 'href="checkpoints/step_0000400.pt"' in text
    assert text.index("step_0000600.pt") < text.index("step_0000400.pt")
    assert ".tmp" not in text and 'href="losses.csv"' in text
    assert "<details" in text and "apple2orange" in text and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert leftovers(run) == []


def test_index_html_escapes_title_and_copes_with_an_empty_run(tmp_path):
    run = tmp_path / "empty"
    text = write_index_html(run, "<script>alert('x')</script>", None, []).read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "No sample grids yet" in text and "No checkpoints yet" in text


# --- TensorBoard ------------------------------------------------------------------------------------------
def test_tensorboard_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="pip install tensorboard") as info:
        TensorBoardLogger(tmp_path / "tb")
    assert isinstance(info.value, TensorBoardUnavailable)


def test_tensorboard_logger_forwards_to_summary_writer(tmp_path, monkeypatch):
    calls = []

    class FakeWriter:
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append(("scalar", tag, value, step))

        def add_image(self, tag, arr, step, dataformats):
            calls.append(("image", tag, arr.shape, step, dataformats))

        def close(self):
            calls.append(("close",))

    fake = types.SimpleNamespace(SummaryWriter=FakeWriter)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    with TensorBoardLogger(tmp_path / "tb") as tb:
        tb.scalars(5, {"D_a": 0.5, "cycle_b": torch.tensor(1.25).item()})
        tb.image("samples", 5, make_grid([[solid(RED, 4), solid(BLUE, 4)]], pad=0, min_height=0))
    assert calls == [
        ("init", str(tmp_path / "tb")),
        ("scalar", "D/D_a", 0.5, 5),
        ("scalar", "cycle/cycle_b", 1.25, 5),
        ("image", "samples", (4, 8, 3), 5, "HWC"),
        ("close",),
    ]
