"""Evaluation reports: ``report.json`` (``{"metrics": …, "info": …, "notes": …, "grids": …}``) and a
self-contained ``report.html``; the metric descriptions every evaluator shares."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gankit.io import atomic_write_text
from gankit.metrics.classifier import RELIABLE_ACCURACY


@dataclass
class Report:
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    grids: list[tuple[str, str]] = field(default_factory=list)  # (title, file name)
    descriptions: dict[str, str] = field(default_factory=dict)  # metric → meaning, beyond DESCRIPTIONS
    title: str = "gankit eval"

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "info": self.info,
            "notes": self.notes,
            "grids": [{"title": t, "file": f} for t, f in self.grids],
        }


def _json_value(v):
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


# --- output ---------------------------------------------------------------------------------------------
DESCRIPTIONS = {
    "classifier_test_accuracy": "domain classifier, held-out accuracy",
    "success_a2b": "A→B translations classified as B",
    "floor_a2b": "untranslated A classified as B (floor)",
    "success_b2a": "B→A translations classified as A",
    "floor_b2a": "untranslated B classified as A (floor)",
    "fid_cls_a2b": "FID, classifier features, G(A) vs B",
    "fid_cls_b2a": "FID, classifier features, F(B) vs A",
    "fid_cls_floor": "FID, classifier features, A vs B",
    "kid_cls_a2b": "KID, classifier features, G(A) vs B",
    "kid_cls_b2a": "KID, classifier features, F(B) vs A",
    "kid_cls_floor": "KID, classifier features, A vs B",
    "cycle_l1_a": "mean |F(G(a)) − a| on [-1, 1]",
    "cycle_l1_b": "mean |G(F(b)) − b| on [-1, 1]",
    "psnr_a2b": "PSNR (dB) of G(A) vs the true B images (colorization: true colours)",
    "ssim_a2b": "SSIM of G(A) vs the true B images",
    "psnr_floor_a2b": "PSNR (dB) of the untranslated input vs the true B images",
    "ssim_floor_a2b": "SSIM of the untranslated input vs the true B images",
    "psnr_b2a": "PSNR (dB) of F(B) vs the true A images",
    "ssim_b2a": "SSIM of F(B) vs the true A images",
    "psnr_floor_b2a": "PSNR (dB) of the untranslated input vs the true A images",
    "ssim_floor_b2a": "SSIM of the untranslated input vs the true A images",
    "classifier_reliable": f"classifier accuracy ≥ {RELIABLE_ACCURACY}",
    "label_classifier_accuracy_a": "digit classifier of domain A, test accuracy",
    "label_classifier_accuracy_b": "digit classifier of domain B, test accuracy",
    "label_preservation_a2b": "G(A) keeps the source digit label",
    "label_preservation_b2a": "F(B) keeps the source digit label",
    "label_floor_a2b": "untranslated A read with B's digit classifier",
    "label_floor_b2a": "untranslated B read with A's digit classifier",
    "fid_inception": "FID, Inception features",
    "kid_inception": "KID, Inception features",
    "is_inception": "Inception Score of the fakes",
}


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def format_table(metrics: dict[str, Any], descriptions: dict[str, str] | None = None) -> str:
    """Plain-text table of metrics: name, value, description."""
    descriptions = {**DESCRIPTIONS, **(descriptions or {})}
    width = max((len(k) for k in metrics), default=6)
    lines = [f"{'metric':<{width}}  {'value':>10}  description", "-" * (width + 40)]
    for k, v in metrics.items():
        lines.append(f"{k:<{width}}  {_fmt(v):>10}  {descriptions.get(k, '')}".rstrip())
    return "\n".join(lines)


def write_report(rep: Report, out_dir: Path) -> dict[str, Any]:
    """``out_dir/report.json`` (``{"metrics": …, "info": …}``) and ``report.html``, written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep.metrics = {k: _json_value(v) for k, v in rep.metrics.items()}
    atomic_write_text(out_dir / "report.json", json.dumps(rep.to_json(), indent=2, default=str))
    atomic_write_text(out_dir / "report.html", _html(rep))
    return rep.metrics


def _html(rep: Report) -> str:
    e = html.escape
    descriptions = {**DESCRIPTIONS, **rep.descriptions}
    rows = "\n".join(
        f"<tr><td><code>{e(k)}</code></td><td class=num>{e(_fmt(v))}</td><td>{e(descriptions.get(k, ''))}</td></tr>"
        for k, v in rep.metrics.items()
    )
    info = "\n".join(f"<li>{e(k)}: {e(json.dumps(v, default=str))}</li>" for k, v in rep.info.items())
    notes = "".join(f"<li>{e(n)}</li>" for n in rep.notes)
    grids = "\n".join(
        f"<figure><img src='{e(f)}' alt='{e(t)}'><figcaption>{e(t)}</figcaption></figure>" for t, f in rep.grids
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{e(rep.title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 10px}} .num{{text-align:right}}
table{{border-collapse:collapse}} tr:nth-child(even){{background:#f3f3f3}} figure{{display:inline-block}}
.notes{{color:#a33}}</style></head><body>
<h1>{e(rep.title)}</h1>
<table><tr><th>metric</th><th>value</th><th>description</th></tr>
{rows}
</table>
<ul class=notes>{notes}</ul>
<h2>Cases</h2>
{grids}
<h2>Details</h2><ul>{info}</ul>
</body></html>
"""
