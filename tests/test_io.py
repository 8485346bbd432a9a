"""Durable, checked files: the folder is fsynced after each atomic rename, checkpoints carry a
checksum that catches damage torch.load cannot see, failed writes name the file and the free space,
and files holding code are refused without advice to load them anyway."""

from __future__ import annotations

import errno
import os
import stat
import struct
import zipfile

import pytest
import torch

from gankit.errors import CheckpointError, WriteError
from gankit.io import atomic_torch_save, atomic_write_bytes, content_digest, safe_torch_load
from gankit.models.persist import newest_readable_checkpoint, read_checkpoint, upgrade_checkpoint


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode))),
                                                 real_fsync(fd))[1])  # fmt: skip
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", None)), real_replace(a, b))[1])
    atomic_write_bytes(tmp_path / "sub" / "f.bin", b"data")
    assert events == [("fsync", False), ("replace", None), ("fsync", True)]  # file, rename, then its folder


def test_a_failed_write_names_the_file_the_bytes_and_the_free_space(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(WriteError, match=r"f\.bin: cannot write 5 bytes: No space left on device \([\d,]+ bytes free"):
        atomic_write_bytes(target, b"newer")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert issubclass(WriteError, OSError)  # code that caught the OSError still does


def _state(step: int) -> dict:
    state = {"format": "gankit-checkpoint-2", "kind": "toy", "step": step, "config": {"lr": 2e-4},
             "networks": {"g": {"w": torch.arange(4096, dtype=torch.float32), "n": torch.tensor(3)}},
             "rng": {"python": (3, (1, 2, 3), None)}}  # fmt: skip
    return state | {"checksum": content_digest(state)}


def _flip_a_byte_inside(path, member_suffix: str) -> None:
    """Damage one byte of a stored tensor record so that the zip still reads and the pickle still loads."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member_suffix) and i.file_size > 1000)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_that_still_loads_is_caught_and_skipped(tmp_path):
    folder = tmp_path / "checkpoints"
    atomic_torch_save(_state(1), folder / "step_0000001.pt")
    atomic_torch_save(_state(2), folder / "step_0000002.pt")
    newest = folder / "step_0000002.pt"
    _flip_a_byte_inside(newest, "/data/0")
    assert not torch.equal(safe_torch_load(newest)["networks"]["g"]["w"], torch.arange(4096.0))  # torch loads it
    with pytest.raises(CheckpointError, match=r"step_0000002\.pt: damaged"):
        read_checkpoint(newest)
    warnings = []
    path, state = newest_readable_checkpoint(tmp_path, log=warnings.append)
    assert path.name == "step_0000001.pt" and state["step"] == 1
    assert "step_0000002.pt" in warnings[0]


def test_the_digest_sees_values_keys_dtypes_and_shapes():
    base = {"a": torch.zeros(4), "b": [1, 2.5, "x", None]}
    variants = [
        {"a": torch.zeros(4, dtype=torch.float64), "b": [1, 2.5, "x", None]},
        {"a": torch.zeros(2, 2), "b": [1, 2.5, "x", None]},
        {"a": torch.tensor([0.0, 0, 0, 1e-30]), "b": [1, 2.5, "x", None]},
        {"a": torch.zeros(4), "b": [1, 2.5, "y", None]},
        {"c": torch.zeros(4), "b": [1, 2.5, "x", None]},
    ]
    assert content_digest(base) == content_digest({"b": [1, 2.5, "x", None], "a": torch.zeros(4)})
    assert len({content_digest(v) for v in variants} | {content_digest(base)}) == len(variants) + 1
    unchecked = _state(5)
    del unchecked["checksum"]
    assert upgrade_checkpoint(unchecked, "old.pt")["step"] == 5  # checkpoints written before checksums load


class Payload:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_a_file_with_code_is_refused_without_advice_to_load_it_anyway(tmp_path):
    for name, obj in (("code.pt", {"x": Payload()}), ("module.pt", {"net": torch.nn.Linear(2, 2)})):
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError) as caught:
            safe_torch_load(tmp_path / name)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / name}: refused") and "never runs code" in message
        assert "weights_only" not in message and "\n" not in message
    with pytest.raises(CheckpointError, match=r"\(posix\.system\)"):  # says what it found
        safe_torch_load(tmp_path / "code.pt")
