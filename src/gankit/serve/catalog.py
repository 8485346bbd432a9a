"""The models a server offers: each loaded once (without unpickling code), named after its run
folder, described by a card (kind, data, size, steps, and the metrics of ``RUN/eval/report.json``
when the run has been evaluated), with a few example inputs taken from the run's own data."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gankit.errors import GankitError
from gankit.io import save_image_atomic
from gankit.metrics.cli import default_out, run_folder
from gankit.metrics.report import DESCRIPTIONS
from gankit.models.base import Model, Translator
from gankit.models.persist import load_model

REPORT = "report.json"


@dataclass
class ModelCard:
    """What the page says about a model."""

    kind: str
    data: str
    size: int | None
    steps: int | None
    """Steps trained (from the run's summary.json), else the steps its config planned."""
    metrics: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    planned: bool = False
    """``steps`` comes from the config (no summary.json beside the model)."""

    def summary(self, name: str) -> str:
        """One line: what the model is."""
        size = f"{self.size} px" if self.size else "n/a"
        steps = f"{self.steps:,}" + (" (planned)" if self.planned else "") if self.steps is not None else "n/a"
        return f"**{name}**: {self.kind} · data: {self.data} · size: {size} · steps: {steps}"

    def evaluation(self) -> str:
        """A table of the report's headline figures, or how to make a report."""
        if not self.metrics:
            return f"No evaluation report yet (`gankit eval RUN` writes `RUN/eval/{REPORT}`)."
        shown = headline_metrics(self.metrics)
        lines = [f"`{self.report}`: {len(shown)} of {len(self.metrics)} figures (all of them: `GET /api/models` "
                 "and report.html beside it)", "", "| metric | meaning | value |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {k} | {_cell(DESCRIPTIONS.get(k, ''))} | {_cell(format_metric(v))} |" for k, v in shown.items()]
        return "\n".join(lines)

    def markdown(self, name: str) -> str:
        return f"{self.summary(name)}\n\n{self.evaluation()}"


HEADLINE_LIMIT = 12


def _cell(text: str) -> str:
    """``text`` inside a Markdown table cell (a bare "|" would end the cell)."""
    return str(text).replace("|", "\\|")


def headline_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures ``gankit eval`` describes (success, FID/KID, cycle L1, PSNR/SSIM, label accuracy…),
    at most :data:`HEADLINE_LIMIT`; a report holds dozens more (intervals, floors, ceilings)."""
    described = {k: v for k, v in metrics.items() if k in DESCRIPTIONS and not isinstance(v, (list, dict))}
    return dict(list((described or metrics).items())[:HEADLINE_LIMIT])


def format_metric(value: Any) -> str:
    """Numbers to four significant digits, intervals as [low, high], anything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return "n/a" if isinstance(value, float) and not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_metric(v) for v in value) + "]"
    return str(value)


@dataclass
class ServedModel:
    name: str
    source: Path
    """What was given on the command line: run folder, model.safetensors or checkpoint."""
    model: Model
    card: ModelCard
    examples: dict[str, list[Path]] = field(default_factory=dict)
    """Example input files per direction (translators) or under ``"input"`` (digit classifiers)."""

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(self.model.directions) if isinstance(self.model, Translator) else ()

    def describe(self) -> dict[str, Any]:
        """The entry of ``GET /api/models``."""
        return {"name": self.name, "kind": self.kind, "directions": list(self.directions),
                "data": self.card.data, "size": self.card.size, "steps": self.card.steps,
                "metrics": self.card.metrics}  # fmt: skip


def model_name(source: Path, taken: set[str]) -> str:
    """The run folder's name, numbered when two runs share it."""
    base = run_folder(source).resolve().name or "model"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_data(config: Any) -> str:
    if getattr(config, "domain_a", None):
        return f"folders A: {', '.join(config.domain_a)}; B: {', '.join(config.domain_b)}"
    return str(getattr(config, "dataset", "n/a"))


def model_card(model: Model, source: Path) -> ModelCard:
    """The card of a model loaded from ``source``: its run's summary.json and ``gankit eval``'s report."""
    config = model.config
    run = run_folder(source)
    size = model.image_size if isinstance(model, Translator) else getattr(config, "final_resolution", None)
    if size is None:
        size = {"mnist": 28, "cifar10": 32}.get(getattr(config, "dataset", ""))
    summary = _read_json(run / "summary.json")
    steps = summary.get("step", getattr(config, "steps", None))
    report = default_out(source) / REPORT
    metrics = _read_json(report).get("metrics", {}) if report.is_file() else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    return ModelCard(model.kind, describe_data(config), size, steps, metrics, report if metrics else None,
                     planned="step" not in summary)  # fmt: skip


def load_models(sources: Sequence[str | Path], device: str = "auto") -> list[ServedModel]:
    """Every model asked for, loaded once; a missing or unreadable one raises an error naming it."""
    served: list[ServedModel] = []
    for raw in sources:
        source = Path(raw)
        model = load_model(source, device)
        name = model_name(source, {m.name for m in served})
        served.append(ServedModel(name, source, model, model_card(model, source)))
    return served


# --- example inputs from the run's own data -----------------------------------------------------------
def translator_example_sources(model: Model) -> dict[str, Any]:
    """Image sources of the run's own test data (train data where there is no test split), per
    direction: domain A feeds a2b, domain B feeds b2a."""
    from gankit.data.loading import domain_pair

    try:
        pair = domain_pair(model.config, "test")
    except GankitError:  # recipes without a test split: use the training images
        pair = domain_pair(model.config, "train")
    sources = {"a2b": pair.source_a, "b2a": pair.source_b}
    return {d: sources[d] for d in model.directions}


def digit_example_sources(model: Model) -> dict[str, Any]:
    from gankit.data.recipes import mnist_source, resolve_data_root

    return {"input": mnist_source(resolve_data_root(model.config.data_root), "test")}


EXAMPLE_SOURCES: dict[str, Callable[[Model], dict[str, Any]]] = {"sgan": digit_example_sources}
"""Where a kind's example inputs come from (translators: their two domains)."""


def write_examples(served: ServedModel, n: int, folder: Path, log: Callable[[str], None] = print) -> None:
    """Save ``n`` evenly spaced example inputs per direction as PNG files in ``folder`` (files the server
    writes itself, so the page can offer them without opening any path a client names). Data that is
    not on this machine only costs the examples, with a warning."""
    find = EXAMPLE_SOURCES.get(served.kind)
    if find is None and isinstance(served.model, Translator):
        find = translator_example_sources
    if find is None or n < 1:
        return
    try:
        sources = find(served.model)
        for key, source in sources.items():
            count = min(n, len(source))
            picks = sorted({round(i * (len(source) - 1) / max(count - 1, 1)) for i in range(count)})
            paths = []
            for k, i in enumerate(picks):
                image: Image.Image = source.load(i)
                paths.append(save_image_atomic(image, folder / served.name / f"{key}_{k}.png"))
            served.examples[key] = paths
    except (GankitError, OSError) as e:
        log(f"warning: {served.name}: no example images ({e})")
