"""``gankit eval RUN`` without --out writes its report into ``RUN/eval/`` (where ``gankit serve RUN``
shows it); --out still wins, and folder mode still needs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gankit.cli import main
from gankit.metrics.cli import default_out

LEGACY_CGAN = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_0" / "cgan"


def test_default_out_is_the_runs_eval_folder(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert default_out(run) == run / "eval"
    assert default_out(run / "model.safetensors") == run / "eval"
    assert default_out(run / "checkpoints" / "step_0000004.pt") == run / "eval"


def test_eval_run_writes_run_eval_report_by_default(shared_data, tmp_path, monkeypatch):
    from gankit.metrics import digits
    from gankit.metrics.classifier import ClassifierConfig

    tiny = ClassifierConfig(image_size=28, width=4, steps=20, batch_size=32, flip=False, max_train_per_class=500)
    monkeypatch.setattr(digits, "DIGIT_CLASSIFIER", tiny)
    monkeypatch.setattr(digits, "SAMPLES_PER_CLASS", 20)
    run = Path(shutil.copytree(LEGACY_CGAN, tmp_path / "cgan"))
    common = ["--data-root", str(shared_data), "--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", str(run), *common]) == 0
    report = json.loads((run / "eval" / "report.json").read_text())
    assert "label_accuracy" in report["metrics"] and (run / "eval" / "report.html").is_file()
    elsewhere = tmp_path / "elsewhere"
    assert main(["eval", str(run / "model.safetensors"), *common, "--out", str(elsewhere)]) == 0
    assert (elsewhere / "report.json").is_file()


def test_folder_mode_still_needs_out(tmp_path, capsys):
    assert main(["eval", "--real", str(tmp_path), "--fake", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--adaptation-fits", "0"), ("--adaptation-images", "5"), ("--size", "4")])
def test_a_bad_number_for_eval_is_refused_naming_its_flag(tmp_path, capsys, flag, value):
    assert main(["eval", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} {value}: expected a number" in err[0], err
