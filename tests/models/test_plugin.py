"""Adding a model is one file: a kind defined outside the package (tests/fixtures/plugin_toy), found
through the GANKIT_PLUGINS setting, trains, resumes, samples and evaluates through the `gankit`
command run as a subprocess, with no edit anywhere in gankit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from gankit.io import list_checkpoints
from gankit.models.persist import read_checkpoint

PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_toy"


def gankit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PLUGIN), "GANKIT_PLUGINS": "toy_gan,toy_gan_eval", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gankit", *args], env=env, capture_output=True, text=True, timeout=300)


def test_a_plugin_kind_trains_resumes_samples_and_evaluates(tmp_path):
    listed = gankit("models")
    assert listed.returncode == 0 and "toy2d" in listed.stdout and "cyclegan" in listed.stdout
    run = tmp_path / "run"
    first = gankit("train", "toy2d", "--steps", "40", "--checkpoint-every", "20", "--sample-every", "20",
                   "--threads", "1", "--no-progress", "--out", str(run))  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "checkpoints", "model.safetensors", "samples",
                                               "losses.csv", "index.html", "summary.json"}  # fmt: skip
    more = gankit("train", "--resume", str(run), "--steps", "60", "--no-progress")
    assert more.returncode == 0 and "from step 40" in more.stdout, more.stderr
    assert read_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])["step"] == 60
    sample = gankit("sample", str(run), "--n", "100", "--out", str(tmp_path / "s.png"))
    assert sample.returncode == 0 and (tmp_path / "s.png").stat().st_size > 0
    ev = gankit("eval", str(run), "--out", str(tmp_path / "eval"))
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "eval" / "report.json").read_text())["metrics"]
    assert metrics["mean_error"] < 4.0 and torch.isfinite(torch.tensor(metrics["std"]))


def test_without_the_plugin_the_kind_is_unknown_and_a_bad_plugin_is_named(tmp_path):
    unknown = gankit("train", "toy2d", "--out", str(tmp_path / "x"), env={"GANKIT_PLUGINS": ""})
    assert unknown.returncode == 2 and not (tmp_path / "x").exists()
    broken = gankit("models", env={"GANKIT_PLUGINS": "no_such_plugin_module"})
    assert broken.returncode != 0 and "no_such_plugin_module" in broken.stderr
