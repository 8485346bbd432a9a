"""Exported generators (ONNX, TorchScript) match PyTorch at several sizes and run without gankit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gankit.api import CycleGAN
from gankit.errors import GankitError
from gankit.inference.export import ExportError, check_export, export_generator, read_export_metadata
from gankit.models.cyclegan import CycleGANConfig

CASES = [("resnet", 1, 3), ("resnet", 3, 3), ("unet-upsample", 1, 3), ("unet-upsample", 3, 3)]


def tiny_model(generator: str, ca: int, cb: int) -> CycleGAN:
    torch.manual_seed(0)
    config = CycleGANConfig(channels_a=ca, channels_b=cb, size=32, ngf=4, blocks=1, generator=generator)
    return CycleGAN(config.validate(), with_discriminators=False)


def _needs(fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(generator, ca, cb, fmt) → (model, path), exported once per module."""
    cache: dict = {}
    root = tmp_path_factory.mktemp("export")

    def get(generator: str, ca: int, cb: int, fmt: str):
        key = (generator, ca, cb, fmt)
        if key not in cache:
            model = tiny_model(generator, ca, cb)
            suffix = ".onnx" if fmt == "onnx" else ".pt"
            cache[key] = model, export_generator(model, "a2b", fmt, root / f"{generator}-{ca}{cb}{suffix}")
        return cache[key]

    return get


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize(("generator", "ca", "cb"), CASES)
def test_export_matches_pytorch_at_two_sizes(exported, generator, ca, cb, fmt):
    _needs(fmt)
    model, path = exported(generator, ca, cb, fmt)
    multiple = model.generator("a2b").size_multiple
    for size, batch in ((2 * multiple, 1), (3 * multiple, 2)):  # different H, W and N: axes are dynamic
        assert check_export(model, "a2b", path, size=size, batch=batch) < 1e-3


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_metadata(exported, fmt):
    _needs(fmt)
    _, path = exported("unet-upsample", 1, 3, fmt)
    meta = read_export_metadata(path)
    assert meta["direction"] == "a2b"
    assert (meta["in_channels"], meta["out_channels"]) == (1, 3)
    assert meta["size_multiple"] == 16
    assert meta["input_range"] == [-1.0, 1.0]
    assert meta["export_format"] == fmt
    from gankit import __version__

    assert meta["gankit_version"] == __version__
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(path))
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["direction"] == "a2b" and props["size_multiple"] == "16"
        assert json.loads(props["gankit"]) == meta
        assert proto.opset_import[0].version == 17
        ops = {n.op_type for n in proto.graph.node}
        assert "InstanceNormalization" in ops


def test_onnx_reflection_pad_and_instance_norm(exported):
    _needs("onnx")
    import onnx

    _, path = exported("resnet", 1, 3, "onnx")
    nodes = onnx.load(str(path)).graph.node
    modes = {a.s for n in nodes if n.op_type == "Pad" for a in n.attribute if a.name == "mode"}
    assert b"reflect" in modes
    assert any(n.op_type == "InstanceNormalization" for n in nodes)


def test_b2a_direction(tmp_path):
    model = tiny_model("resnet", 1, 3)
    path = export_generator(model, "b2a", "torchscript", tmp_path / "b2a.pt")
    meta = read_export_metadata(path)
    assert (meta["direction"], meta["in_channels"], meta["out_channels"]) == ("b2a", 3, 1)
    assert check_export(model, "b2a", path, size=20) < 1e-3


def _clean_run(code: str, path: Path, cwd: Path) -> str:
    """Run ``code`` in an isolated interpreter (-I: no PYTHONPATH, no user site, no cwd) with a bare env;
    the code blocks ``import gankit``, so the exported file must run on its own."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(code), str(path)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_runs_without_gankit(exported, tmp_path, fmt):
    _needs(fmt)
    _, path = exported("resnet", 1, 3, fmt)
    if fmt == "onnx":
        code = """
            import json, sys
            import numpy as np, onnxruntime as ort
            sys.modules["gankit"] = None  # gankit may be installed here; make any use of it fail
            s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
            meta = json.loads(s.get_modelmeta().custom_metadata_map["gankit"])
            for hw in ((24, 36), (40, 8)):
                x = np.random.uniform(-1, 1, (2, meta["in_channels"], *hw)).astype(np.float32)
                (y,) = s.run(None, {"input": x})
                print(y.shape, y.dtype, float(np.abs(y).max()) <= 1.0)
        """
    else:
        code = """
            import json, sys
            import torch
            sys.modules["gankit"] = None  # gankit may be installed here; make any use of it fail
            extra = {"gankit.json": ""}
            m = torch.jit.load(sys.argv[1], _extra_files=extra)
            meta = json.loads(extra["gankit.json"])
            for hw in ((24, 36), (40, 8)):
                with torch.no_grad():
                    y = m(torch.rand(2, meta["in_channels"], *hw) * 2 - 1)
                print(tuple(y.shape), str(y.dtype).replace("torch.", ""), float(y.abs().max()) <= 1.0)
        """
    lines = _clean_run(code, path, tmp_path).splitlines()
    assert [line.replace(" ", "") for line in lines] == ["(2,3,24,36)float32True", "(2,3,40,8)float32True"]


def test_unknown_format(tmp_path):
    model = tiny_model("resnet", 1, 3)
    with pytest.raises(ExportError, match=r"unknown export format 'tflite'.*onnx, torchscript"):
        export_generator(model, "a2b", "tflite", tmp_path / "g.tflite")
    with pytest.raises(GankitError, match="direction"):
        export_generator(model, "x2y", "torchscript", tmp_path / "g.pt")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_folder(tmp_path):
    model = tiny_model("resnet", 1, 3)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="is not a folder"):
        export_generator(model, "a2b", "torchscript", blocker / "sub" / "g.pt")
    with pytest.raises(ExportError, match="is a folder"):
        export_generator(model, "a2b", "torchscript", tmp_path)


def test_atomic_replace_leaves_no_temp_files(tmp_path):
    model = tiny_model("resnet", 1, 3)
    out = tmp_path / "g.pt"
    out.write_bytes(b"old")
    export_generator(model, "a2b", "torchscript", out)
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]
    assert read_export_metadata(out)["direction"] == "a2b"


def test_fixed_shape_onnx(tmp_path):
    _needs("onnx")
    model = tiny_model("resnet", 1, 3)
    path = export_generator(model, "a2b", "onnx", tmp_path / "fixed.onnx", dynamic=False, opset=13)
    meta = read_export_metadata(path)
    assert meta["fixed_input_shape"] == [1, 1, 32, 32] and meta["opset"] == 13
    assert check_export(model, "a2b", path) < 1e-3
