"""The one training loop, on a toy 2-D GAN registered as a model kind: run folder, checkpoints and
their pruning, exact resume, the NaN policy, loading, ``--n-critic`` batches per step, and refusing
to train over an existing run. (Killing a run mid-step and resuming it is tested in test_resume.py.)"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from gankit.config import CompanionConfig, GANConfig, opt
from gankit.data.streams import BatchStream, StreamSource
from gankit.errors import CheckpointError, ConfigError, GankitError, TrainingDiverged
from gankit.io import list_checkpoints, load_safetensors, safe_torch_load
from gankit.losses import AdversarialLoss
from gankit.models import registry
from gankit.models.base import Model
from gankit.models.persist import load_model
from gankit.models.registry import register
from gankit.training.loop import TrainResult, resume, train

KIND = "toy2d"
POINTS = 256


@dataclass
class ToyConfig(CompanionConfig):
    width: int = opt(8, "hidden width", group="model", ge=1)
    blow_up_at: int = opt(0, "step whose G loss is made NaN (0 = never)", group="loss", ge=0)
    out: str = opt("runs/toy2d", "run folder", group="run")


class Toy2D(Model):
    """Learns a 2-D Gaussian; small enough for the loop's tests to take milliseconds."""

    kind = KIND
    summary = "toy 2-D GAN of the loop tests"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig, device: torch.device, *, for_training: bool = True):
        super().__init__(config, device, for_training=for_training)
        w = config.width
        self.g = nn.Sequential(nn.Linear(2, w), nn.ReLU(), nn.Linear(w, 2))
        self.d = nn.Sequential(nn.Linear(2, w), nn.ReLU(), nn.Linear(w, 1))
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=config.lr)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=config.lr)
        self.loss = AdversarialLoss(config.gan_loss)

    def networks(self):
        return {"g": self.g, "d": self.d}

    def optimizers(self):
        return {"g": self.opt_g, "d": self.opt_d}

    def training_data(self):
        data = torch.randn(POINTS, 2, generator=torch.Generator().manual_seed(1)) * 0.5 + 2.0
        stream = BatchStream(data, batch_size=self.config.batch_size, seed=self.config.seed)
        return StreamSource(f"{POINTS} points", stream=stream)

    def train_step(self, batches, step):
        for batch in batches:  # one discriminator update per batch
            (real,) = batch["stream"]
            z = torch.randn(len(real), 2)
            d_loss = self.loss.d_loss(self.d(real), self.d(self.g(z).detach()))
            self.precision.step(d_loss, self.opt_d)
        g_loss = self.loss.g_loss(self.d(self.g(torch.randn(self.config.batch_size, 2))))
        self.precision.step(g_loss, self.opt_g)
        if step == self.config.blow_up_at:
            g_loss = g_loss * float("nan")
        return {"D": d_loss.detach(), "G": g_loss.detach(), "batches": float(len(batches))}

    def sample_grid(self, step):
        return Image.new("RGB", (8, 8), (step % 255, 0, 0))


@pytest.fixture(autouse=True)
def _registered():
    """The registry is process-wide: the toy kind exists only while a test of this module runs."""
    register(Toy2D)
    yield
    registry._KINDS.pop(KIND, None)


QUIET = {"progress": False, "log": lambda *_: None}


def _config(tmp_path, **kw) -> ToyConfig:
    kw = dict(steps=6, batch_size=16, checkpoint_every=3, sample_every=3, log_every=1, device="cpu",
              threads=1, out=str(tmp_path / "run")) | kw  # fmt: skip
    return ToyConfig(**kw).validate()


def _weights_equal(a: Model, b: Model) -> None:
    wa, wb = a.weights(), b.weights()
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_run_folder_holds_everything_a_user_looks_at(tmp_path):
    result = train(_config(tmp_path), **QUIET)  # the kind comes from the config's class
    run = tmp_path / "run"
    assert isinstance(result, TrainResult) and result.step == 6 and result.run_dir == run
    assert result.model_path == run / "model.safetensors" and 0 <= result.data_wait_fraction <= 1
    assert set(result.losses) == {"D", "G", "batches"}
    for name in ("config.yaml", "losses.csv", "losses.png", "index.html", "model.safetensors", "summary.json"):
        assert (run / name).is_file(), name
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [3, 6]
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_0000003.png", "step_0000006.png"]
    assert KIND in (run / "index.html").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["kind"] == KIND and summary["step"] == 6 and summary["final_losses"] == result.losses
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["kind"] == KIND and config["steps"] == 6 and config["width"] == 8
    rows = (run / "losses.csv").read_text().splitlines()
    assert rows[0] == "step,D,G,batches" and len(rows) == 1 + 6  # log_every 1


def test_checkpoint_and_weights_schema(tmp_path):
    train(_config(tmp_path, steps=3), **QUIET)
    run = tmp_path / "run"
    state = safe_torch_load(list_checkpoints(run / "checkpoints")[-1][1])
    assert set(state) == {"format", "kind", "gankit_version", "config", "step", "networks", "optimizers", "scaler",
                          "extra", "data", "rng", "effort", "checksum"}  # fmt: skip
    assert state["format"] == "gankit-checkpoint-2" and state["kind"] == KIND and state["step"] == 3
    assert set(state["networks"]) == set(state["optimizers"]) == {"g", "d"}
    assert state["config"]["width"] == 8 and state["extra"] == {}
    assert state["data"]["stream"]["pos"] == 3 * 16  # the batch source's position: 3 batches of 16
    tensors, meta = load_safetensors(run / "model.safetensors")
    assert meta["format"] == "gankit-model-2" and meta["kind"] == KIND
    assert json.loads(meta["config"])["steps"] == 3 and json.loads(meta["extra"]) == {}
    assert {k.split(".")[0] for k in tensors} == {"g", "d"}
    for name, net_state in state["networks"].items():  # the final weights are the last checkpoint's
        for key, value in net_state.items():
            assert torch.equal(tensors[f"{name}.{key}"], value), (name, key)


def test_old_checkpoints_are_pruned(tmp_path):
    train(_config(tmp_path, steps=7, checkpoint_every=2, keep_checkpoints=2), **QUIET)
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [6, 7]  # 7: the final step
    train(_config(tmp_path / "one", steps=7, checkpoint_every=2, keep_checkpoints=1), **QUIET)
    assert [s for s, _ in list_checkpoints(tmp_path / "one" / "run" / "checkpoints")] == [7]


def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path):
    full = _config(tmp_path / "a")
    straight = train(full, **QUIET)
    part = _config(tmp_path / "b", steps=3)
    assert train(part, **QUIET).step == 3
    lines = []
    resumed = resume(part.out, steps=6, progress=False, log=lines.append)
    assert any("resuming" in line and "from step 3" in line for line in lines)
    assert resumed.step == 6 and resumed.losses == straight.losses
    assert (tmp_path / "b" / "run" / "losses.csv").read_bytes() == (tmp_path / "a" / "run" / "losses.csv").read_bytes()
    assert yaml.safe_load((tmp_path / "b" / "run" / "config.yaml").read_text())["steps"] == 6
    _weights_equal(load_model(full.out, device="cpu"), load_model(part.out, device="cpu"))


def test_wall_and_cpu_time_add_up_over_resumes(tmp_path):
    """Each checkpoint carries the wall and process CPU seconds spent so far, summed over resumes (what
    "equal CPU time" comparisons of runs read); the summary reports the totals."""
    part = _config(tmp_path, steps=3)
    train(part, **QUIET)
    first = safe_torch_load(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1])["effort"]
    assert set(first) == {"seconds", "cpu_seconds"} and first["cpu_seconds"] > 0 and first["seconds"] > 0
    resume(part.out, steps=6, **QUIET)
    second = safe_torch_load(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1])["effort"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert second["cpu_seconds"] > first["cpu_seconds"] and second["seconds"] > first["seconds"]
    assert summary["cpu_seconds"] >= second["cpu_seconds"] and summary["total_seconds"] >= second["seconds"]
    assert summary["seconds"] < summary["total_seconds"]  # this session's loop only


def test_resume_falls_back_to_an_older_checkpoint_and_redoes_the_steps_after_it(tmp_path):
    straight = _config(tmp_path / "a")
    train(straight, **QUIET)
    run = tmp_path / "b" / "run"
    train(_config(tmp_path / "b"), **QUIET)
    newest = list_checkpoints(run / "checkpoints")[-1][1]
    newest.write_bytes(newest.read_bytes()[:200])  # torn: the run restarts from step 3
    (run / "model.safetensors").unlink()
    lines = []
    result = resume(run, progress=False, log=lines.append)
    assert result.step == 6 and any("skipping unreadable checkpoint" in line for line in lines)
    # the rows of steps 4–6 were dropped and logged again: no duplicates, same values
    assert (run / "losses.csv").read_bytes() == (tmp_path / "a" / "run" / "losses.csv").read_bytes()
    _weights_equal(load_model(straight.out, device="cpu"), load_model(run, device="cpu"))


def test_resume_can_point_at_moved_data(tmp_path):
    train(_config(tmp_path, steps=2), **QUIET)
    moved = tmp_path / "moved-data"
    assert resume(tmp_path / "run", steps=3, data_root=str(moved), **QUIET).step == 3
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data_root"] == str(moved)
    state = safe_torch_load(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1])
    assert state["config"]["data_root"] == str(moved)


def test_existing_run_is_refused_without_resume(tmp_path):
    train(_config(tmp_path, steps=3), **QUIET)
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(_config(tmp_path, steps=3), **QUIET)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        resume(tmp_path / "elsewhere", **QUIET)


def test_n_critic_steps_draw_one_batch_per_discriminator_update(tmp_path):
    result = train(_config(tmp_path, steps=4, n_critic=3, checkpoint_every=4), **QUIET)
    assert result.step == 4 and result.losses["batches"] == 3  # --steps counts generator updates
    rows = (tmp_path / "run" / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    state = safe_torch_load(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1])
    assert state["data"]["stream"]["pos"] == 4 * 3 * 16  # 12 batches of 16 drawn from the stream
    adam_steps = {name: int(opt["state"][0]["step"]) for name, opt in state["optimizers"].items()}
    assert adam_steps == {"g": 4, "d": 12}


@pytest.mark.parametrize("log_every", [1, 10])
def test_non_finite_loss_stops_with_the_last_checkpoint_intact(tmp_path, log_every):
    # every step's losses are checked, logged or not
    with pytest.raises(TrainingDiverged, match=r"G=nan at step 5.*step_0000003\.pt"):
        train(_config(tmp_path, blow_up_at=5, log_every=log_every), **QUIET)
    run = tmp_path / "run"
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [3]
    assert not (run / "model.safetensors").exists() and not (run / "summary.json").exists()
    csv = run / "losses.csv"
    logged = [r.split(",")[0] for r in csv.read_text().splitlines()[1:]] if csv.exists() else []
    assert logged == (["1", "2", "3", "4"] if log_every == 1 else [])  # nothing of the bad step


def test_load_model_from_checkpoint_when_no_final_weights(tmp_path):
    train(_config(tmp_path), **QUIET)
    final = load_model(tmp_path / "run", device="cpu")  # from model.safetensors
    assert isinstance(final, Toy2D) and not final.g.training and not final.d.training
    (tmp_path / "run" / "model.safetensors").unlink()
    model = load_model(tmp_path / "run", device="cpu")
    assert model.kind == KIND and not model.g.training
    _weights_equal(model, final)
    ckpt = load_model(list_checkpoints(tmp_path / "run" / "checkpoints")[0][1], device="cpu")  # a .pt file
    assert ckpt.kind == KIND and not torch.equal(ckpt.weights()["g.0.weight"], final.weights()["g.0.weight"])


def test_truncated_final_weights_give_a_clear_error(tmp_path):
    train(_config(tmp_path), **QUIET)
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
    source = StreamSource("two streams", x=BatchStream(data, batch_size=3, seed=0), y=BatchStream(data, batch_size=2,
                          seed=1))  # fmt: skip
    source.next()
    state = source.state_dict()
    after = source.next()
    fresh = StreamSource("two streams", x=BatchStream(data, batch_size=3, seed=5), y=BatchStream(data, batch_size=2,
                         seed=6))  # fmt: skip
    fresh.load_state_dict(state)
    again = fresh.next()
    assert after.keys() == again.keys() == {"x", "y"}
    assert all(torch.equal(after[k][0], again[k][0]) for k in after)


def test_a_dataset_the_model_cannot_train_on_is_refused_up_front(tmp_path):
    with pytest.raises(ConfigError, match="--dataset"):
        _config(tmp_path, dataset="cifar10")


def test_the_kind_is_that_of_the_config_class_and_unique(tmp_path):
    with pytest.raises(ConfigError, match="GANConfig"):
        train(GANConfig(out=str(tmp_path / "run")), **QUIET)
    assert registry.model_class(KIND) is Toy2D

    class Impostor(Toy2D):
        pass

    with pytest.raises(GankitError, match="registered twice"):
        register(Impostor)


def test_steps_after_the_first_run_under_the_training_heap_policy(tmp_path, monkeypatch):
    """The first step tunes convolutions (temporaries that would stay in a kept heap); every later one
    runs with the heap kept (HeapPolicy.for_training), left when the run ends."""
    import contextlib

    import gankit.training.loop as loop

    events: list[str] = []

    @contextlib.contextmanager
    def recorded():
        events.append("keep heap")
        yield
        events.append("restore heap")

    step = loop._train_step
    monkeypatch.setattr(loop.HEAP, "for_training", recorded)
    monkeypatch.setattr(loop, "_train_step", lambda *a: events.append("step") or step(*a))
    train(_config(tmp_path, steps=3), **QUIET)
    assert events == ["step", "keep heap", "step", "step", "restore heap"]
