"""Adaptation accuracy as CyCADA measures it: train on translated source digits, test on the target."""

import numpy as np
import pytest
import torch
from torch import nn

from gankit.data.recipes import DomainPair, mnist_source
from gankit.data.sources import ArraySource
from gankit.metrics import adaptation
from gankit.metrics.classifier import ClassifierConfig
from gankit.metrics.report import Report
from gankit.metrics.translation import EvalContext, directions_of


class FixedTranslator:
    """A translator whose both directions are one fixed module (identity: the perfect translator when
    the two domains are the same digits)."""

    directions = ("a2b", "b2a")
    image_size = 32

    def __init__(self, module: nn.Module):
        self.module = module

    def generator(self, direction="a2b"):
        return self.module

    def channels(self, direction="a2b"):
        return (1, 1)

    def eval(self):
        return self


class Blank(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def _digits(shared_data, split, n):
    src = mnist_source(shared_data, split)
    idx = np.linspace(0, len(src) - 1, n).round().astype(int)
    arr = np.pad(src.array[idx], ((0, 0), (2, 2), (2, 2)))  # 32 px: no resize anywhere
    return ArraySource(arr, 1, labels=src.labels[idx], description=f"MNIST {split} subset")


@pytest.fixture
def same_domain_context(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr(adaptation, "ADAPTATION_CLASSIFIER", ClassifierConfig(
        image_size=32, width=8, steps=100, batch_size=32, flip=False, max_train_per_class=10**9, seed=1))  # fmt: skip
    train, test = _digits(shared_data, "train", 600), _digits(shared_data, "test", 300)
    train_pair = DomainPair(train, train, 1, 1, "mnist-mnist")
    test_pair = DomainPair(test, test, 1, 1, "mnist-mnist")

    def context(translator):
        ctx = EvalContext(translator, test_pair, train_pair, 32, torch.device("cpu"), tmp_path / "cache",
                          ClassifierConfig(), None, lambda msg: None, Report())  # fmt: skip
        ctx.directions = directions_of(translator, test_pair, train_pair, None)
        ctx.adaptation_fits = 1
        return ctx

    return context


def test_a_perfect_translator_scores_the_oracle_and_a_blank_one_scores_chance(same_domain_context):
    ctx = same_domain_context(FixedTranslator(nn.Identity()))
    assert adaptation.AdaptationBlock.applies(ctx)
    adaptation.AdaptationBlock(ctx).finish()
    m = ctx.metrics
    assert m["adaptation_accuracy_a2b"] == m["oracle_accuracy_b"] > 0.3  # chance: 0.1
    assert m["adaptation_accuracy_b2a"] == m["oracle_accuracy_a"]
    assert m["source_only_accuracy_a2b"] == m["oracle_accuracy_b"]  # the same digits on both sides

    blank = same_domain_context(FixedTranslator(Blank()))
    adaptation.AdaptationBlock(blank).finish()
    assert blank.metrics["adaptation_accuracy_a2b"] < 0.25 < blank.metrics["source_only_accuracy_a2b"]


def test_a_capped_adaptation_split_is_noted(same_domain_context):
    ctx = same_domain_context(FixedTranslator(nn.Identity()))
    ctx.adaptation_images = 100
    adaptation.AdaptationBlock(ctx).finish()
    assert any("trained on 100 of the 600" in n for n in ctx.notes)


def test_adaptation_figures_average_classifiers_of_consecutive_seeds(same_domain_context, monkeypatch):
    from dataclasses import replace

    def figures(fits: int, seed_offset: int = 0) -> dict:
        monkeypatch.setattr(adaptation, "ADAPTATION_CLASSIFIER", replace(tiny, seed=tiny.seed + seed_offset))
        ctx = same_domain_context(FixedTranslator(Blank()))  # a poor translator: room for the seeds to differ
        ctx.adaptation_images, ctx.adaptation_fits = 200, fits
        adaptation.AdaptationBlock(ctx).finish()
        return ctx.metrics

    tiny = adaptation.ADAPTATION_CLASSIFIER
    first, second, both = figures(1), figures(1, 1), figures(2)
    for key in ("adaptation_accuracy_a2b", "source_only_accuracy_b2a", "oracle_accuracy_b"):
        name, direction = key.rsplit("_", 1)
        assert both[key] == pytest.approx((first[key] + second[key]) / 2)
        assert both[f"{name}_std_{direction}"] == pytest.approx(abs(first[key] - second[key]) / 2)
        assert f"{name}_std_{direction}" not in first
    assert first["oracle_accuracy_b"] != second["oracle_accuracy_b"]  # the seed matters


def test_feature_alignment_lifts_a_classifier_on_inverted_digits(shared_data):
    """Target = the same digits with inverted intensities, its labels never shown: aligning the features
    with the unlabelled target must lift accuracy there far above the unaligned classifier (near chance)."""
    from gankit.metrics.classifier import accuracy, fit

    def digits(split, n):
        src = _digits(shared_data, split, n)
        images = torch.from_numpy(src.array)[:, None].expand(-1, 3, -1, -1).contiguous()
        return images, torch.from_numpy(np.asarray(src.labels, dtype=np.int64))

    config = ClassifierConfig(image_size=32, width=8, steps=200, batch_size=32, flip=False, max_train_per_class=10**9,
                              seed=1)  # fmt: skip
    x, y = digits("train", 600)
    target_test, target_y = digits("test", 300)
    unlabelled = 255 - x.flip(0)
    plain = accuracy(fit(x, y, 10, config), 255 - target_test, target_y)
    aligned = accuracy(fit(x, y, 10, config, unlabelled), 255 - target_test, target_y)
    assert plain < 0.25 and aligned > plain + 0.3


def test_feature_adaptation_reports_both_levels(same_domain_context):
    ctx = same_domain_context(FixedTranslator(Blank()))
    ctx.feature_adaptation = True
    adaptation.AdaptationBlock(ctx).finish()
    m = ctx.metrics
    # blank translations carry no digit: aligning their features cannot create one; the source can
    assert m["feature_adaptation_accuracy_a2b"] < 0.25 < m["feature_only_accuracy_a2b"]
    assert "feature_only_accuracy_b2a" in m and "CyCADA" in ctx.report.descriptions["feature_adaptation_accuracy_a2b"]


def test_an_adaptation_figure_whose_target_labels_trained_the_run_is_flagged(same_domain_context):
    translator = FixedTranslator(nn.Identity())
    translator.labels_seen_in_training = frozenset("b")  # e.g. --semantic-loss --semantic-source b
    ctx = same_domain_context(translator)
    ctx.adaptation_images = 100
    adaptation.AdaptationBlock(ctx).finish()
    flagged = [n for n in ctx.notes if "labels" in n]
    assert len(flagged) == 1 and flagged[0].startswith("adaptation_accuracy_a2b")
    assert "--semantic-source a" in flagged[0]
    assert ctx.report.info["labels_seen_in_training"] == ["b"]


def test_label_preservation_reads_each_translation_and_names_the_label_kept_least(same_domain_context,
                                                                                  monkeypatch):  # fmt: skip
    """The label block on a perfect translator (identity between two copies of one digit domain): its
    preservation is the judge's own accuracy on those digits, and the per-label breakdown adds up to it."""
    from functools import partial

    from gankit.metrics import translation

    judge = ClassifierConfig(image_size=32, width=8, steps=150, batch_size=32, flip=False, max_train_per_class=10**9)
    monkeypatch.setattr(translation, "train_label_classifier", partial(translation.train_label_classifier,
                                                                       config=judge))  # fmt: skip
    ctx = same_domain_context(FixedTranslator(nn.Identity()))
    block = translation.LabelBlock(ctx)
    for d in ctx.directions:
        real = torch.cat(list(translation.stream(d.source, d.indices, 32)))
        positions = np.arange(len(d.indices))
        block.update(translation.TranslatedBatch(d, positions, real, real, None))
    block.finish()
    m, info = ctx.metrics, ctx.report.info
    assert m["label_preservation_a2b"] == m["label_floor_a2b"] == pytest.approx(m["label_classifier_accuracy_b"])
    assert 0.3 < m["label_preservation_a2b"] < 1.0  # a 150-step judge: errors to break down
    flips = info["label_flips_a2b"]
    assert sum(f["n"] for f in flips.values()) == len(ctx.directions[0].indices)
    kept = sum(f["kept"] * f["n"] for f in flips.values()) / sum(f["n"] for f in flips.values())
    assert kept == pytest.approx(m["label_preservation_a2b"], abs=1e-3)
    scores, name = ctx.grid_scores["a2b"]  # the worst grid shows the flipped labels
    assert name == "P(source label)" and len(scores) == len(ctx.directions[0].indices)
    assert (scores <= 0.5).mean() >= 1 - m["label_preservation_a2b"] > 0  # a flipped label has P ≤ 1/2
    worst = min(flips, key=lambda k: flips[k]["kept"])
    assert any(n.startswith(f"label_preservation_a2b: label {worst} is kept least") for n in ctx.notes)
