"""The companion-GAN loop on a toy 2-D GAN: run folder, checkpoints, exact resume, divergence, loading."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from PIL import Image
from torch import nn

from gankit.config import CompanionConfig, opt
from gankit.errors import CheckpointError, TrainingDiverged
from gankit.io import list_checkpoints
from gankit.losses import AdversarialLoss
from gankit.training import companion
from gankit.training.companion import BatchStream, GANModel, load_model, resume_companion, train_companion


@dataclass
class ToyConfig(CompanionConfig):
    width: int = opt(8, "hidden width")
    blow_up_at: int = opt(0, "step at which the loss becomes NaN (0 = never)")


class ToyGAN(GANModel):
    """Learns a 2-D Gaussian; small enough for the loop's tests to take milliseconds."""

    kind = "toy"
    config_class = ToyConfig

    def __init__(self, config, device):
        super().__init__(config, device)
        w = config.width
        self.g = nn.Sequential(nn.Linear(2, w), nn.ReLU(), nn.Linear(w, 2))
        self.d = nn.Sequential(nn.Linear(2, w), nn.ReLU(), nn.Linear(w, 1))
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=config.lr)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=config.lr)
        self.loss = AdversarialLoss(config.gan_loss)
        self.stream = None

    def networks(self):
        return {"g": self.g, "d": self.d}

    def optimizers(self):
        return {"g": self.opt_g, "d": self.opt_d}

    def prepare_training(self, data_root):
        data = torch.randn(256, 2, generator=torch.Generator().manual_seed(1)) * 0.5 + 2.0
        self.stream = BatchStream(data, batch_size=self.config.batch_size, seed=self.config.seed)
        return "256 points"

    def train_step(self, step):
        (real,) = self.stream.next()
        z = torch.randn(len(real), 2)
        d_loss = self.loss.d_loss(self.d(real), self.d(self.g(z).detach()))
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        g_loss = self.loss.g_loss(self.d(self.g(z)))
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        if step == self.config.blow_up_at:
            g_loss = g_loss * float("nan")
        return {"D": d_loss, "G": g_loss}

    def sample_grid(self, step):
        return Image.new("RGB", (8, 8), (step % 255, 0, 0))

    def extra_state(self):
        return {"stream": self.stream.state_dict()} if self.stream else {}

    def load_extra_state(self, state):
        if "stream" in state and self.stream is not None:
            self.stream.load_state_dict(state["stream"])


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(companion.COMPANIONS, "toy", ToyGAN)


def _config(tmp_path, **kw):
    kw = dict(steps=6, batch_size=16, checkpoint_every=3, sample_every=3, log_every=1, device="cpu",
              threads=1, out=str(tmp_path / "run")) | kw  # fmt: skip
    return ToyConfig(**kw).validate()


def test_run_folder_holds_everything_a_user_looks_at(tmp_path):
    summary = train_companion("toy", _config(tmp_path), progress=False, log=lambda *_: None)
    run = tmp_path / "run"
    assert summary["step"] == 6
    for name in ("config.yaml", "losses.csv", "losses.png", "index.html", "model.safetensors", "summary.json"):
        assert (run / name).is_file(), name
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [3, 6]
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_0000003.png", "step_0000006.png"]
    assert "toy" in (run / "index.html").read_text()
    assert json.loads((run / "summary.json").read_text())["model"] == "toy"


def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path):
    full = _config(tmp_path / "a")
    train_companion("toy", full, progress=False, log=lambda *_: None)
    part = _config(tmp_path / "b", steps=3)
    train_companion("toy", part, progress=False, log=lambda *_: None)
    resume_companion(part.out, steps=6, progress=False, log=lambda *_: None)
    a, b = load_model(full.out, device="cpu"), load_model(part.out, device="cpu")
    for (name, x), (_, y) in zip(a.weights().items(), b.weights().items()):
        assert torch.equal(x, y), name


def test_existing_run_is_refused_without_resume(tmp_path):
    train_companion("toy", _config(tmp_path, steps=3), progress=False, log=lambda *_: None)
    with pytest.raises(CheckpointError, match="already holds a run"):
        train_companion("toy", _config(tmp_path, steps=3), progress=False, log=lambda *_: None)


def test_non_finite_loss_stops_with_the_last_checkpoint_intact(tmp_path):
    with pytest.raises(TrainingDiverged, match="not finite at step 5"):
        train_companion("toy", _config(tmp_path, blow_up_at=5), progress=False, log=lambda *_: None)
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [3]


def test_load_model_from_checkpoint_when_no_final_weights(tmp_path):
    config = _config(tmp_path)
    train_companion("toy", config, progress=False, log=lambda *_: None)
    (tmp_path / "run" / "model.safetensors").unlink()
    model = load_model(tmp_path / "run", device="cpu")
    assert model.kind == "toy" and not model.g.training


def test_truncated_final_weights_give_a_clear_error(tmp_path):
    train_companion("toy", _config(tmp_path), progress=False, log=lambda *_: None)
    path = tmp_path / "run" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(path, device="cpu")


def test_batch_stream_resumes_mid_epoch():
    data = torch.arange(10)
    a = BatchStream(data, batch_size=3, seed=0)
    a.next()
    saved = a.state_dict()
    expected = [a.next()[0].tolist() for _ in range(5)]
    b = BatchStream(data, batch_size=3, seed=99)
    b.load_state_dict(saved)
    assert [b.next()[0].tolist() for _ in range(5)] == expected


def test_a_dataset_the_model_cannot_train_on_is_refused_up_front(tmp_path):
    from gankit.errors import ConfigError

    with pytest.raises(ConfigError, match="dataset='cifar10': this model trains on mnist"):
        _config(tmp_path, dataset="cifar10")
