"""The progressive GAN model on real CIFAR-10: schedule, one step of every game, resume, loading,
sampling and the CLI end to end (train → sample --interpolate → eval)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from PIL import Image

from gankit.data.streams import BatchStream, StreamSource
from gankit.errors import ConfigError
from gankit.io import load_safetensors
from gankit.losses import GAN_LOSSES
from gankit.models.base import slerp
from gankit.models.persist import load_model
from gankit.models.progan import ProGANConfig, ProgressiveGAN, load_training_images
from gankit.training.loop import next_batches, resume, train

TINY = {"fmap_base": 64, "fmap_max": 16, "latent_dim": 8, "batch_size": 4, "threads": 1, "sample_every": 2,
        "checkpoint_every": 4, "log_every": 1}  # fmt: skip


QUIET = {"progress": False, "log": lambda *_: None}


def make(tmp_path, shared_data, **kw) -> ProgressiveGAN:
    cfg = ProGANConfig(**{**TINY, "data_root": str(shared_data), "out": str(tmp_path / "run"), **kw}).validate()
    return ProgressiveGAN(cfg, torch.device("cpu"))


@pytest.fixture(scope="module")
def cifar_images(shared_data) -> torch.Tensor:
    """The CIFAR-10 training images, read once for the step tests of this module."""
    return load_training_images("cifar10", str(shared_data))[0]


def cifar_source(m: ProgressiveGAN, images: torch.Tensor) -> StreamSource:
    """A fresh batch source over ``images``, as ``m.training_data()`` builds it."""
    return StreamSource("CIFAR-10", stream=BatchStream(images, batch_size=m.config.batch_size, seed=m.config.seed))


def one_step(m: ProgressiveGAN, step: int, source: StreamSource) -> dict:
    """What the loop does for one step: draw ``batches_per_step`` batches, train on them."""
    terms = m.train_step(next_batches(m, source), step)
    m.precision.update()
    return terms


def test_schedule_is_a_function_of_the_step(tmp_path):
    m = ProgressiveGAN(ProGANConfig(**{**TINY, "steps": 400}), torch.device("cpu"))
    assert m.phase_length == 100
    assert m.phase(0) == (0, 1.0) and m.phase(100) == (0, 1.0)
    assert m.phase(101) == (1, pytest.approx(0.02))
    assert m.phase(125) == (1, pytest.approx(0.5))
    assert m.phase(150) == (1, 1.0) and m.phase(200) == (1, 1.0)
    assert m.phase(301)[0] == 3 and m.phase(400) == (3, 1.0)
    assert [m.resolution(s) for s in (1, 101, 201, 301)] == [4, 8, 16, 32]
    fixed = ProgressiveGAN(ProGANConfig(**{**TINY, "steps": 100, "phase_steps": 10}), torch.device("cpu"))
    assert fixed.phase(31)[0] == 3 and fixed.phase(100) == (3, 1.0)
    abrupt = ProgressiveGAN(ProGANConfig(**{**TINY, "steps": 400, "fade_in": False}), torch.device("cpu"))
    assert abrupt.phase(101) == (1, 1.0)


def test_config_flags_and_validation():
    names = {f.name for f in dataclasses.fields(ProGANConfig)}
    assert {"fade_in", "minibatch_std", "equalized_lr", "pixel_norm", "phase_steps", "latent_dim"} <= names
    c = ProGANConfig()
    assert c.fade_in and c.minibatch_std and c.equalized_lr and c.pixel_norm and c.dataset == "cifar10"
    for bad in ({"final_resolution": 64}, {"start_resolution": 6}, {"fade_fraction": 0}, {"dataset": "svhn"}):
        with pytest.raises(ConfigError):
            ProGANConfig(**bad).validate()


def _snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _changed(before, net):
    return {k for k, v in net.state_dict().items() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("game", GAN_LOSSES)
def test_one_step_changes_both_networks_for_every_game(tmp_path, shared_data, cifar_images, game):
    m = make(tmp_path, shared_data, steps=40, gan_loss=game, label_smoothing=0.1, label_noise=0.05, n_critic=2)
    assert m.batches_per_step == 2
    source = cifar_source(m, cifar_images)
    g0, d0, e0 = _snapshot(m.G), _snapshot(m.D), _snapshot(m.G_ema)
    terms = one_step(m, 32, source)  # depth 3, fading in (α = 0.4)
    assert source.state_dict()["stream"]["pos"] == 2 * m.config.batch_size  # one batch per critic update
    assert m.phase(32) == (3, pytest.approx(0.4)) and terms["alpha"] == pytest.approx(0.4)
    assert all(math.isfinite(float(v)) for v in terms.values())
    g, d = _changed(g0, m.G), _changed(d0, m.D)
    assert "blocks.2.1.weight" in g and "to_rgb.3.weight" in g and "to_rgb.2.weight" in g
    assert "from_rgb.3.0.weight" in d and "from_rgb.2.0.weight" in d and "final_block.5.weight" in d
    assert "to_rgb.0.weight" not in g  # unused at 32×32
    assert _changed(e0, m.G_ema)  # the moving average follows
    assert ("gp" in terms) == (game == "wgan-gp")
    if game == "wgan":
        from gankit.nn.progressive import EqConv2d

        conv = m.D.blocks[2][0]
        assert isinstance(conv, EqConv2d) and (conv.weight * conv.scale).abs().max() <= m.config.clip + 1e-7
        assert m.D.final_block[-1].bias.abs().max() <= m.config.clip + 1e-7


def test_gradient_penalty_is_really_applied(tmp_path, shared_data, cifar_images):
    out = []
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        m = make(tmp_path, shared_data, steps=8, gp_weight=weight)
        one_step(m, 1, cifar_source(m, cifar_images))
        out.append(_snapshot(m.D))
    assert any(not torch.equal(out[0][k], out[1][k]) for k in out[0])


def test_resume_reproduces_an_uninterrupted_run(tmp_path, shared_data):
    kw = {**TINY, "data_root": str(shared_data), "phase_steps": 2, "seed": 3}
    straight = ProGANConfig(**kw, steps=8, out=str(tmp_path / "a")).validate()
    train(straight, **QUIET)
    half = ProGANConfig(**kw, steps=4, out=str(tmp_path / "b")).validate()
    train(half, **QUIET)
    assert resume(tmp_path / "b", steps=8, **QUIET).step == 8
    a, meta_a = load_safetensors(tmp_path / "a" / "model.safetensors")
    b, _ = load_safetensors(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert meta_a["format"] == "gankit-model-2" and meta_a["kind"] == "progan"
    assert json.loads(meta_a["extra"])["resolution"] == 32


def test_load_model_rebuilds_the_phase_and_samples(tmp_path, shared_data):
    cfg = ProGANConfig(**{**TINY, "data_root": str(shared_data), "steps": 6, "out": str(tmp_path / "run")})
    train(cfg.validate(), **QUIET)
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("step_*.png"))[-1] == "step_0000006.png"
    m = load_model(tmp_path / "run", device="cpu")
    assert isinstance(m, ProgressiveGAN) and m.step == 6 and m.resolution() == 32
    assert m.generate(torch.randn(5, 8)).shape == (5, 3, 32, 32)
    img = m.sample(n=16, interpolate=True, seed=1)
    assert isinstance(img, Image.Image) and img.width > 4 * 32
    assert m.sample(n=16, interpolate=True, seed=1).tobytes() == img.tobytes()
    with pytest.raises(ConfigError):
        m.sample(n=4, label=3)
    # an early checkpoint samples at its own (lower) resolution, shown upsampled to 32
    m.step = 1
    x = m.generate(torch.randn(2, 8), display=False)
    assert x.shape == (2, 3, 4, 4) and m.generate(torch.randn(2, 8)).shape == (2, 3, 32, 32)


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(3, 16), torch.randn(3, 16)
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert path.shape == (3, 5, 16)
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, -1], b)
    torch.testing.assert_close(slerp(a, a, torch.tensor([0.5]))[:, 0], a)


def test_mnist_padded_to_32(tmp_path, shared_data):
    m = make(tmp_path, shared_data, steps=4, dataset="mnist")
    source = m.training_data()
    assert "MNIST" in source.description
    x = source.next()["stream"][0]
    assert x.shape == (4, 1, 32, 32) and x[:, :, :2].max() == 0
    one_step(m, 4, source)
    assert m.generate(torch.randn(2, 8)).shape == (2, 1, 32, 32)


def test_cli_train_sample_eval_end_to_end(tmp_path, shared_data, monkeypatch):
    from gankit.cli import main
    from gankit.metrics import cifar
    from gankit.metrics.classifier import ClassifierConfig

    run, out = tmp_path / "run", tmp_path / "eval"
    flags = ["--fmap-base", "64", "--fmap-max", "16", "--latent-dim", "8", "--batch-size", "4", "--threads", "1"]
    assert main(["train", "progan", "--dataset", "cifar10", "--data-root", str(shared_data), "--out", str(run),
                 "--steps", "4", "--seed", "1", "--no-progress", *flags]) == 0  # fmt: skip
    for name in ("config.yaml", "model.safetensors", "summary.json", "index.html", "losses.csv"):
        assert (run / name).is_file(), name
    assert main(["sample", str(run), "--interpolate", "--n", "16"]) == 0
    assert (run / "samples" / "sample-interpolation-seed0.png").is_file()
    monkeypatch.setattr(cifar, "DEFAULT_CLASSIFIER", ClassifierConfig(width=4, steps=3, batch_size=8,
                                                                      max_train_per_class=10**6))  # fmt: skip
    monkeypatch.setattr(cifar, "EVAL_SAMPLES", 64)
    monkeypatch.setattr(cifar, "EVAL_REAL", 100)
    assert main(["eval", str(run), "--data-root", str(shared_data), "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache"), "--device", "cpu"]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert math.isfinite(report["metrics"]["fid_cls"]) and report["metrics"]["resolution"] == 32
    assert 0 <= report["metrics"]["classifier_test_accuracy"] <= 1
    assert {g["file"] for g in report["grids"]} == {"samples.png", "interpolation.png", "real.png"}
    assert all((out / g["file"]).is_file() for g in report["grids"])
