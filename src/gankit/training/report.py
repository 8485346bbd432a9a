"""What a run leaves for people to look at: ``losses.csv``, ``losses.png`` and a self-contained
``index.html`` (no JavaScript, no network), plus optional TensorBoard scalars.

Every file is replaced atomically, so a browser refreshing the report or a run killed mid-write never
sees half a file; the CSV is append-only between rewrites and tolerates a torn last line.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from gankit.errors import GankitError, WriteError
from gankit.io import atomic_write_bytes as write_bytes_atomic
from gankit.io import free_bytes, write_all

__all__ = [
    "LOSS_GROUPS",
    "LossLog",
    "TensorBoardLogger",
    "TensorBoardUnavailable",
    "loss_group",
    "plot_losses",
    "read_losses",
    "write_index_html",
]


# --- loss log ---------------------------------------------------------------------------------------------
def _split_lines(text: str) -> list[str]:
    """Complete lines only: a last line without its newline is what a kill mid-append leaves behind."""
    lines = text.split("\n")
    lines.pop()  # "" after the final newline, or the torn fragment
    return [ln for ln in lines if ln.strip()]


def _parse(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """(value columns, rows as string fields); rows that do not fit the header are dropped."""
    if not path.is_file():
        return None, []
    lines = _split_lines(path.read_text(encoding="utf-8"))
    if not lines:
        return None, []
    header, *body = csv.reader(lines)
    if not header or header[0] != "step":
        raise GankitError(f"{path}: not a gankit loss log (header must start with 'step')")
    rows = []
    for fields in body:
        if len(fields) != len(header):
            continue
        try:
            int(fields[0])
        except ValueError:
            continue
        rows.append(fields)
    return header[1:], rows


def _torn(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) != b"\n"


def _fmt(v: Any) -> str:
    return repr(float(v))  # shortest exact round-trip: a resumed run writes byte-identical rows


class LossLog:
    """Append-only CSV of loss values keyed by step (``step,<sorted loss names>``).

    Reopening an existing file continues it. Keys that appear later widen the header (the file is
    rewritten once with the union of columns, blanks where a row had no value), so alternating key
    sets such as generator terms logged only every ``n_critic`` steps cost nothing after the first.
    """

    def __init__(self, csv_path: str | Path):
        self.path = Path(csv_path)
        self._keys: list[str] | None = None
        self._last_step: int | None = None
        self.truncate_after(None)  # load the header, and drop a line torn by a kill mid-append

    @property
    def keys(self) -> list[str]:
        return list(self._keys or [])

    def _rewrite(self, keys: list[str], rows: list[list[str]]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if keys or rows:
            w.writerow(["step", *keys])
        w.writerows(rows)
        write_bytes_atomic(self.path, buf.getvalue().encode("utf-8"))
        self._keys = keys or None
        self._last_step = int(rows[-1][0]) if rows else None

    def append(self, step: int, values: Mapping[str, float]) -> None:
        """Add one row. A step at or before the last logged one first drops the rows it replaces, so a
        run restarted from an older checkpoint never leaves duplicate or out-of-order steps."""
        if "step" in values:
            raise ValueError("'step' is the index column, not a loss name")
        step = int(step)
        if self._last_step is not None and step <= self._last_step:
            self.truncate_after(step - 1)
        if self._keys is not None and not set(values) <= set(self._keys):
            old_keys, rows = _parse(self.path)
            old_keys = old_keys or []
            keys = sorted(set(old_keys) | set(values))
            col = {k: i for i, k in enumerate(old_keys, start=1)}
            self._rewrite(keys, [[r[0], *(r[col[k]] if k in col else "" for k in keys)] for r in rows])
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if self._keys is None:
            self._keys = sorted(values)
            w.writerow(["step", *self._keys])
        w.writerow([step, *(_fmt(values[k]) if k in values else "" for k in self._keys)])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = buf.getvalue().encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            write_all(fd, row)  # one write per row: a kill tears at most this line
        except OSError as e:  # a full disk: cut the torn row off, keep the log as it was
            os.ftruncate(fd, size)
            raise WriteError(self.path, len(row), free_bytes(self.path.parent), e.strerror or str(e)) from None
        finally:
            os.close(fd)
        self._last_step = step

    def truncate_after(self, step: int | None) -> None:
        """Forget rows logged after ``step`` (the checkpoint a resumed run restarts from)."""
        keys, rows = _parse(self.path)
        kept = [r for r in rows if step is None or int(r[0]) <= step]
        if len(kept) != len(rows) or _torn(self.path):
            self._rewrite(keys or [], kept)
        else:
            self._keys, self._last_step = keys, int(kept[-1][0]) if kept else None

    @staticmethod
    def read(csv_path: str | Path) -> dict[str, list[float]]:
        """Columns as float lists, ``step`` first; a loss missing from a row reads as NaN."""
        keys, rows = _parse(Path(csv_path))
        out: dict[str, list[float]] = {"step": [float(r[0]) for r in rows]}
        for i, k in enumerate(keys or [], start=1):
            out[k] = [float(r[i]) if r[i] != "" else math.nan for r in rows]
        return out


read_losses = LossLog.read


# --- loss plot --------------------------------------------------------------------------------------------
LOSS_GROUPS = {
    "D": "discriminator",
    "G_adv": "generator (adversarial)",
    "cycle": "cycle consistency",
    "idt": "identity",
    "other": "other",
}


def loss_group(key: str) -> str:
    """Which panel of ``losses.png`` (and TensorBoard section) a loss belongs to, by name prefix."""
    return next((g for g in ("D", "G_adv", "cycle", "idt") if key.startswith(g)), "other")


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over ``window`` points, narrowing at the ends: no lag behind the raw curve."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    i = np.arange(len(y))
    lo = np.maximum(i - window // 2, 0)
    hi = np.minimum(i + (window - 1) // 2 + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def plot_losses(csv_path: str | Path, png_path: str | Path, smooth: int | None = None) -> Path:
    """One panel per loss group, raw curves faint under a bold moving average.

    ``smooth`` is the averaging window in logged rows (``None``: about 1/20 of the run, ≤ 1: raw only).
    Uses ``matplotlib.figure.Figure`` directly, so no pyplot state or backend switching leaks out.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = LossLog.read(csv_path)
    steps = np.asarray(data.pop("step"), dtype=float)
    groups: dict[str, list[str]] = {g: [] for g in LOSS_GROUPS}
    for k in data:
        groups[loss_group(k)].append(k)
    groups = {LOSS_GROUPS[g]: ks for g, ks in groups.items() if ks}
    if smooth is None:
        smooth = max(1, min(100, len(steps) // 20))

    ncols = 2 if len(groups) > 1 else 1
    nrows = max(1, math.ceil(len(groups) / ncols))
    fig = Figure(figsize=(6.2 * ncols, 3.3 * nrows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    if not groups or len(steps) == 0:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no losses logged yet", ha="center", va="center", color="0.4", fontsize=13)
        ax.set_axis_off()
    for n, (title, keys) in enumerate(groups.items()):
        ax = fig.add_subplot(nrows, ncols, n + 1)
        lows, highs = [], []
        for i, k in enumerate(keys):
            y = np.asarray(data[k], dtype=float)
            ok = np.isfinite(y)
            if not ok.any():
                continue
            x, y = steps[ok], y[ok]
            color = f"C{i}"
            if smooth > 1 and len(y) > 1:
                ys = moving_average(y, smooth)
                ax.plot(x, y, color=color, alpha=0.22, linewidth=0.8)
                ax.plot(x, ys, color=color, linewidth=1.8, label=k)
            else:
                ys = y
                ax.plot(x, y, color=color, linewidth=1.5, label=k)
            # Robust y-range: one early spike must not flatten the rest of the curve.
            if len(y) >= 20:
                lows.append(min(np.percentile(y, 1), ys.min()))
                highs.append(max(np.percentile(y, 99), ys.max()))
        if lows:
            lo, hi = min(lows), max(highs)
            margin = 0.06 * (hi - lo) if hi > lo else max(abs(hi), 1e-3) * 0.1
            ax.set_ylim(lo - margin, hi + margin)
        ax.set_title(title, fontsize=11, loc="left")
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3, linewidth=0.6)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return write_bytes_atomic(png_path, buf.getvalue())


# --- HTML report ------------------------------------------------------------------------------------------
_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1d1f23;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 56px; }
h1 { font-size: 1.55rem; margin: 0 0 4px; font-weight: 650; letter-spacing: -0.01em; word-break: break-word; }
h2 { font-size: 1.1rem; margin: 0 0 12px; font-weight: 600; }
.meta { color: #5f6470; font-size: 0.9rem; margin-bottom: 22px; }
section { background: #fff; border: 1px solid #e1e3e8; border-radius: 10px;
  padding: 18px 20px; margin: 0 0 18px; }
nav { font-size: 0.9rem; margin: -10px 0 20px; }
nav a { margin-right: 14px; }
a { color: #1f5fbf; text-decoration: none; } a:hover { text-decoration: underline; }
dl.kv { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr));
  gap: 2px 20px; margin: 0; }
dl.kv > div { display: flex; justify-content: space-between; gap: 12px; padding: 4px 0;
  border-bottom: 1px solid #eef0f3; min-width: 0; }
dl.kv dt { color: #5f6470; white-space: nowrap; }
dl.kv dd { margin: 0; font: 0.85rem/1.6 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  text-align: right; overflow-wrap: anywhere; min-width: 0; }
details > summary { cursor: pointer; font-weight: 600; margin-bottom: 8px; }
details:not([open]) > summary { margin-bottom: 0; }
img { max-width: 100%; height: auto; display: block; }
img.pixel { image-rendering: pixelated; }
.samples { display: flex; flex-wrap: wrap; gap: 22px 26px; align-items: flex-start; }
figure { margin: 0; max-width: 100%; }
figcaption { color: #5f6470; font-size: 0.9rem; margin-bottom: 6px; }
figcaption b { color: #1d1f23; }
.empty { color: #5f6470; font-style: italic; margin: 0; }
table.files { border-collapse: collapse; font-size: 0.92rem; }
table.files td { padding: 3px 18px 3px 0; }
table.files td.num { text-align: right; color: #5f6470; font-variant-numeric: tabular-nums; }
"""

_STEP_RE = re.compile(r"step_(\d+)")
_RUN_FILES = ("model.safetensors", "config.yaml", "losses.csv", "summary.json")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _href(rel: str) -> str:
    return _e(quote(rel.replace("\\", "/"), safe="/?=&"))


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, separators=(",", ":"), default=str)
    return str(v)


def _kv(d: Mapping[str, Any]) -> str:
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(_value(v))}</dd></div>" for k, v in d.items())
    return f'<dl class="kv">{items}</dl>'


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _img(run_dir: Path, rel: str, alt: str, *, lazy: bool, src: str | None = None) -> str:
    """Width/height from the file header reserve the space before a lazy image loads; small grids are
    shown at an integer zoom with crisp pixels instead of as thumbnails."""
    attrs, cls = "", ""
    try:
        from PIL import Image

        with Image.open(run_dir / rel) as im:
            w, h = im.size
        zoom = max(1, min(4, 560 // max(w, 1)))
        attrs = f' width="{w * zoom}" height="{h * zoom}"'
        cls = ' class="pixel"' if zoom > 1 else ""
    except Exception:  # missing or unreadable: the browser will show alt text
        pass
    loading = ' loading="lazy"' if lazy else ""
    return f'<img src="{_href(src or rel)}" alt="{_e(alt)}"{attrs}{cls}{loading}>'


def _file_order(p: Path) -> tuple[int, str]:
    m = _STEP_RE.search(p.name)
    return (int(m.group(1)) if m else -1, p.name)


def _files_section(run_dir: Path) -> str:
    ckpt_dir = run_dir / "checkpoints"
    ckpts = [p for p in ckpt_dir.glob("*") if p.is_file() and not p.name.startswith(".")]
    ckpts.sort(key=_file_order, reverse=True)
    rows = [(f"checkpoints/{p.name}", p) for p in ckpts]
    rows += [(name, run_dir / name) for name in _RUN_FILES if (run_dir / name).is_file()]
    if not rows:
        return '<p class="empty">No checkpoints yet.</p>'
    cells = [(f'<a href="{_href(rel)}">{_e(rel)}</a>', _size(p.stat().st_size)) for rel, p in rows]
    body = "".join(f'<tr><td>{a}</td><td class="num">{size}</td></tr>' for a, size in cells)
    return f'<table class="files">{body}</table>'


def write_index_html(
    run_dir: str | Path,
    title: str,
    config: Mapping[str, Any] | None,
    samples: Sequence[tuple[int, str]],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/index.html``: summary, sample grids newest first, loss plot, checkpoint links.

    ``samples`` are ``(step, path relative to run_dir)``. The page is one file with inline CSS and only
    relative links, so the run folder can be copied or served anywhere and still open offline.
    """
    run_dir = Path(run_dir)
    ordered = sorted(samples, key=lambda s: int(s[0]), reverse=True)
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    meta = [f"updated {now}", f"{len(ordered)} sample grid{'s' * (len(ordered) != 1)}"]
    if ordered:
        meta.append(f"latest step {int(ordered[0][0])}")

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">{_e(" · ".join(meta))}</div>',
        '<nav><a href="#summary">summary</a><a href="#samples">samples</a>'
        '<a href="#losses">losses</a><a href="#files">files</a></nav>',
        '<section id="summary"><h2>Summary</h2>',
    ]
    if extra:
        parts.append(_kv(extra))
    if config:
        opened = "" if extra else " open"  # the config is the summary when nothing else is given
        parts.append(f"<details{opened}><summary>Configuration ({len(config)} options)</summary>")
        parts.append(_kv(config) + "</details>")
    if not extra and not config:
        parts.append('<p class="empty">No configuration recorded.</p>')
    parts.append("</section>")

    parts.append('<section id="samples"><h2>Samples</h2>')
    if not ordered:
        parts.append('<p class="empty">No sample grids yet.</p>')
    parts.append('<div class="samples">')  # side by side while they fit, so progress reads left to right
    for i, (step, rel) in enumerate(ordered):
        img = _img(run_dir, str(rel), f"samples at step {int(step)}", lazy=i >= 3)
        parts.append(f'<figure id="step-{int(step)}"><figcaption><b>step {int(step)}</b> · '
                     f'<a href="{_href(str(rel))}">{_e(rel)}</a></figcaption>{img}</figure>')  # fmt: skip
    parts.append("</div></section>")

    parts.append('<section id="losses"><h2>Losses</h2>')
    png = run_dir / "losses.png"
    if png.is_file():
        # The plot is rewritten under the same name; the version query defeats stale browser caches.
        src = f"losses.png?v={png.stat().st_mtime_ns}"
        parts.append(_img(run_dir, "losses.png", "loss curves", lazy=False, src=src))
    else:
        parts.append('<p class="empty">No loss plot yet.</p>')
    parts.append("</section>")

    parts.append(f'<section id="files"><h2>Files</h2>{_files_section(run_dir)}</section>')
    parts.append("</main></body></html>\n")
    return write_bytes_atomic(run_dir / "index.html", "\n".join(parts).encode("utf-8"))


# --- TensorBoard ------------------------------------------------------------------------------------------
class TensorBoardUnavailable(GankitError, ImportError):
    """``--tensorboard`` was asked for but the optional ``tensorboard`` package is not installed."""


class TensorBoardLogger:
    """Thin wrapper over ``torch.utils.tensorboard.SummaryWriter``; scalars are filed under the same
    groups as ``losses.png`` (``discriminator/D_a``…) so both views read alike."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise TensorBoardUnavailable(
                f"TensorBoard logging needs the 'tensorboard' package ({e}): install it with "
                "`pip install tensorboard` (or `pip install 'gankit[tensorboard]'`), "
                "or turn --tensorboard off"
            ) from e
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"{loss_group(k)}/{k}", float(v), int(step))

    def image(self, tag: str, step: int, img) -> None:
        arr = np.asarray(img.convert("RGB"))
        self.writer.add_image(tag, arr, int(step), dataformats="HWC")

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
