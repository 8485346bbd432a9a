"""Evaluators by model kind: ``gankit eval RUN`` looks the run's kind up here. Evaluators register
themselves from :mod:`gankit.metrics` (models never import metrics); a kind without its own evaluator
that translates images gets the translation evaluator (:func:`gankit.metrics.evaluate.evaluate_translator`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gankit.errors import ConfigError
from gankit.metrics.classifier import ADAPTATION_FITS
from gankit.models.base import Model, Translator
from gankit.models.registry import load_modules

BUILTIN_MODULES = ("gankit.metrics.evaluate", "gankit.metrics.digits", "gankit.metrics.cifar")
TRANSLATOR = "<translator>"


@dataclass
class EvalRequest:
    """What ``gankit eval MODEL`` asks for, whatever the model kind."""

    out: Path
    device: torch.device
    cache_dir: Path
    model_name: str = ""
    data_root: str | None = None
    dataset: str | None = None
    test_a: str | None = None
    test_b: str | None = None
    train_a: str | None = None
    train_b: str | None = None
    size: int | None = None
    max_images: int | None = None
    adaptation_images: int | None = None
    adaptation_fits: int = ADAPTATION_FITS
    """Digit runs: classifiers (consecutive seeds) each adaptation figure averages."""
    feature_adaptation: bool = False
    """Digit runs: also adapt the adaptation classifiers' features to the target (CyCADA's feature level)."""
    inception_weights: str | None = None
    classifier_config: Any = None
    classifier_size: int | None = None
    """The domain classifier's image size (None: the data set's ``classifier_size``)."""
    log: Callable[[str], None] = field(default=lambda msg: None)


Evaluator = Callable[[Model, EvalRequest], dict[str, Any]]
_EVALUATORS: dict[str, Evaluator] = {}


def register_evaluator(kind: str) -> Callable[[Evaluator], Evaluator]:
    """Decorator: ``fn(model, request) -> metrics`` evaluates models of ``kind`` (writes the report)."""

    def add(fn: Evaluator) -> Evaluator:
        _EVALUATORS[kind] = fn
        return fn

    return add


def evaluator_for(model: Model) -> Evaluator:
    load_modules()  # plugins may register evaluators too
    for name in BUILTIN_MODULES:
        importlib.import_module(name)
    if model.kind in _EVALUATORS:
        return _EVALUATORS[model.kind]
    if isinstance(model, Translator):
        return _EVALUATORS[TRANSLATOR]
    raise ConfigError(f"no evaluator is registered for {model.kind} models")
