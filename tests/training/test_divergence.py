"""A NaN loss stops training with a clear error and keeps the last good checkpoint."""

import pytest
import torch

from gankit.errors import TrainingDiverged
from gankit.io import list_checkpoints, safe_torch_load
from gankit.models.cyclegan import CycleGANConfig, CycleGANNetworks
from gankit.training.loop import resume, train


def test_nan_loss_raises_and_keeps_checkpoint(shared_data, tmp_path, monkeypatch):
    original = CycleGANNetworks.generator_loss
    calls = {"n": 0}

    def poisoned(self, real_a, real_b, out, *rest):
        total, terms = original(self, real_a, real_b, out, *rest)
        calls["n"] += self.training  # not the memory estimate before the run, made in eval mode
        return (total * torch.nan if calls["n"] > 2 else total), terms

    monkeypatch.setattr(CycleGANNetworks, "generator_loss", poisoned)
    run = tmp_path / "run"
    config = CycleGANConfig(dataset="apple2orange", data_root=str(shared_data), size=32, steps=6, ngf=4, ndf=4,
                            blocks=1, checkpoint_every=2, out=str(run), workers=0)  # fmt: skip
    with pytest.raises(TrainingDiverged, match=r"step 3.*step_0000002\.pt"):
        train(config, progress=False, log=lambda *_: None)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [2]
    state = safe_torch_load(list_checkpoints(run / "checkpoints")[-1][1])
    assert all(torch.isfinite(v).all() for v in state["networks"]["g_ab"].values() if v.is_floating_point())

    monkeypatch.setattr(CycleGANNetworks, "generator_loss", original)
    result = resume(run, progress=False, log=lambda *_: None)  # the run continues from the good checkpoint
    assert result.step == 6
