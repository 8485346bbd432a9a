"""Quality numbers that cannot be fooled: garbage (noise, blur, untrained generators, a model after 20
steps) scores as garbage against the guarded domain classifier, every report carries its floors and
ceilings, and folder evaluation runs in memory that does not grow with the images' pixels."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from gankit.cli import main
from gankit.data.recipes import load_recipe
from gankit.metrics.classifier import ClassifierConfig, train_domain_classifier
from gankit.metrics.garbage import make_garbage
from gankit.metrics.translation import (
    confident_threshold,
    evaluate_model,
    label_flips,
    label_scores,
    worst_flip_note,
)

from .test_inception import FeaturesOnly, save_scripted

MAX = 24
CLASSIFIER = ClassifierConfig(steps=600)  # reduced for the test suite (the default is measured in docs)


class Garbage(nn.Module):
    """A 'translator' whose output is one kind of garbage made from its input."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        return make_garbage(self.kind, x, torch.Generator().manual_seed(0))


class Stub(nn.Module):
    image_size = 32

    def __init__(self, g_ab, g_ba):
        super().__init__()
        self.g_ab, self.g_ba = g_ab, g_ba

    def generator(self, d):
        return self.g_ab if d == "a2b" else self.g_ba

    def channels(self, d):
        return (3, 3)


@pytest.fixture(scope="module")
def pairs(shared_data):
    return load_recipe("apple2orange", shared_data, "train"), load_recipe("apple2orange", shared_data, "test")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("classifier-cache")


def score(stub, pairs, cache, out):
    train, test = pairs
    return evaluate_model(stub, test, out, train, max_images=MAX, cache_dir=cache, classifier_config=CLASSIFIER)


def test_the_classifier_knows_neither_and_generalises_to_held_out_garbage(pairs, cache):
    train, test = pairs
    clf = train_domain_classifier(train.source_a, train.source_b, test.source_a, test.source_b, test.name,
                                  CLASSIFIER, cache)  # fmt: skip
    assert clf.class_names == ["A", "B", "neither"]
    held_out = ("pink_noise", "constant", "untrained_unet")  # never seen in training
    assert all(clf.garbage_accuracy[k] >= 0.9 for k in held_out), clf.garbage_accuracy
    assert clf.test_accuracy >= 0.85


@pytest.mark.parametrize("kind", ["uniform_noise", "heavy_blur", "untrained_resnet", "pink_noise"])
def test_garbage_translators_fail_the_success_check(pairs, cache, tmp_path, kind):
    m = score(Stub(Garbage(kind), Garbage(kind)), pairs, cache, tmp_path)
    for d in ("a2b", "b2a"):
        assert m[f"success_{d}"] <= 0.1, (kind, d, m[f"success_{d}"])
        assert m[f"success_{d}"] <= m[f"garbage_floor_success_{d}"] + 0.1
        assert m[f"fid_cls_{d}"] >= 0.8 * m[f"garbage_floor_fid_cls_{d}"]
        assert m[f"content_{d}"] < 0.5 if kind != "heavy_blur" else True


def test_every_report_has_floors_ceilings_and_intervals(pairs, cache, tmp_path):
    m = score(Stub(nn.Identity(), nn.Identity()), pairs, cache, tmp_path)
    for d in ("a2b", "b2a"):
        for key in ("garbage_floor_success", "garbage_floor_fid_cls", "real_ceiling_fid_cls", "real_ceiling_success",
                    "precision", "recall", "floor", "content"):  # fmt: skip
            assert m[f"{key}_{d}"] is not None, key
        lo, hi = m[f"success_{d}_ci"]
        assert lo <= m[f"success_{d}"] <= hi
        assert m[f"content_{d}"] == pytest.approx(1.0, abs=1e-6)  # doing nothing keeps every edge
        assert m[f"real_ceiling_fid_cls_{d}"] < m[f"garbage_floor_fid_cls_{d}"]
        assert m[f"real_ceiling_success_{d}"] >= 0.8
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["info"]["garbage_floors"]["a2b"]) >= {"uniform_noise", "heavy_blur", "untrained_resnet"}
    assert any("Chong & Forsyth" in n for n in report["notes"])


def test_a_cyclegan_after_20_steps_is_no_better_than_garbage(shared_data, pairs, cache, tmp_path):
    run = tmp_path / "tiny"
    assert main(["train", "cyclegan", "--dataset", "apple2orange", "--data-root", str(shared_data), "--size", "32",
                 "--steps", "20", "--threads", "2", "--no-progress", "--sample-every",
                 "1000", "--out", str(run)]) == 0  # fmt: skip
    assert main(["eval", str(run), "--out", str(tmp_path / "eval"), "--max-images", str(MAX), "--cache-dir",
                 str(cache), "--classifier-steps", str(CLASSIFIER.steps)]) == 0  # fmt: skip
    m = json.loads((tmp_path / "eval" / "report.json").read_text())["metrics"]
    for d in ("a2b", "b2a"):
        assert m[f"success_{d}"] <= m[f"garbage_floor_success_{d}"] + 0.1
        assert m[f"fid_cls_{d}"] >= 0.8 * m[f"garbage_floor_fid_cls_{d}"]


def test_confident_label_metric_by_hand():
    real = np.array([[0.95, 0.05], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]] * 25)
    t = confident_threshold(real, keep=0.99)
    assert (real.max(1) >= t).mean() >= 0.99
    fake = np.array([[0.99, 0.01], [0.51, 0.49], [0.1, 0.9], [0.3, 0.7]])
    s = label_scores(fake, [0, 0, 1, 0], threshold=0.7)
    assert s == {"accuracy": 0.75, "confident": 0.5, "rejected": 0.25}


def test_label_flips_name_which_label_becomes_which_by_hand():
    labels = [1, 1, 1, 1, 3, 3, 7]
    read = [1, 2, 8, 2, 3, 3, 7]
    flips = label_flips(np.array(read), np.array(labels))
    assert flips == {"1": {"n": 4, "kept": 0.25, "read_as": {"2": 2, "8": 1}},
                     "3": {"n": 2, "kept": 1.0, "read_as": {}},
                     "7": {"n": 1, "kept": 1.0, "read_as": {}}}  # fmt: skip
    note = worst_flip_note("a2b", flips)
    assert (
        note.startswith("label_preservation_a2b: label 1 is kept least, in 25.0% of its 4") and "2 (2), 8 (1)" in note
    )


MEASURE = textwrap.dedent("""
    import resource, sys
    from gankit.metrics.evaluate import evaluate_folders
    evaluate_folders(sys.argv[1], sys.argv[2], sys.argv[3], inception_weights=sys.argv[4])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
""")


def test_folder_evaluation_memory_does_not_grow_with_pixels(shared_data, tmp_path):
    """Peak RSS of `--real --fake` (stand-in TorchScript Inception, paired PSNR/SSIM) at 8 and 64 pairs of
    256 px images: holding the images would add ≥ 56 · 2 · 3 · 256² · 4 B ≈ 88 MB; the features add < 1 MB."""
    weights = save_scripted(FeaturesOnly(), tmp_path / "f.pt")
    files = sorted((shared_data / "apple2orange" / "testA").iterdir())
    peaks = []
    for n in (8, 64):
        real, fake = tmp_path / f"real{n}", tmp_path / f"fake{n}"
        real.mkdir()
        fake.mkdir()
        for f in files[:n]:
            (real / f.name).write_bytes(f.read_bytes())
            (fake / f.name).write_bytes(files[-1 - files.index(f)].read_bytes())
        out = subprocess.run([sys.executable, "-c", MEASURE, str(real), str(fake), str(tmp_path / f"r{n}"),
                              str(weights)], capture_output=True, text=True, check=True)  # fmt: skip
        peaks.append(int(out.stdout.strip().splitlines()[-1]))
        assert json.loads((tmp_path / f"r{n}" / "report.json").read_text())["metrics"]["paired_images"] == n
    assert peaks[1] - peaks[0] < 30 * 2**20, f"peak RSS grew by {(peaks[1] - peaks[0]) / 2**20:.1f} MB"
