"""A short real-data training run must actually learn: the cycle loss falls well below its start."""

import csv

import pytest

from gankit.models.cyclegan import CycleGANConfig
from gankit.training.loop import train


@pytest.mark.slow
def test_cycle_loss_falls_on_apple2orange(shared_data, tmp_path):
    config = CycleGANConfig(
        dataset="apple2orange", data_root=str(shared_data), size=32, steps=240, ngf=16, ndf=16, blocks=2,
        lr=5e-4, schedule="constant", log_every=1, sample_every=1000, checkpoint_every=1000,
        out=str(tmp_path / "run"), threads=2, workers=1, seed=0,
    )  # fmt: skip
    result = train(config, progress=False, log=lambda *_: None)
    with open(result.run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    cyc = [float(r["cycle_a"]) + float(r["cycle_b"]) for r in rows]
    start, end = sum(cyc[:10]) / 10, sum(cyc[-30:]) / 30
    assert end < 0.75 * start, f"cycle loss {start:.3f} → {end:.3f}"
    assert result.data_wait_fraction < 0.2
