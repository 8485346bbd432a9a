"""Domain adaptation measured as CyCADA measures it (Hoffman et al., ICML 2018, Table 1): translate the
labelled source training split into the target domain, train a digit classifier on the translations
with the source labels, and test it on the target's real test split. Beside it:

- ``source_only_accuracy_D``: the same classifier trained on the untranslated source split (the floor:
  a translator that helps must beat it);
- ``oracle_accuracy_T``: trained on the target's own labelled training split (the ceiling).

The three classifiers share one architecture and recipe (:data:`ADAPTATION_CLASSIFIER`, the judge's
family, trained on whole splits); only the training images differ. A translator that returned target
images of the right label would score the oracle.

One classifier's accuracy depends on its own seed by about a point (MNIST → USPS translations of one
run: 0.877–0.897 over five seeds), as much as two translators differ; so each figure is the mean over
``fits`` classifiers of consecutive seeds (``--adaptation-fits``, default 3), and ``*_std`` keys give
their spread.

With ``--feature-adaptation`` (CyCADA's feature level, eq. 5) the classifier is also trained to make its
features of the unlabelled target train split indistinguishable from those of its training images
(:func:`gankit.nn.classifiers.fit_classifier` with target images):

- ``feature_adaptation_accuracy_D``: on the translations (pixel- and feature-level: CyCADA's full model);
- ``feature_only_accuracy_D``: on the untranslated source (feature level alone: what the translator adds
  beyond it is the difference)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from gankit.data.sources import ImageSource
from gankit.inference.translate import translate_tensor
from gankit.metrics.classifier import (
    ClassifierConfig,
    accuracy,
    fit,
    load_uint8,
    tensor_to_uint8,
    train_label_classifier,
)
from gankit.metrics.translation import LabelBlock, MetricBlock, choose, metric_block, stream

ADAPTATION_CLASSIFIER = ClassifierConfig(image_size=32, flip=False, max_train_per_class=10**9, seed=1)
"""Whole training splits (the cap exceeds every split), seed 1: another seed than the judge's."""
TRANSLATE_BATCH = 256

DESCRIPTIONS = {
    "adaptation_accuracy": "a digit classifier trained on the translations of the whole source train split "
    "with the source labels, tested on the target's real test split (↑; CyCADA)",
    "source_only_accuracy": "the same classifier trained on the untranslated source train split, tested on "
    "the target's test split: the floor a useful translator beats",
    "oracle_accuracy": "the same classifier trained on the target's own labelled train split: the ceiling",
    "feature_adaptation_accuracy": "adaptation accuracy with the classifier's features also aligned to the "
    "unlabelled target train split (CyCADA pixel + feature level)",
    "feature_only_accuracy": "the untranslated source with the same feature alignment (feature level alone)",
}


def translated_split(model, direction: str, source: ImageSource, size: int, indices: np.ndarray, out_size: int,
                     device) -> torch.Tensor:  # fmt: skip
    """uint8 (N, 3, out_size, out_size) translations of ``source[indices]`` at the model's ``size``."""
    gen = model.generator(direction)
    out = [tensor_to_uint8(translate_tensor(gen, x.to(device)).float().cpu(), out_size)
           for x in stream(source, indices, size, TRANSLATE_BATCH)]  # fmt: skip
    return torch.cat(out)


def adaptation_accuracy(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    config: ClassifierConfig = ADAPTATION_CLASSIFIER,
    target_images: torch.Tensor | None = None,
) -> float:
    """Accuracy on (test images, labels) of the recipe's classifier trained on (train images, labels),
    its features aligned to unlabelled ``target_images`` when given."""
    return accuracy(fit(train_images, train_labels, 10, config, target_images), test_images, test_labels)


def adaptation_accuracies(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    configs: list[ClassifierConfig],
    target_images: torch.Tensor | None = None,
) -> list[float]:
    """:func:`adaptation_accuracy` of one classifier per config (seed)."""
    return [adaptation_accuracy(train_images, train_labels, test_images, test_labels, c, target_images)
            for c in configs]  # fmt: skip


@metric_block
class AdaptationBlock(MetricBlock):
    """``adaptation_accuracy_D``, ``source_only_accuracy_D`` and ``oracle_accuracy_T`` for every direction
    of a digit translator whose four splits are labelled."""

    applies = LabelBlock.applies

    def finish(self):
        ctx, m = self.ctx, self.ctx.metrics
        cfg = ADAPTATION_CLASSIFIER
        s = cfg.image_size
        fits = [replace(cfg, seed=cfg.seed + k) for k in range(ctx.adaptation_fits)]
        loaded: dict[int, torch.Tensor] = {}

        def record(key: str, values: list[float]) -> None:  # key: name_direction
            name, direction = key.rsplit("_", 1)
            m[key] = float(np.mean(values))
            if len(values) > 1:
                m[f"{name}_std_{direction}"] = float(np.std(values))

        def whole(source: ImageSource) -> torch.Tensor:  # a2b's unlabelled target is b2a's source: load once
            if id(source) not in loaded:
                loaded[id(source)] = load_uint8(source, s)
            return loaded[id(source)]

        labels_seen = sorted(getattr(ctx.model, "labels_seen_in_training", ()))
        for d in ctx.directions:
            source_train = ctx.train.source_a if d.name == "a2b" else ctx.train.source_b
            source_test = ctx.test.source_a if d.name == "a2b" else ctx.test.source_b
            letters = d.name[0], d.target_letter
            target_x = load_uint8(d.target_test, s)
            target_y = torch.from_numpy(np.asarray(d.target_test.labels, dtype=np.int64))
            names = f"{ctx.test.name}-{letters[0]}-whole", f"{ctx.test.name}-{letters[1]}-whole"
            source_only = [train_label_classifier(source_train, source_test, names[0], 10, c, ctx.cache_dir).model
                           for c in fits]  # fmt: skip
            oracle = [train_label_classifier(d.target_train, d.target_test, names[1], 10, c, ctx.cache_dir)
                      for c in fits]  # fmt: skip
            record(f"source_only_accuracy_{d.name}", [accuracy(c, target_x, target_y) for c in source_only])
            record(f"oracle_accuracy_{letters[1]}", [c.test_accuracy for c in oracle])
            indices = choose(len(source_train), ctx.adaptation_images)
            ctx.log(f"adaptation: translating {len(indices)} {d.name} source train images and training "
                    f"{len(fits)} classifier(s) on them")  # fmt: skip
            fake = translated_split(ctx.model, d.name, source_train, ctx.size, indices, s, ctx.device)
            labels = torch.from_numpy(np.asarray(source_train.labels, dtype=np.int64)[indices])
            test = target_x, target_y
            record(f"adaptation_accuracy_{d.name}", adaptation_accuracies(fake, labels, *test, fits))
            if ctx.feature_adaptation:
                ctx.log(f"adaptation: the same with features aligned to the {d.target_letter.upper()} train split, "
                        "on the translations and on the untranslated source")  # fmt: skip
                unlabelled = whole(d.target_train)
                record(f"feature_adaptation_accuracy_{d.name}",
                       adaptation_accuracies(fake, labels, *test, fits, unlabelled))  # fmt: skip
                untranslated = whole(source_train)[indices]
                record(f"feature_only_accuracy_{d.name}",
                       adaptation_accuracies(untranslated, labels, *test, fits, unlabelled))  # fmt: skip
            if d.target_letter in labels_seen:
                ctx.notes.append(f"adaptation_accuracy_{d.name}: the run's semantic loss was trained with domain "
                                 f"{d.target_letter.upper()}'s labels, the target of {d.name}; for a label-free "
                                 f"{d.name} figure train with --semantic-source {d.name[0]}")  # fmt: skip
            if len(indices) < len(source_train):
                ctx.notes.append(f"adaptation_accuracy_{d.name}: trained on {len(indices)} of the "
                                 f"{len(source_train)} source train images (--adaptation-images)")  # fmt: skip
        ctx.report.info["labels_seen_in_training"] = labels_seen
        seeds = f"{cfg.seed}–{cfg.seed + len(fits) - 1}"
        ctx.report.info["adaptation_fits"] = (f"each adaptation, source-only and oracle figure is the mean over "
                                              f"{len(fits)} classifier(s) of seeds {seeds}; *_std: their standard "
                                              "deviation")  # fmt: skip
        for name, text in DESCRIPTIONS.items():
            if name.startswith("feature") and not ctx.feature_adaptation:
                continue
            for d in ctx.directions:
                key = f"oracle_accuracy_{d.target_letter}" if name == "oracle_accuracy" else f"{name}_{d.name}"
                ctx.report.descriptions[key] = text
