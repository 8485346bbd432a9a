"""Run folders written by gankit 0.1.0 (commit 9b55055; tests/fixtures/v0_1_0/make.sh made them) keep
working: translate, sample, export and --resume read both old schemas, and give 0.1.0's results."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.errors import CheckpointError
from gankit.io import atomic_torch_save, list_checkpoints
from gankit.models.persist import load_model, read_checkpoint

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_0"
KINDS = ("cyclegan", "cyclegan-ncritic2", "cgan", "sgan", "progan")


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


@pytest.fixture
def old_run(tmp_path):
    def copy(name: str) -> Path:
        return Path(shutil.copytree(OLD / name, tmp_path / name))

    return copy


@pytest.mark.parametrize(
    "direction, image", [("a2b", "testA/n07740461_10011.jpg"), ("b2a", "testB/n07749192_10081.jpg")]
)
def test_translation_of_an_old_cyclegan_run_equals_what_0_1_0_gave(shared_data, tmp_path, direction, image):
    # the old run was trained with --deterministic, so it translates with PyTorch's own convolutions: exact on
    # the CPU that wrote the fixture; another CPU's vector unit (AVX2 against AVX-512) sums in another order
    # and may round a handful of 8-bit values the other way (seen on AVX2: 2 of 196,608 values, by 1)
    out = tmp_path / "out"
    assert main(["translate", str(OLD / "cyclegan"), str(shared_data / "apple2orange" / image), "--out", str(out),
                 "--direction", direction]) == 0  # fmt: skip
    name = f"{Path(image).stem}_{direction}.png"
    diff = np.abs(pixels(out / name) - pixels(OLD / "outputs" / f"cyclegan-{direction}" / name))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


@pytest.mark.parametrize("name", KINDS)
def test_old_runs_load_from_weights_and_from_checkpoints(name):
    from_weights = load_model(OLD / name / "model.safetensors", "cpu")
    ckpt = list_checkpoints(OLD / name / "checkpoints")[-1][1]
    from_ckpt = load_model(ckpt, "cpu")
    assert from_weights.kind == from_ckpt.kind == name.split("-")[0]
    for net, module in from_weights.networks().items():
        other = from_ckpt.networks()[net].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items())


@pytest.mark.parametrize("kind", ["cgan", "progan"])
def test_samples_of_old_runs_match_0_1_0(tmp_path, kind):
    out = tmp_path / "s.png"
    n = {"cgan": "10", "progan": "4"}[kind]
    assert main(["sample", str(OLD / kind), "--n", n, "--seed", "0", "--out", str(out), "--device", "cpu"]) == 0
    # the grid equals 0.1.0's up to one grey level (thread-count rounding in the convolutions)
    assert np.abs(pixels(out) - pixels(OLD / "outputs" / f"{kind}-sample.png")).max() <= 1


@pytest.mark.parametrize("name", KINDS)
def test_old_runs_resume(old_run, shared_data, name):
    run = old_run(name)
    before = read_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])["step"]
    target = before + 2
    assert main(["train", "--resume", str(run), "--steps", str(target), "--data-root", str(shared_data),
                 "--no-progress"]) == 0  # fmt: skip
    state = read_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    assert state["format"] == "gankit-checkpoint-2" and state["step"] == target
    assert (run / "model.safetensors").is_file() and load_model(run, "cpu").kind == name.split("-")[0]


def test_an_old_n_critic_checkpoint_is_converted_to_generator_steps():
    state = read_checkpoint(OLD / "cyclegan-ncritic2" / "checkpoints" / "step_0000004.pt")
    assert state["step"] == 2 and state["config"]["steps"] == 2  # 4 discriminator updates = 2 generator steps
    assert state["data"]["position"] == 4  # the images it had consumed: 4 batches of 1


def test_an_old_n_critic_checkpoint_between_generator_steps_is_refused(old_run, shared_data):
    run = old_run("cyclegan-ncritic2")
    path = list_checkpoints(run / "checkpoints")[-1][1]
    state = torch.load(path, weights_only=True)
    state["step"] = 3
    atomic_torch_save(state, run / "checkpoints" / "step_0000005.pt")
    with pytest.raises(CheckpointError, match=r"step_0000005\.pt: .*--n-critic 2.*step 3 is not a multiple of 2"):
        read_checkpoint(run / "checkpoints" / "step_0000005.pt")
    assert main(["train", "--resume", str(run), "--data-root", str(shared_data), "--no-progress"]) == 1


def test_old_cyclegan_run_exports(tmp_path):
    assert main(["export", str(OLD / "cyclegan"), "--format", "torchscript", "--out", str(tmp_path / "g.pt")]) == 0
