"""``gankit eval`` on real data (apple2orange, a tiny model, 32 px), the success-rate semantics with a
perfect and a useless translator, folder mode, label preservation and the classifier cache."""

from __future__ import annotations

import argparse
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from gankit.api import CycleGAN
from gankit.data.recipes import load_recipe
from gankit.data.transforms import EvalTransform
from gankit.errors import ConfigError
from gankit.metrics.classifier import (
    ClassifierConfig,
    TrainedClassifier,
    source_fingerprint,
    tensor_to_uint8,
    train_domain_classifier,
)
from gankit.metrics.cli import add_eval_arguments, run_eval
from gankit.metrics.evaluate import evaluate_folders, evaluate_model, format_table
from gankit.metrics.translation import label_preservation
from gankit.models.cyclegan import CycleGANConfig

from .test_inception import FeaturesOnly, WithLogits, save_scripted

MAX = 12
STEPS = 200  # reduced for the test suite (default 2400)
REQUIRED = (
    "classifier_test_accuracy",
    "success_a2b",
    "success_b2a",
    "floor_a2b",
    "floor_b2a",
    "fid_cls_a2b",
    "fid_cls_b2a",
    "kid_cls_a2b",
    "kid_cls_b2a",
    "cycle_l1_a",
    "cycle_l1_b",
)


def _args(*argv):
    return add_eval_arguments(argparse.ArgumentParser()).parse_args([str(a) for a in argv])


@pytest.fixture(scope="module")
def cli_run(shared_data, tmp_path_factory):
    """The eval entry point on a tiny untrained CycleGAN, apple2orange at 32 px."""
    tmp = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(channels_a=3, channels_b=3, size=32, ngf=4, blocks=1, ndf=4))
    weights = model.save_generators(tmp / "model.safetensors")
    out = tmp / "report"
    args = _args(
        weights,
        "--dataset",
        "apple2orange",
        "--data-root",
        shared_data,
        "--out",
        out,
        "--max-images",
        MAX,
        "--device",
        "cpu",
        "--cache-dir",
        tmp / "cache",
        "--classifier-steps",
        STEPS,
        "--feature-adaptation",
    )
    return SimpleNamespace(args=args, rc=None, out=out, cache=tmp / "cache", tmp=tmp, run=lambda: run_eval(args))


@pytest.fixture(scope="module")
def report(cli_run):
    rc = cli_run.run()
    assert rc == 0
    return json.loads((cli_run.out / "report.json").read_text())


def test_cli_writes_report(report, cli_run, capsys):
    m = report["metrics"]
    assert any(n.startswith("--feature-adaptation: measured only on labelled digit") for n in report["notes"])
    for k in REQUIRED:
        assert k in m and m[k] is not None, k
    for k in ("success_a2b", "success_b2a", "floor_a2b", "floor_b2a"):
        assert 0.0 <= m[k] <= 1.0
    assert m["fid_cls_a2b"] >= 0 and m["cycle_l1_a"] > 0
    assert m["floor_a2b"] <= 0.5 and m["floor_b2a"] <= 0.5  # a usable classifier rarely calls apples oranges
    assert report["info"]["test_images_a"] == MAX and report["info"]["size"] == 32
    html = (cli_run.out / "report.html").read_text()
    assert "success_a2b" in html
    for g in report["grids"]:
        assert (cli_run.out / g["file"]).is_file() and g["file"] in html
    assert len(report["grids"]) == 4
    table = format_table(m)
    assert "classifier_test_accuracy" in table and "n/a" not in table.split("kid_cls_a2b")[1].split("\n")[0]


def _classifier(shared_data, cache) -> TrainedClassifier:
    train = load_recipe("apple2orange", shared_data, "train")
    test = load_recipe("apple2orange", shared_data, "test")
    return train_domain_classifier(
        train.source_a,
        train.source_b,
        test.source_a,
        test.source_b,
        "apple2orange",
        ClassifierConfig(steps=STEPS),
        cache,
    )


def test_classifier_is_cached_and_accurate(report, cli_run, shared_data):
    clf = _classifier(shared_data, cli_run.cache)
    assert clf.cached and clf.test_accuracy == report["metrics"]["classifier_test_accuracy"]
    # 200 steps is a reduced setting for the test; the default (2400 steps) reaches ≥ 0.95
    assert clf.test_accuracy >= 0.85
    assert report["metrics"]["classifier_reliable"] == (clf.test_accuracy >= 0.95)
    assert len(list(cli_run.cache.glob("*.safetensors"))) == 1 and len(list(cli_run.cache.glob("*.json"))) == 1


class Constant(nn.Module):
    """A translator that outputs one fixed image whatever the input."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("image", image[None].clone())

    def forward(self, x):
        return self.image.expand(len(x), -1, -1, -1)


class Stub(nn.Module):
    def __init__(self, g_ab, g_ba):
        super().__init__()
        self.g_ab, self.g_ba = g_ab, g_ba
        self.config = SimpleNamespace(size=32, channels_a=3, channels_b=3)

    image_size = 32

    def generator(self, d):
        return self.g_ab if d == "a2b" else self.g_ba

    def channels(self, d):
        return (3, 3)


def test_perfect_and_useless_translators(report, cli_run, shared_data, tmp_path):
    train = load_recipe("apple2orange", shared_data, "train")
    test = load_recipe("apple2orange", shared_data, "test")
    clf = _classifier(shared_data, cli_run.cache)
    # the most orange-looking and most apple-looking test images
    t = EvalTransform(32)
    b_imgs = torch.stack([t(test.source_b.load(i)) for i in range(20)])
    a_imgs = torch.stack([t(test.source_a.load(i)) for i in range(20)])
    best_b = b_imgs[clf.predict(tensor_to_uint8(b_imgs, 32))[0][:, 1].argmax()]
    best_a = a_imgs[clf.predict(tensor_to_uint8(a_imgs, 32))[0][:, 0].argmax()]
    kw = dict(
        train_pair=train,
        max_images=MAX,
        cache_dir=cli_run.cache,
        classifier_config=ClassifierConfig(steps=STEPS),
    )
    perfect = evaluate_model(Stub(Constant(best_b), Constant(best_a)), test, tmp_path / "p", **kw)
    assert perfect["success_a2b"] == 1.0 and perfect["success_b2a"] == 1.0
    useless = evaluate_model(Stub(nn.Identity(), nn.Identity()), test, tmp_path / "u", **kw)
    assert useless["success_a2b"] == useless["floor_a2b"] == report["metrics"]["floor_a2b"]
    assert useless["success_b2a"] == useless["floor_b2a"]
    assert useless["cycle_l1_a"] == 0.0 and useless["cycle_l1_b"] == 0.0
    assert useless["fid_cls_a2b"] == pytest.approx(useless["fid_cls_floor"], rel=1e-9)
    assert perfect["fid_cls_a2b"] > 0 and perfect["kid_cls_a2b"] > 0
    assert len(list(cli_run.cache.glob("*.safetensors"))) == 1  # the CLI's classifier was reused


def test_without_train_split_classifier_metrics_are_none(shared_data, tmp_path):
    test = load_recipe("apple2orange", shared_data, "test")
    m = evaluate_model(Stub(nn.Identity(), nn.Identity()), test, tmp_path, max_images=4)
    assert m["success_a2b"] is None and m["cycle_l1_a"] == 0.0
    notes = json.loads((tmp_path / "report.json").read_text())["notes"]
    assert any("classifier metrics skipped" in n for n in notes)


def test_a_model_gets_inception_distances_with_their_do_nothing_floor(shared_data, tmp_path):
    """Inception FID/KID of a translator come with the same distances for its untranslated inputs: a copy
    of the input scores exactly the floor, a translation to a constant image scores otherwise."""
    test = load_recipe("apple2orange", shared_data, "test")
    weights = save_scripted(FeaturesOnly(), tmp_path / "f.pt")
    kw = dict(max_images=8, inception_weights=weights)
    copy = evaluate_model(Stub(nn.Identity(), nn.Identity()), test, tmp_path / "copy", **kw)
    assert copy["fid_inception_floor"] is not None and copy["kid_inception_floor"] is not None
    assert copy["fid_inception_a2b"] == pytest.approx(copy["fid_inception_floor"], rel=1e-9)
    grey = torch.zeros(3, 32, 32)
    const = evaluate_model(Stub(Constant(grey), Constant(grey)), test, tmp_path / "const", **kw)
    assert const["fid_inception_floor"] == pytest.approx(copy["fid_inception_floor"], rel=1e-9)
    assert abs(const["fid_inception_a2b"] - const["fid_inception_floor"]) > 1e-3


def test_folder_mode_with_torchscript_inception(shared_data, tmp_path):
    src = shared_data / "apple2orange"
    real, same, other = tmp_path / "real", tmp_path / "same", tmp_path / "other"
    for folder, files in (
        (real, sorted((src / "testA").iterdir())[:8]),
        (same, sorted((src / "testA").iterdir())[:8]),
        (other, sorted((src / "testB").iterdir())[:8]),
    ):
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
    feats_only = save_scripted(FeaturesOnly(), tmp_path / "features.pt")
    m = evaluate_folders(real, same, tmp_path / "r1", feats_only, size=64)
    assert m["fid_inception"] == pytest.approx(0.0, abs=1e-6) and m["is_inception"] is None
    assert m["paired_images"] == 8 and m["ssim"] == pytest.approx(1.0)
    notes = json.loads((tmp_path / "r1" / "report.json").read_text())["notes"]
    assert any("Inception Score unavailable" in n for n in notes)
    rc = run_eval(
        _args(
            "--real",
            real,
            "--fake",
            other,
            "--out",
            tmp_path / "r2",
            "--size",
            64,
            "--inception-weights",
            save_scripted(WithLogits(), tmp_path / "logits.pt"),
        )
    )
    m2 = json.loads((tmp_path / "r2" / "report.json").read_text())["metrics"]
    assert rc == 0 and m2["fid_inception"] > 0 and m2["kid_inception"] is not None and m2["is_inception"] >= 1.0
    assert "psnr" not in m2  # no file names in common
    m3 = evaluate_folders(real, other, tmp_path / "r3")
    assert m3["fid_inception"] is None  # works without weights, reports what it cannot compute


def test_label_preservation_counts_matches():
    clf = TrainedClassifier(model=None, test_accuracy=1.0, config=ClassifierConfig(), num_classes=3, class_names=[])
    clf.predict = lambda x: (np.eye(3)[x[:, 0, 0, 0].numpy().astype(int)], None)
    images = torch.zeros((4, 3, 2, 2), dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.tensor([0, 1, 2, 1])
    assert label_preservation(clf, images, [0, 1, 2, 2]) == 0.75


def test_fingerprint_depends_on_content(tmp_path):
    from gankit.data.sources import ArraySource

    a = ArraySource(np.zeros((3, 8, 8), np.uint8), 1, labels=[0, 1, 2])
    b = ArraySource(np.ones((3, 8, 8), np.uint8), 1, labels=[0, 1, 2])
    assert source_fingerprint(a) != source_fingerprint(b)
    assert source_fingerprint(a) == source_fingerprint(ArraySource(np.zeros((3, 8, 8), np.uint8), 1, labels=[0, 1, 2]))


def test_cli_argument_errors(tmp_path):
    with pytest.raises(ConfigError):
        run_eval(_args("--real", tmp_path, "--out", tmp_path / "o"))
    with pytest.raises(ConfigError):
        run_eval(_args("--out", tmp_path / "o"))


@pytest.mark.parametrize("asked, expected", [(None, 64), (40, 40)])
def test_the_domain_classifier_reads_the_data_sets_size_unless_asked(shared_data, tmp_path, asked, expected):
    """The demo's thin ink strokes blur away at the default 32 px: its data set asks for 64 px, and
    ``classifier_size`` (``--classifier-size``) still wins."""
    train, test = load_recipe("demo", None), load_recipe("demo", None, "test")
    assert (test.classifier_size, load_recipe("apple2orange", shared_data, "test").classifier_size) == (64, 32)
    report = evaluate_model(Stub(nn.Identity(), nn.Identity()), test, tmp_path, train, max_images=MAX,
                            cache_dir=tmp_path / "cache", classifier_size=asked,
                            classifier_config=ClassifierConfig(steps=2, max_train_per_class=64))  # fmt: skip
    info = json.loads((tmp_path / "report.json").read_text())["info"]["classifier"]
    assert info["config"]["image_size"] == expected and report["classifier_test_accuracy"] is not None
