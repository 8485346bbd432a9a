"""The conditional GAN: networks, every game's training step, resume, and the CLI on real MNIST."""

from __future__ import annotations

import pytest
import torch

from gankit.cli import main
from gankit.data.streams import BatchStream, StreamSource
from gankit.errors import ConfigError
from gankit.losses import GAN_LOSSES
from gankit.models.cgan import CGANConfig, ConditionalGAN
from gankit.models.persist import load_model
from gankit.nn.dcgan import ConditionalDiscriminator, ConditionalGenerator
from gankit.training.loop import next_batches, resume, train

TINY = dict(z_dim=8, g_width=4, d_width=4, batch_size=8, threads=1, log_every=1, sample_every=1000)


def tiny_model(**kw) -> ConditionalGAN:
    return ConditionalGAN(CGANConfig(**(TINY | kw)).validate(), torch.device("cpu"))


def tiny_source() -> StreamSource:
    """32 random uint8 "digits" with labels, as the model's own source gives MNIST."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8, generator=gen)
    return StreamSource("32 random digits", stream=BatchStream(images, torch.arange(32) % 10, batch_size=8, seed=0))


def one_step(model: ConditionalGAN, step: int = 1, source: StreamSource | None = None) -> dict:
    """What the loop does for one step: draw ``batches_per_step`` batches, train on them."""
    terms = model.train_step(next_batches(model, source or tiny_source()), step)
    model.precision.update()
    return terms


def test_network_shapes_and_conditioning():
    g, d = ConditionalGenerator(z_dim=16, width=8), ConditionalDiscriminator(width=8)
    z, y = torch.randn(5, 16), torch.tensor([0, 1, 2, 3, 4])
    x = g(z, y)
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    assert d(x, y).shape == (5,)
    g.eval()
    # the label changes the image drawn from the same noise, and the score of the same image
    assert not torch.allclose(g(z, y), g(z, y.flip(0)))
    d.eval()
    assert not torch.allclose(d(x, y), d(x, (y + 1) % 10))


@pytest.mark.parametrize("game", GAN_LOSSES)
def test_one_step_of_each_game_changes_both_networks(game):
    model = tiny_model(gan_loss=game, n_critic=2 if game.startswith("wgan") else 1)
    assert model.batches_per_step == model.config.n_critic  # one batch per discriminator update
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in model.networks().items()}
    terms = one_step(model)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in terms.values())
    for name, net in model.networks().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), name
    if game == "wgan":
        assert all(p.abs().max() <= model.config.clip + 1e-7 for p in model.D.parameters())
    if game == "wgan-gp":  # the penalty needs per-sample scores: no batch norm in the critic
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.D.modules())


def test_n_critic_discriminator_updates_per_step_each_on_its_own_batch(monkeypatch):
    model = tiny_model(n_critic=3)
    seen = []
    real = model._critic_loss
    monkeypatch.setattr(model, "_critic_loss", lambda x, y: seen.append(y.clone()) or real(x, y))
    source = tiny_source()
    one_step(model, source=source)
    assert len(seen) == 3
    assert not torch.equal(seen[0], seen[1])  # three different batches of the stream
    assert source.state_dict()["stream"]["pos"] == 24


def test_gradient_penalty_is_really_applied(monkeypatch):
    calls = []
    import gankit.models.cgan as cgan

    real = cgan.gradient_penalty

    def spy(critic, a, b):
        calls.append(1)
        return real(critic, a, b)

    monkeypatch.setattr(cgan, "gradient_penalty", spy)
    one_step(tiny_model(gan_loss="wgan-gp"))
    assert calls
    calls.clear()
    one_step(tiny_model(gan_loss="wgan"))
    assert not calls


def test_matching_aware_discriminator_scores_wrong_labels_as_fake(monkeypatch):
    model = tiny_model(mismatch=True)
    seen = []
    real_d_loss = type(model.loss).d_loss
    monkeypatch.setattr(type(model.loss), "d_loss", lambda self, r, f, g=None: seen.append((len(r), len(f)))
                        or real_d_loss(self, r, f, g))  # fmt: skip
    one_step(model)
    assert seen == [(8, 16)]  # 8 real pairs; 8 generated + 8 real digits under a wrong label
    seen.clear()
    one_step(tiny_model(mismatch=False))
    assert seen == [(8, 8)]


def test_tricks_change_the_discriminator_targets():
    model = tiny_model(label_smoothing=0.1, label_noise=0.2)
    assert model.loss.real_label == pytest.approx(0.9) and model.loss.label_noise == 0.2
    assert set(one_step(model)) == {"D", "G"}


def test_sample_grids():
    model = tiny_model().eval()
    grid = model.sample(n=64, label=7)
    assert grid.size[0] == grid.size[1]  # 8 × 8
    rows = model.sample(n=20)  # 10 rows (one per digit) × 2
    assert rows.size[1] > rows.size[0]
    assert model.sample(n=16, interpolate=True).size[0] > 0
    assert model.sample_grid(1).size[0] > 0
    with pytest.raises(ConfigError, match="--label"):
        model.sample(n=4, label=10)


def test_only_mnist():
    with pytest.raises(ConfigError, match="--dataset"):
        CGANConfig(dataset="cifar10").validate()


def test_resume_reproduces_an_uninterrupted_run(shared_data, tmp_path):
    cfg = dict(TINY, data_root=str(shared_data), checkpoint_every=2)
    quiet = dict(progress=False, log=lambda *_: None)
    straight = train(CGANConfig(**cfg, steps=4, out=str(tmp_path / "a")).validate(), **quiet)
    train(CGANConfig(**cfg, steps=2, out=str(tmp_path / "b")).validate(), **quiet)
    resumed = resume(tmp_path / "b", steps=4, **quiet)
    assert straight.step == resumed.step == 4
    assert straight.losses == resumed.losses
    a, b = load_model(tmp_path / "a", device="cpu"), load_model(tmp_path / "b", device="cpu")
    for k, v in a.weights().items():
        assert torch.equal(v, b.weights()[k]), k


def test_cli_train_sample_eval_on_real_mnist(shared_data, tmp_path, capsys, eval_digit_run):
    run, ev = tmp_path / "run", tmp_path / "eval"
    argv = [
        "train",
        "cgan",
        "--dataset",
        "mnist",
        "--data-root",
        str(shared_data),
        "--out",
        str(run),
        "--steps",
        "2",
        "--seed",
        "3",
        "--batch-size",
        "8",
        "--g-width",
        "4",
        "--d-width",
        "4",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert (run / "model.safetensors").is_file() and list((run / "samples").glob("step_*.png"))
    assert main(["sample", str(run), "--label", "7", "--n", "64", "--out", str(tmp_path / "sevens.png")]) == 0
    assert (tmp_path / "sevens.png").is_file()
    metrics = eval_digit_run(run, ev)
    assert 0 <= metrics["label_accuracy"] <= 1
    assert metrics["fid_cls"] > 0 and all(f"fid_cls_{k}" in metrics for k in range(10))
    assert (ev / "digits.png").is_file() and (ev / "report.html").is_file()
