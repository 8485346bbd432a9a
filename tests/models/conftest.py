import json

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The companion-model tests use tiny networks."""


@pytest.fixture
def eval_digit_run(shared_data, tmp_path, monkeypatch):
    """``gankit eval RUN`` of an MNIST companion run with a tiny digit classifier and few samples (the
    defaults are measured in docs/companions.md); returns report.json's metrics."""
    from gankit.cli import main
    from gankit.metrics import digits
    from gankit.metrics.classifier import ClassifierConfig

    tiny = ClassifierConfig(image_size=28, width=4, steps=20, batch_size=32, flip=False, max_train_per_class=500)
    monkeypatch.setattr(digits, "DIGIT_CLASSIFIER", tiny)
    monkeypatch.setattr(digits, "SAMPLES_PER_CLASS", 20)

    def run(run_dir, out_dir):
        argv = ["eval", str(run_dir), "--data-root", str(shared_data), "--out", str(out_dir),
                "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
        assert main(argv) == 0
        return json.loads((out_dir / "report.json").read_text())["metrics"]

    return run
