"""Scores for the MNIST companion GANs, measured with a digit classifier the project trains itself.

- The **digit classifier** is :class:`gankit.metrics.classifier.SmallCNN` trained on all 60,000 real
  MNIST train digits (28 × 28, random translations) and scored on the 10,000 test digits; cached like
  the other project classifiers (``$GANKIT_CACHE/classifiers``). Its 128-d penultimate features are
  the feature space of ``fid_cls``.
- :func:`evaluate_cgan`: ``label_accuracy`` (share of generated digits that the classifier reads as the
  requested digit), ``fid_cls`` (all generated vs all real test digits) and ``fid_cls_0`` … ``fid_cls_9``
  (per digit, against the real test digits of that class), plus a 10-row grid.
- :func:`evaluate_sgan`: ``test_accuracy`` of the discriminator's class head on the 10,000 test digits,
  ``supervised_baseline_accuracy`` of the same classifier network trained here on the same labelled
  digits alone, and ``fid_cls`` of the generator's samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gankit.data.images import uint8_to_unit
from gankit.data.mnist import mnist_tensors, to_uint8
from gankit.data.recipes import mnist_source, resolve_data_root
from gankit.io import save_image_atomic
from gankit.metrics.classifier import ClassifierConfig, TrainedClassifier, train_label_classifier
from gankit.metrics.evaluate import Report, register_report_evaluator
from gankit.metrics.fid import feature_statistics, frechet_distance
from gankit.metrics.translation import confident_threshold, label_scores

DIGIT_CLASSIFIER = ClassifierConfig(
    image_size=28, width=16, steps=3000, batch_size=64, lr=2e-3, flip=False, max_train_per_class=60000, seed=0
)
"""The default digit classifier (≥ 99 % test accuracy; see docs/companions.md)."""

SAMPLES_PER_CLASS = 1000
"""Generated digits per class for label accuracy and FID (10,000 in all, like the real test set)."""

CLASSIFIER_DESCRIPTION = "digit classifier (SmallCNN, trained by gankit on the 60,000 MNIST train digits)"


def digit_classifier(
    data_root: str | Path | None, cache_dir: Path | None = None, config: ClassifierConfig | None = None
) -> TrainedClassifier:
    """The project's MNIST digit classifier (trained once, then read from the cache)."""
    root = resolve_data_root(data_root)
    train, test = mnist_source(root, "train"), mnist_source(root, "test")
    return train_label_classifier(train, test, "mnist-digits", 10, config or DIGIT_CLASSIFIER, cache_dir)


@torch.no_grad()
def classify(clf: TrainedClassifier, images: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """uint8 digits (N, 1, 28, 28) → (class probabilities (N, 10), penultimate features (N, D))."""
    clf.model.eval()
    probs, feats = [], []
    for i in range(0, len(images), batch_size):
        x = uint8_to_unit(images[i : i + batch_size].expand(-1, 3, -1, -1))
        f = clf.model.features(x)
        probs.append(clf.model.head(f).softmax(1).double().numpy())
        feats.append(f.double().numpy())
    return np.concatenate(probs), np.concatenate(feats)


def fid_between(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def _real_test(data_root, clf: TrainedClassifier) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """(test digits, their labels, classifier features, classifier probabilities)."""
    images, labels = mnist_tensors(data_root, "test")
    probs, feats = classify(clf, images)
    return images, labels, feats, probs


def _classifier_info(rep: Report, clf: TrainedClassifier) -> None:
    rep.metrics["classifier_test_accuracy"] = clf.test_accuracy
    rep.info["classifier"] = (
        f"{CLASSIFIER_DESCRIPTION}: {clf.test_accuracy:.2%} on the 10,000 test digits"
        f"{' (cached)' if clf.cached else f', trained in {clf.train_seconds:.0f}s'}"
    )
    if not clf.test_accuracy >= 0.99:
        rep.notes.append(
            f"the digit classifier scores only {clf.test_accuracy:.2%} on the test digits (< 99 %): "
            "label accuracy and fid_cls are rough"
        )


DESCRIPTIONS = {
    "label_accuracy": "share of generated digits the digit classifier reads as the requested digit (↑)",
    "label_accuracy_confident": "share read as the requested digit at least as surely as 99 % of real test digits "
    "are read (↑)",
    "label_rejected_share": "share the digit classifier reads less surely than 99 % of real test digits",
    "fid_cls": "Fréchet distance of digit-classifier features, generated vs the 10,000 real test digits (↓)",
    "classifier_test_accuracy": "the digit classifier's accuracy on the real MNIST test digits",
    "test_accuracy": "accuracy of the discriminator's class head on the 10,000 MNIST test digits (↑)",
    "supervised_baseline_accuracy": "the same network trained on the same labelled digits alone (↑)",
    "fid_cls_train_vs_test": "fid_cls of 10,000 real train digits vs the test digits: the floor of fid_cls",
}


def evaluate_cgan(
    model,
    out_dir: Path,
    *,
    data_root=None,
    device=None,
    cache_dir: Path | None = None,
    log=print,
    samples_per_class: int | None = None,
    classifier_config: ClassifierConfig | None = None,
) -> Report:
    """Label accuracy, fid_cls overall and per digit, and a 10-row grid of a conditional GAN."""
    del device
    n = samples_per_class or SAMPLES_PER_CLASS
    rep = Report(title="gankit eval · conditional GAN on MNIST")
    clf = digit_classifier(data_root, cache_dir, classifier_config)
    _classifier_info(rep, clf)
    _, real_labels, real_feats, real_probs = _real_test(data_root, clf)
    log(f"generating {n} digits per class")
    labels = torch.arange(10).repeat_interleave(n)
    gen = torch.Generator().manual_seed(0)
    fake = to_uint8(model.generate(labels, torch.randn(len(labels), model.config.z_dim, generator=gen)))
    probs, feats = classify(clf, fake)
    pred = torch.from_numpy(probs.argmax(1))
    rep.metrics["label_accuracy"] = float((pred == labels).double().mean())
    threshold = confident_threshold(real_probs)
    scores = label_scores(probs, labels.numpy(), threshold)
    rep.metrics["label_accuracy_confident"] = scores["confident"]
    rep.metrics["label_rejected_share"] = scores["rejected"]
    rep.info["label_confidence_threshold"] = round(threshold, 4)
    rep.metrics["fid_cls"] = fid_between(feats, real_feats)
    for k in range(10):
        mask = (labels == k).numpy()
        rep.metrics[f"fid_cls_{k}"] = fid_between(feats[mask], real_feats[(real_labels == k).numpy()])
        rep.info[f"label_accuracy_{k}"] = round(float((pred[labels == k] == k).double().mean()), 4)
        rep.descriptions[f"fid_cls_{k}"] = f"fid_cls of generated {k}s vs the real test {k}s (↓)"
    train, _ = mnist_tensors(data_root, "train")
    _, train_feats = classify(clf, train[torch.linspace(0, len(train) - 1, 10 * n).long()])
    rep.metrics["fid_cls_train_vs_test"] = fid_between(train_feats, real_feats)
    rep.descriptions.update(DESCRIPTIONS)
    rep.info["samples"] = f"{n} generated digits per class ({10 * n} in all), z ~ N(0, I) with seed 0"
    grid = model.sample(n=100, seed=0)
    save_image_atomic(grid, Path(out_dir) / "digits.png")
    rep.grids.append(("one row per requested digit", "digits.png"))
    return rep


def evaluate_sgan(
    model,
    out_dir: Path,
    *,
    data_root=None,
    device=None,
    cache_dir: Path | None = None,
    log=print,
    samples: int | None = None,
    classifier_config: ClassifierConfig | None = None,
    baseline_steps: int | None = None,
) -> Report:
    """Test accuracy of the semi-supervised discriminator vs the supervised-only baseline (trained here
    on the same labelled digits), fid_cls of its generator, and a sample grid."""
    del device
    c = model.config
    rep = Report(title="gankit eval · semi-supervised GAN on MNIST")
    test, test_labels = mnist_tensors(data_root, "test")
    rep.metrics["test_accuracy"] = float((model.classify(test) == test_labels).double().mean())
    log(
        f"training the supervised baseline on the same {c.labels} labelled digits "
        f"({baseline_steps or c.baseline_steps} steps)"
    )
    baseline = model.train_supervised_baseline(data_root, baseline_steps)
    rep.metrics["supervised_baseline_accuracy"] = float((model.classify(test, baseline) == test_labels).double().mean())
    clf = digit_classifier(data_root, cache_dir, classifier_config)
    _classifier_info(rep, clf)
    _, feats_real = classify(clf, test)
    n = samples or 10 * SAMPLES_PER_CLASS
    gen = torch.Generator().manual_seed(0)
    _, feats = classify(clf, to_uint8(model.generate(n, torch.randn(n, c.z_dim, generator=gen))))
    rep.metrics["fid_cls"] = fid_between(feats, feats_real)
    rep.descriptions.update(DESCRIPTIONS)
    rep.info["labels"] = f"{c.labels} labelled train digits ({c.labels // 10} per class), label seed {model.label_seed}"
    rep.info["baseline"] = (
        f"same discriminator network, cross-entropy on the labelled digits only, "
        f"{baseline_steps or c.baseline_steps} steps of batch {min(c.batch_size, c.labels)}"
    )
    save_image_atomic(model.sample(n=100, seed=0), Path(out_dir) / "samples.png")
    rep.grids.append(("generator samples", "samples.png"))
    return rep


register_report_evaluator("cgan", evaluate_cgan)
register_report_evaluator("sgan", evaluate_sgan)
