"""Export a translation generator (CycleGAN, CUT, …) to ONNX or TorchScript so it runs without gankit.

The exported network takes ``(N, C_in, H, W)`` float32 in [-1, 1] and returns ``(N, C_out, H, W)``
in [-1, 1] (with the default tanh output). N, H and W are dynamic; H and W must be multiples of the
generator's ``size_multiple`` (pad first, e.g. with reflection, and crop the result). Everything a
consumer needs is stored in the file: ONNX ``metadata_props`` (one key per field plus ``gankit``, a JSON
object) or, for TorchScript, the extra file ``gankit.json``.

A model with latent codes (Augmented CycleGAN, ``--latent-dim K``) exports its conditional generator
with a second input, ``z``: (N, K) float32 codes — one per image, or (1, K) for the whole batch —
drawn from the prior N(0, I) for new translations (metadata ``latent_dim`` = K, ``code_name`` = ``z``).

ONNX uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): it honours the
requested opset (the dynamo exporter emits opset 18 for reflection ``Pad`` whatever is asked), maps
reflection padding to ``Pad(mode="reflect")`` and instance norm to ``InstanceNormalization``, and takes
a fraction of a second instead of several seconds. Files are written atomically.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from gankit.errors import GankitError
from gankit.io import atomic_write_bytes

FORMATS = ("onnx", "torchscript")
INPUT_NAME = "input"
CODE_NAME = "z"
OUTPUT_NAME = "output"
METADATA_FILE = "gankit.json"  # TorchScript _extra_files key
METADATA_KEY = "gankit"  # ONNX metadata_props key holding the whole JSON object


class ExportError(GankitError):
    """A generator cannot be exported (or checked) as asked."""


def _latent_dim(model) -> int:
    return int(getattr(model, "latent_dim", 0) or 0)


def _plain_generator(model, direction: str) -> nn.Module:
    """An eval-mode float32 CPU copy, so exporting never changes the caller's model (for a model with
    latent codes, the conditional generator taking ``(x, z)``)."""
    net = model.conditional_generator(direction) if _latent_dim(model) else model.generator(direction)
    return copy.deepcopy(net).cpu().float().eval()


def _size_multiple(net: nn.Module) -> int:
    return int(getattr(net, "size_multiple", 1))


def _round_up(size: int, multiple: int) -> int:
    return max(multiple, -(-size // multiple) * multiple)


def export_metadata(model, direction: str, fmt: str, *, opset: int | None = None, dynamic: bool = True) -> dict:
    """The JSON object stored in an exported file."""
    from gankit.version import VERSION as __version__

    net = model.generator(direction)
    c_in, c_out = model.channels(direction)
    config = model.config
    meta = {
        "format": "gankit-generator-export-1",
        "export_format": fmt,
        "direction": direction,
        "in_channels": int(c_in),
        "out_channels": int(c_out),
        "size_multiple": _size_multiple(net),
        "input_range": [-1.0, 1.0],
        "output_range": [-1.0, 1.0] if config.final == "tanh" else ([0.0, 1.0] if config.final == "sigmoid" else None),
        "layout": "NCHW float32",
        "dynamic_shapes": bool(dynamic),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "generator": config.generator,
        "model_kind": getattr(model, "kind", "cyclegan"),
        "gankit_version": __version__,
        "torch_version": torch.__version__,
    }
    if _latent_dim(model):
        meta |= {"latent_dim": _latent_dim(model), "code_name": CODE_NAME, "code_prior": "N(0, I)"}
    if opset is not None:
        meta["opset"] = int(opset)
    return meta


def _check_out(out: Path) -> None:
    """Fail before the (slow) export when the file cannot be written."""
    parent = out.parent
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name such as {out / 'generator.onnx'}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ExportError(f"{out}: cannot write here, {parent} is not a folder") from None
    except OSError as e:
        raise ExportError(f"{out}: cannot create output folder {parent} ({e.strerror or e})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: output folder {parent} is not writable")


def _onnx_bytes(net: nn.Module, example: tuple[torch.Tensor, ...], opset: int, dynamic: bool, meta: dict) -> bytes:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the 'onnx' package: pip install 'gankit[export]'") from None
    axes = {0: "batch", 2: "height", 3: "width"}
    names = [INPUT_NAME, CODE_NAME][: len(example)]
    dynamic_axes = {INPUT_NAME: axes, OUTPUT_NAME: axes} | ({CODE_NAME: {0: "codes"}} if len(example) > 1 else {})
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # legacy-exporter deprecation and benign constant-folding / instance-norm notices
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # static channel / size checks in InstanceNorm
        torch.onnx.export(
            net, example, buf, dynamo=False, opset_version=opset, input_names=names, output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes if dynamic else None, do_constant_folding=True,
        )  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    fields = {
        k: ("" if v is None else json.dumps(v) if isinstance(v, list | bool) else str(v)) for k, v in meta.items()
    }
    fields[METADATA_KEY] = json.dumps(meta)
    onnx.helper.set_model_props(proto, fields)
    proto.producer_name = "gankit"
    proto.doc_string = (
        f"gankit {meta['model_kind']} generator {meta['direction']}: (N, {meta['in_channels']}, H, W) float32 in "
        "[-1, 1] -> "
        f"(N, {meta['out_channels']}, H, W); H, W multiples of {meta['size_multiple']}"
    )
    if "latent_dim" in meta:
        proto.doc_string += f"; second input z: (N or 1, {meta['latent_dim']}) latent codes, prior N(0, I)"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _torchscript_bytes(net: nn.Module, example: tuple[torch.Tensor, ...], meta: dict) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            scripted = torch.jit.script(net)  # shape-generic: H, W and N stay dynamic
        except Exception:  # fall back to tracing for modules TorchScript cannot compile
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # static size checks in instance norm
            with torch.no_grad():
                scripted = torch.jit.trace(net, example, check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf, _extra_files={METADATA_FILE: json.dumps(meta)})
    return buf.getvalue()


def export_generator(
    model, direction: str, fmt: str, out: str | Path, *, opset: int = 17, dynamic: bool = True, size: int | None = None
) -> Path:
    """Export the ``direction`` generator of a translator (any model with a ``generator(direction)``) to ``out``.

    ``fmt`` is ``"onnx"`` or ``"torchscript"``. With ``dynamic`` (default) batch, height and width are
    free; otherwise the file only accepts ``(1, C_in, size, size)`` where ``size`` defaults to the training
    crop size (rounded up to ``size_multiple``). Returns ``out``; the file appears atomically.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if direction not in getattr(model, "directions", ("a2b", "b2a")):
        have = " and ".join(getattr(model, "directions", ("a2b", "b2a")))
        raise ExportError(f"--direction {direction}: this model translates {have} only")
    out = Path(out)
    _check_out(out)
    net = _plain_generator(model, direction)
    multiple = _size_multiple(net)
    side = _round_up(size or model.config.size or 256, multiple)
    c_in, _ = model.channels(direction)
    example = (torch.zeros(1, c_in, side, side),) + (
        (torch.zeros(1, _latent_dim(model)),) if _latent_dim(model) else ()
    )
    meta = export_metadata(model, direction, fmt, opset=opset if fmt == "onnx" else None, dynamic=dynamic)
    if not dynamic:
        meta["fixed_input_shape"] = [1, c_in, side, side]
    if fmt == "onnx":
        data = _onnx_bytes(net, example, opset, dynamic, meta)
    else:
        data = _torchscript_bytes(net, example, meta)
    return atomic_write_bytes(out, data)  # a failure is a WriteError naming the file and the free space


def read_export_metadata(path: str | Path) -> dict:
    """The gankit metadata of an exported file (format told by its content, not its suffix)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":  # TorchScript archives are zip files
        extra = {METADATA_FILE: ""}
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        if not extra[METADATA_FILE]:
            raise ExportError(f"{path}: TorchScript file without gankit metadata")
        return json.loads(extra[METADATA_FILE])
    try:
        import onnx
    except ImportError:
        raise ExportError("reading ONNX metadata needs the 'onnx' package") from None
    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ExportError(f"{path}: ONNX file without gankit metadata")
    return json.loads(props[METADATA_KEY])


def _run_exported(path: Path, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    meta = read_export_metadata(path)
    inputs = (x,) if z is None else (x, z)
    if meta["export_format"] == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("checking an ONNX export needs onnxruntime: pip install 'gankit[export]'") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (y,) = session.run([OUTPUT_NAME], {name: t.numpy() for name, t in zip((INPUT_NAME, CODE_NAME), inputs)})
        return torch.from_numpy(y)
    module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(*inputs)


def check_export(model, direction: str, path: str | Path, size: int = 64, *, batch: int = 1, seed: int = 0) -> float:
    """Run the exported file on a random input in [-1, 1] (and, for a model with latent codes, random
    codes from the prior, one per image) and return the max abs difference to PyTorch.

    ``size`` is rounded up to the generator's ``size_multiple``; a fixed-shape export is checked at
    its own shape.
    """
    path = Path(path)
    meta = read_export_metadata(path)
    if meta["direction"] != direction:
        raise ExportError(f"{path}: exported direction is {meta['direction']}, not {direction}")
    net = _plain_generator(model, direction)
    shape = meta.get("fixed_input_shape") or [batch, meta["in_channels"], *[_round_up(size, meta["size_multiple"])] * 2]
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=gen) * 2 - 1
    z = torch.randn(shape[0], meta["latent_dim"], generator=gen) if "latent_dim" in meta else None
    with torch.no_grad():
        expected = net(x) if z is None else net(x, z)
    got = _run_exported(path, x, z)
    if got.shape != expected.shape:
        raise ExportError(f"{path}: output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}")
    return float((got - expected).abs().max())
