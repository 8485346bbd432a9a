import os

import pytest
import torch

from gankit.errors import CheckpointError
from gankit.io import (
    atomic_torch_save,
    atomic_write_text,
    list_checkpoints,
    load_safetensors,
    safe_torch_load,
    save_safetensors,
)
from gankit.models.pool import ImagePool
from gankit.models.schedules import lr_factor
from gankit.training.checkpoint import prune_checkpoints, rng_state, set_rng_state


def test_pool_fills_then_mixes_and_resumes_exactly():
    pool = ImagePool(3, seed=1)
    first = [pool.query(torch.full((1, 1, 2, 2), float(i))) for i in range(3)]
    assert [f.item() if f.numel() == 1 else f[0, 0, 0, 0].item() for f in first] == [0, 1, 2]
    state = pool.state_dict()
    outs = [pool.query(torch.full((1, 1, 2, 2), 10.0 + i))[0, 0, 0, 0].item() for i in range(20)]
    assert any(o < 10 for o in outs) and any(o >= 10 for o in outs)  # history images come back
    clone = ImagePool(0)
    clone.load_state_dict(state)
    again = [clone.query(torch.full((1, 1, 2, 2), 10.0 + i))[0, 0, 0, 0].item() for i in range(20)]
    assert again == outs


def test_pool_size_zero_passes_through():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(ImagePool(0).query(x), x)


def test_linear_schedule_constant_then_decay():
    total = 200
    assert lr_factor(0, total) == 1.0 and lr_factor(99, total) == 1.0
    assert lr_factor(150, total) == pytest.approx(0.5)
    assert lr_factor(199, total) == pytest.approx(0.01)
    assert lr_factor(10, total, "constant") == 1.0
    assert lr_factor(1000, total, "inverse-time", time_decay=1e-3) == pytest.approx(0.5)


def test_atomic_write_never_leaves_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.pt"
    atomic_torch_save({"x": torch.ones(3)}, target)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_torch_save({"x": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.equal(safe_torch_load(target)["x"], torch.ones(3))  # old content intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp files left


def test_safe_load_errors_name_the_file(tmp_path):
    good = tmp_path / "good.pt"
    atomic_torch_save({"w": torch.randn(100, 100)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for bad in (truncated, empty, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError, match=bad.name):
            safe_torch_load(bad)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        safe_torch_load(path)
    assert not (tmp_path / "pwned").exists()


def test_rng_state_roundtrip():
    state = rng_state()
    a = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    set_rng_state(state)
    b = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_checkpoint_listing_and_pruning(tmp_path):
    for s in (10, 2, 30):
        atomic_write_text(tmp_path / f"step_{s:07d}.pt", "x")
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 10, 30]
    prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10, 30]


def test_timed_checkpoints_never_push_out_the_scheduled_ones(tmp_path):
    """A starved run whose --checkpoint-minutes timer fires every few steps keeps its --checkpoint-every
    schedule and only the newest checkpoint written in between."""

    def steps():
        return [s for s, _ in list_checkpoints(tmp_path)]

    for s in (500, 536, 539, 543, 1000, 1004, 1011):
        atomic_write_text(tmp_path / f"step_{s:07d}.pt", "x")
        prune_checkpoints(tmp_path, 2, every=500)
    assert steps() == [500, 1000, 1011]
    atomic_write_text(tmp_path / f"step_{1500:07d}.pt", "x")
    prune_checkpoints(tmp_path, 2, every=500)
    assert steps() == [1000, 1500]  # the timed 1011 is superseded, the oldest scheduled one goes


def test_safetensors_roundtrip_and_corruption(tmp_path):
    path = save_safetensors({"a": torch.arange(6.0)}, tmp_path / "w.safetensors", {"k": "v"})
    tensors, meta = load_safetensors(path)
    assert torch.equal(tensors["a"], torch.arange(6.0)) and meta == {"k": "v"}
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="w.safetensors"):
        load_safetensors(path)
