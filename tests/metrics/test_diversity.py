"""The diversity block of ``gankit eval`` (models with latent codes): pairwise distances between the K
translations of one input, counted over successful translations only, on CIFAR colorization with a
small guarded classifier: real colour images per code are diverse, one image for every code is not,
noise is never counted, and a briefly trained Augmented CycleGAN is diverse where it succeeds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gankit.cli import main
from gankit.data.recipes import load_recipe
from gankit.data.transforms import EvalTransform
from gankit.metrics.classifier import ClassifierConfig
from gankit.metrics.evaluate import evaluate_model
from gankit.metrics.translation import DIVERSITY_SAMPLES
from gankit.models.persist import load_model

CLASSIFIER = ClassifierConfig(width=8, steps=120, batch_size=32, max_train_per_class=400)
IMAGES = 6


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    train = load_recipe("cifar10-colorization", shared_data, "train")
    test = load_recipe("cifar10-colorization", shared_data, "test")
    t = EvalTransform(32)
    bank = torch.stack([t(test.source_b.load(i)) for i in range(100, 140)])  # real colour photos
    return SimpleNamespace(train=train, test=test, bank=bank, cache=tmp_path_factory.mktemp("classifiers"))


def evaluate(model, data, out):
    return evaluate_model(model, data.test, out, train_pair=data.train, max_images=IMAGES, cache_dir=data.cache,
                          classifier_config=CLASSIFIER)  # fmt: skip


class ByCode(nn.Module):
    """A stand-in conditional translator: each code picks an output with ``pick(code)``."""

    def __init__(self, pick, codes: torch.Tensor):
        super().__init__()
        self.pick, self.codes = pick, codes

    def forward(self, x):
        codes = self.codes.expand(len(x), -1) if len(self.codes) == 1 else self.codes
        return torch.stack([self.pick(c) for c in codes])


class Stochastic:
    """A one-sided (a2b) translator with latent codes of dimension 2, gray 32 px → colour."""

    latent_dim = 2
    directions = ("a2b",)
    image_size = 32
    config = SimpleNamespace(size=32)

    def __init__(self, pick):
        self.pick = pick

    def eval(self):
        return self

    def channels(self, direction="a2b"):
        return (1, 3)

    def generator(self, direction="a2b"):
        return self.coded_generator(direction, torch.zeros(1, 2))

    def coded_generator(self, direction, codes):
        return ByCode(self.pick, codes)


def test_colour_photos_per_code_are_diverse_one_photo_is_not_and_noise_never_counts(data, tmp_path):
    bank = data.bank

    def photo(code):  # a code → one of 40 real colour photos
        return bank[int(abs(float(code[0])) * 997) % len(bank)]

    diverse = evaluate(Stochastic(photo), data, tmp_path / "diverse")
    assert diverse["success_samples_a2b"] > 0.5 and diverse["diversity_pairs_a2b"] > 0
    unit = (bank + 1) / 2
    widest = max(float((unit[i] - unit[j]).abs().mean()) for i in range(len(bank)) for j in range(i))
    assert 0.05 < diverse["diversity_a2b"] <= widest and diverse["diversity_cls_a2b"] > 0
    assert diverse["psnr_best_of_k_a2b"] >= diverse["psnr_mean_of_k_a2b"]
    assert "psnr_best_of_k_noise_floor_a2b" in diverse and "diversity_noise_raw_a2b" in diverse

    same = evaluate(Stochastic(lambda code: bank[0]), data, tmp_path / "same")
    assert same["diversity_pairs_a2b"] > 0 and same["diversity_a2b"] == 0.0 and same["diversity_cls_a2b"] == 0.0

    def noise(code):  # a different uniform-noise image for every code: as diverse as images get
        return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(int(abs(float(code[0])) * 1e6))) * 2 - 1

    noisy = evaluate(Stochastic(noise), data, tmp_path / "noise")
    assert noisy["neither_a2b"] == 1.0 and noisy["success_samples_a2b"] == 0.0
    assert noisy["diversity_pairs_a2b"] == 0 and noisy["diversity_a2b"] == 0.0  # noise buys nothing
    assert noisy["diversity_noise_raw_a2b"] > 0


def test_a_briefly_trained_augmented_cyclegan_is_diverse_where_it_succeeds(data, shared_data, tmp_path):
    run = tmp_path / "run"
    args = ["train", "cyclegan", "--dataset", "cifar10-colorization", "--data-root", str(shared_data), "--latent-dim",
            "4", "--size", "32", "--blocks", "1", "--ngf", "8", "--ndf", "8", "--encoder-width", "8", "--batch-size",
            "4", "--lr", "2e-3", "--steps", "100", "--log-every", "50", "--sample-every", "1000", "--workers", "0",
            "--threads", "1", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(args) == 0
    m = evaluate(load_model(run, "cpu"), data, tmp_path / "eval")
    for d in ("a2b", "b2a"):
        for key in ("diversity", "diversity_cls", "diversity_pairs", "success_samples", "diversity_noise_floor"):
            assert m[f"{key}_{d}"] is not None
        assert (m[f"diversity_pairs_{d}"] > 0) == (m[f"diversity_{d}"] > 0)
    assert m["success_samples_b2a"] > 0.5 and m["diversity_b2a"] > 0.01  # gray outputs, one per code
    assert "psnr_best_of_k_a2b" in m and "psnr_best_of_k_b2a" not in m
    assert m["diversity_pairs_b2a"] <= IMAGES * DIVERSITY_SAMPLES * (DIVERSITY_SAMPLES - 1) // 2


def test_deterministic_translators_get_no_diversity_block(data, tmp_path):
    class Plain(Stochastic):
        latent_dim = 0

    m = evaluate(Plain(lambda code: data.bank[0]), data, tmp_path / "plain")
    assert not any(k.startswith("diversity") for k in m) and m["success_a2b"] is not None
