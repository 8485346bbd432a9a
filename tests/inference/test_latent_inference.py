"""Translating and exporting a model with latent codes (Augmented CycleGAN): the codes of --samples and
--like, roundtrips that go back with the inferred code, and exported files with a second input z."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.errors import ConfigError
from gankit.inference.export import check_export, export_generator, read_export_metadata
from gankit.inference.translate import translate_paths
from gankit.models.cyclegan import CycleGANConfig, CycleGANModel

K = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    fields = dict(channels_a=1, channels_b=3, size=16, ngf=4, ndf=4, blocks=1, latent_dim=K, encoder_width=4,
                  device="cpu", conv_algorithms="plain")  # fmt: skip
    config = dataclasses.replace(CycleGANConfig(), **fields).validate()
    return CycleGANModel(config, torch.device("cpu"), for_training=False).eval()


@pytest.fixture
def gray(tmp_path):
    path = tmp_path / "in" / "cat.png"
    path.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8), "L").save(path)
    return path


def test_samples_are_the_prior_codes_of_the_seed(model, gray, tmp_path):
    result = translate_paths(model, [gray], tmp_path / "out", samples=2, seed=4, roundtrip=True)
    names = sorted(p.name for p in result.written)
    assert names == ["cat_s0.png", "cat_s0_roundtrip.png", "cat_s1.png", "cat_s1_roundtrip.png"]
    codes = model.sample_codes(2, seed=4)
    x = torch.from_numpy(np.asarray(Image.open(gray), np.float32) / 127.5 - 1)[None, None]
    for k in range(2):
        with torch.no_grad():
            expected = model.coded_generator("a2b", codes[k : k + 1])(x)
        got = np.asarray(Image.open(tmp_path / "out" / f"cat_s{k}.png"), np.float32) / 127.5 - 1
        assert np.abs(got.transpose(2, 0, 1) - expected[0].numpy()).max() <= 1.01 / 127.5  # one grey level
    strip = Image.open(tmp_path / "out" / "cat_s0_roundtrip.png")
    assert strip.size == (3 * 24, 20) and strip.mode == "RGB"


def test_a_roundtrip_goes_back_with_the_code_inferred_from_input_and_translation(model, gray, tmp_path):
    translate_paths(model, [gray], tmp_path / "out", roundtrip=True)
    fake = torch.from_numpy(np.asarray(Image.open(tmp_path / "out" / "cat_a2b.png"), np.float32) / 127.5 - 1)
    fake = fake.permute(2, 0, 1)[None]
    x = torch.from_numpy(np.asarray(Image.open(gray), np.float32) / 127.5 - 1)[None, None]
    with torch.no_grad():
        code = model.infer_code("b2a", fake, x)  # z̃_a = E_A(a, b̃)
        rec = model.coded_generator("b2a", code)(fake)
    strip = np.asarray(Image.open(tmp_path / "out" / "cat_a2b_roundtrip.png").convert("L"), np.float32)
    assert np.abs(strip[:, 48:] / 127.5 - 1 - rec[0, 0].numpy()).max() <= 1.01 / 127.5


def test_like_reads_the_reference_in_the_target_domain(model, gray, tmp_path):
    ref = tmp_path / "orange.png"
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(ref)
    result = translate_paths(model, [gray], tmp_path / "out", like=ref)
    assert [p.name for p in result.written] == ["cat_like_orange.png"]
    with pytest.raises(ConfigError, match=r"--like: .*missing\.png: file not found"):
        translate_paths(model, [gray], tmp_path / "out", like=tmp_path / "missing.png")
    with pytest.raises(ConfigError, match="--samples 0: expected a number ≥ 1"):
        translate_paths(model, [gray], tmp_path / "out", samples=0)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_takes_the_code_as_a_second_input(model, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    path = export_generator(model, "b2a", fmt, tmp_path / f"g.{fmt}")
    meta = read_export_metadata(path)
    assert meta["latent_dim"] == K and meta["code_name"] == "z" and meta["in_channels"] == 3
    assert check_export(model, "b2a", path, size=20, batch=2) < 1e-4
    fixed = export_generator(model, "a2b", fmt, tmp_path / f"fixed.{fmt}", dynamic=False)
    assert check_export(model, "a2b", fixed) < 1e-4
    tied = CycleGANModel(dataclasses.replace(model.config, keep_luminance=True), torch.device("cpu"),
                         for_training=False).eval()  # fmt: skip
    for direction in ("a2b", "b2a"):  # the luminance tie travels inside the exported graph
        assert check_export(tied, direction, export_generator(tied, direction, fmt, tmp_path / f"t{direction}.{fmt}"),
                            size=20) < 1e-4  # fmt: skip
