"""Scoring unconditional 32×32 CIFAR-10 generators (the progressive GAN) in the feature space of a
CIFAR-10 classifier trained by the project.

The classifier is a :class:`~gankit.metrics.classifier.SmallCNN` trained on the local CIFAR-10 train
split (``cifar10/train_labels.csv``: 5,000 images, 500 per class) and tested on the full 10,000-image
test split; it is cached like the other project classifiers. ``fid_cls`` is the Fréchet distance
between its penultimate features (``width * 8`` dimensions) of generated images and of the real test
images. These numbers rank models against each other inside the project; they are *not* comparable
with published (Inception) FIDs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data.grid import make_grid
from gankit.data.recipes import cifar_files, require_data, resolve_data_root
from gankit.data.sources import FileSource
from gankit.errors import ConfigError
from gankit.io import save_image_atomic
from gankit.metrics.classifier import (
    ClassifierConfig,
    TrainedClassifier,
    load_uint8,
    tensor_to_uint8,
    train_label_classifier,
)
from gankit.metrics.evaluate import Report, register_report_evaluator
from gankit.metrics.fid import fid_from_features, kid

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DEFAULT_CLASSIFIER = ClassifierConfig(image_size=32, width=16, steps=1500, batch_size=64, lr=2e-3, flip=True,
                                      max_train_per_class=10**6, seed=0)  # fmt: skip
"""The project's CIFAR-10 classifier: every local train image, flips and shifts, 1,500 Adam steps (128-d features)."""

EVAL_SAMPLES = 10_000
"""Generated images per evaluation (as many as the real test images)."""

EVAL_REAL: int | None = None
"""Real test images per evaluation (None: all 10,000)."""

DESCRIPTIONS = {
    "fid_cls": "FID between generated and real CIFAR-10 test images in the project classifier's penultimate "
    "features (lower is better)",
    "fid_cls_floor": "the same FID between the real train and real test images: what a perfect generator scores",
    "kid_cls": "KID (×1) between generated and real test images in the same features (lower is better)",
    "is_cls": "inception-style score exp(E KL(p(y|x) ‖ p(y))) with the CIFAR-10 classifier (higher, up to 10)",
    "is_cls_real": "the same score for the real test images",
    "classifier_test_accuracy": "accuracy of the project's CIFAR-10 classifier on the 10,000 test images",
    "resolution": "resolution the generator was at (upsampled to 32 for scoring)",
}


def cifar_sources(data_root: str | Path | None) -> tuple[FileSource, FileSource]:
    """(train, test) labelled sources of the local CIFAR-10 copy."""
    base = require_data(resolve_data_root(data_root) / "cifar10", "cifar10")
    tr, trl = cifar_files(base, "train")
    te, tel = cifar_files(base, "test")
    return (FileSource(tr, 3, "error", trl, f"{base}/train"), FileSource(te, 3, "error", tel, f"{base}/test"))


def cifar_classifier(data_root: str | Path | None, cache_dir: str | Path | None = None,
                     config: ClassifierConfig | None = None, use_cache: bool = True) -> TrainedClassifier:  # fmt: skip
    """The project's CIFAR-10 classifier, trained on the train split (or loaded from the cache)."""
    train, test = cifar_sources(data_root)
    return train_label_classifier(train, test, "cifar10", 10, config or DEFAULT_CLASSIFIER, cache_dir, use_cache)


def class_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) (the inception score's formula, Salimans et al. 2016, on one split)."""
    p = np.clip(probs, 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(axis=1).mean()))


@torch.no_grad()
def generated_uint8(model, n: int, *, seed: int = 0, batch: int = 500) -> torch.Tensor:
    """``n`` samples of a progressive GAN as uint8 (n, 3, 32, 32), quantized like saved PNGs."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        z = torch.randn(min(batch, n - i), model.config.latent_dim, generator=gen)
        out.append(tensor_to_uint8(model.generate(z), 32))
    return torch.cat(out)


def evaluate_progan(model, out_dir: Path, *, data_root, device, cache_dir: Path, log: Callable[[str], None],
                    n_samples: int | None = None, n_real: int | None = None,
                    classifier: ClassifierConfig | None = None, seed: int = 0) -> Report:  # fmt: skip
    """``gankit eval RUN`` for a progressive GAN: classifier-space FID/KID/score of ``n_samples``
    generated images against the real CIFAR-10 test images, plus sample and interpolation grids."""
    del device  # the model already sits on its device; the classifier runs on the CPU
    if model.config.dataset != "cifar10":
        raise ConfigError(f"fid_cls needs a cifar10 progressive GAN; this one was trained on {model.config.dataset}")
    n_samples = n_samples or EVAL_SAMPLES
    n_real = n_real or EVAL_REAL
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = Report(title="gankit eval · progressive GAN")
    rep.descriptions.update(DESCRIPTIONS)
    log("CIFAR-10 classifier (trained once, then cached)…")
    clf = cifar_classifier(data_root, cache_dir, classifier)
    log(f"classifier test accuracy {clf.test_accuracy:.3f} ({'cached' if clf.cached else 'trained'})")
    train, test = cifar_sources(data_root)
    rng = np.random.default_rng(seed)
    idx = None if n_real is None or n_real >= len(test) else np.sort(rng.choice(len(test), n_real, replace=False))
    log(f"features of {n_real or len(test)} real test and {len(train)} real train images…")
    real_probs, real_feats = clf.predict(load_uint8(test, 32, idx))
    _, train_feats = clf.predict(load_uint8(train, 32))
    log(f"features of {n_samples} generated images…")
    model.eval()
    fake = generated_uint8(model, n_samples, seed=seed)
    fake_probs, fake_feats = clf.predict(fake)
    m: dict[str, Any] = rep.metrics
    m["fid_cls"] = fid_from_features(fake_feats, real_feats)
    m["fid_cls_floor"] = fid_from_features(train_feats, real_feats)
    subset = min(1000, len(fake_feats), len(real_feats))
    m["kid_cls"] = kid(fake_feats, real_feats, subsets=50, subset_size=subset, seed=seed)[0]
    m["is_cls"] = class_score(fake_probs)
    m["is_cls_real"] = class_score(real_probs)
    m["classifier_test_accuracy"] = clf.test_accuracy
    m["resolution"] = model.resolution()
    hist = np.bincount(fake_probs.argmax(1), minlength=10) / len(fake_probs)
    depth, alpha = model.phase(model.step)
    c = model.config
    rep.info.update({
        "step": model.step, "alpha": alpha, "generator": "moving average" if model.G_ema is not None else "G",
        "samples": n_samples, "real_test_images": len(real_feats), "real_train_images": len(train_feats),
        "classifier": {"width": clf.config.width, "steps": clf.config.steps, "features": clf.model.feature_dim,
                       "train_seconds": round(clf.train_seconds, 1), "cached": clf.cached},
        "predicted_classes": {k: round(float(v), 4) for k, v in zip(CLASSES, hist)},
        "techniques": {"fade_in": c.fade_in, "minibatch_std": c.minibatch_std, "equalized_lr": c.equalized_lr,
                       "pixel_norm": c.pixel_norm},
        "gan_loss": c.gan_loss,
    })  # fmt: skip
    rep.notes.append(
        "fid_cls uses a small classifier trained by the project on 5,000 CIFAR-10 images; compare it with "
        "other runs scored the same way and with fid_cls_floor, not with published Inception FIDs."
    )
    if depth < model.phases - 1:
        res = model.resolution()
        rep.notes.append(f"the generator is still at {res}×{res}; its samples were upsampled to 32×32 for scoring")
    with torch.no_grad():
        save_image_atomic(model.sample(n=64, seed=seed), out_dir / "samples.png")
        save_image_atomic(model.sample(n=64, interpolate=True, seed=seed), out_dir / "interpolation.png")
    reals = load_uint8(test, 32, range(64)).float().div(127.5).sub(1)
    save_image_atomic(make_grid([list(reals[i : i + 8]) for i in range(0, 64, 8)], min_height=64), out_dir / "real.png")
    rep.grids += [("generated samples", "samples.png"), ("latent interpolation (slerp)", "interpolation.png"),
                  ("real CIFAR-10 test images", "real.png")]  # fmt: skip
    for k, v in m.items():
        if isinstance(v, float) and not math.isfinite(v):
            rep.notes.append(f"{k} is not finite")
    return rep


register_report_evaluator("progan", evaluate_progan)
