"""The CIFAR-10 classifier space used to score the progressive GAN (real data, tiny classifier)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.metrics import cifar
from gankit.metrics.classifier import ClassifierConfig
from gankit.models.progan import ProGANConfig, ProgressiveGAN

TINY_CLASSIFIER = ClassifierConfig(width=4, steps=20, batch_size=16, max_train_per_class=10**6)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One classifier cache for the module: the tiny classifier is trained once."""
    return tmp_path_factory.mktemp("classifiers")


def test_class_score_bounds():
    onehot = np.eye(10)[np.arange(100) % 10]
    assert cifar.class_score(onehot) == pytest.approx(10.0, rel=1e-6)
    assert cifar.class_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
    assert cifar.class_score(np.eye(10)[np.zeros(30, dtype=int)]) == pytest.approx(1.0)


def test_default_classifier_is_the_real_one():
    c = cifar.DEFAULT_CLASSIFIER
    assert c.steps >= 1000 and c.width >= 16 and c.max_train_per_class >= 5000 and c.image_size == 32
    assert cifar.EVAL_SAMPLES >= 5000 and cifar.EVAL_REAL is None


def test_sources_are_the_local_splits(shared_data):
    train, test = cifar.cifar_sources(shared_data)
    assert len(train) == 5000 and len(test) == 10000
    assert np.bincount(np.asarray(train.labels)).tolist() == [500] * 10


def test_classifier_trains_once_then_comes_from_the_cache(shared_data, cache):
    first = cifar.cifar_classifier(shared_data, cache, TINY_CLASSIFIER)
    assert not first.cached and 0.0 <= first.test_accuracy <= 1.0 and first.num_classes == 10
    again = cifar.cifar_classifier(shared_data, cache, TINY_CLASSIFIER)
    assert again.cached and again.test_accuracy == first.test_accuracy


def test_evaluate_progan_scores_generated_images(shared_data, tmp_path, cache):
    cfg = ProGANConfig(fmap_base=64, fmap_max=16, latent_dim=8, steps=8).validate()
    model = ProgressiveGAN(cfg, torch.device("cpu"))
    model.step = 8  # an untrained 32×32 generator: far from the data
    x = cifar.generated_uint8(model, 10)
    assert x.dtype == torch.uint8 and x.shape == (10, 3, 32, 32)
    logs = []
    rep = cifar.evaluate_progan(model, tmp_path / "eval", data_root=shared_data, device=model.device,
                                cache_dir=cache, log=logs.append, n_samples=200, n_real=300,
                                classifier=TINY_CLASSIFIER)  # fmt: skip
    m = rep.metrics
    assert {"fid_cls", "fid_cls_floor", "kid_cls", "is_cls", "classifier_test_accuracy"} <= m.keys()
    assert all(math.isfinite(v) for v in m.values())
    assert m["fid_cls"] > m["fid_cls_floor"] >= 0  # noise is further from the test set than real train images
    assert set(rep.descriptions) >= {"fid_cls", "fid_cls_floor"} and rep.notes and logs
    assert all((tmp_path / "eval" / f).is_file() for _, f in rep.grids)
    cfg_mnist = ProGANConfig(dataset="mnist", fmap_base=64, fmap_max=16, latent_dim=8).validate()
    with pytest.raises(Exception, match="cifar10"):
        cifar.evaluate_progan(ProgressiveGAN(cfg_mnist, torch.device("cpu")), tmp_path / "m", data_root=shared_data,
                              device=None, cache_dir=cache, log=print)  # fmt: skip
