"""Translation works for any size, any PIL mode, gray↔colour domains, folders with bad files."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from gankit.api import CycleGAN
from gankit.inference import (
    TranslateResult,
    pad_to_multiple,
    translate_image,
    translate_paths,
    translate_tensor,
)
from gankit.models.cyclegan import CycleGANConfig


def tiny_model(generator: str = "resnet", **kw) -> CycleGAN:
    config = CycleGANConfig(channels_a=1, channels_b=3, size=32, ngf=4, blocks=1, generator=generator, **kw)
    return CycleGAN(config.validate(), with_discriminators=False)


@pytest.fixture(scope="module")
def model() -> CycleGAN:
    torch.manual_seed(0)
    return tiny_model()


def gradient(size: tuple[int, int]) -> Image.Image:
    w, h = size
    rgb = Image.new("RGB", size)
    sx, sy = 255 / max(w - 1, 1), 255 / max(h - 1, 1)
    rgb.putdata([(int(x * sx), int(y * sy), 128) for y in range(h) for x in range(w)])
    return rgb


@pytest.mark.parametrize("generator", ["resnet", "unet-upsample", "unet"])
@pytest.mark.parametrize("size", [(37, 53), (301, 199), (5, 7), (1, 1), (1, 9), (64, 64)])
def test_output_has_input_size(generator, size):
    m = tiny_model(generator)
    src = gradient(size)
    fake_a = m.translate(src, "b2a")
    assert fake_a.size == size and fake_a.mode == "L"
    fake_b = m.translate(fake_a, "a2b")
    assert fake_b.size == size and fake_b.mode == "RGB"


def test_tensor_padding_and_shapes(model):
    x = torch.rand(2, 1, 37, 53) * 2 - 1
    padded, (top, bottom, left, right) = pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (40, 56) and (top, bottom, left, right) == (1, 2, 1, 2)
    torch.testing.assert_close(padded[..., 1:38, 1:54], x)  # the image itself is untouched
    assert pad_to_multiple(torch.zeros(1, 1, 1, 1), 16)[0].shape == (1, 1, 16, 16)  # replicate fallback
    y = translate_tensor(model.generator("a2b"), x)
    assert y.shape == (2, 3, 37, 53) and y.abs().max() <= 1
    assert not y.is_inference()
    y.add_(0)  # an ordinary tensor: in-place ops are allowed


@pytest.mark.parametrize("algorithms,atol", [("plain", 1e-6), ("tuned", 2e-5)])
def test_batched_equals_per_image(algorithms, atol):
    """Tuned convs may pick another exact algorithm for a batch than for one image (Winograd rounds
    to ~1e-5 of the output's scale), hence the looser bound there."""
    torch.manual_seed(0)
    g = tiny_model(conv_algorithms=algorithms).generator("b2a")
    x = torch.rand(3, 3, 29, 42) * 2 - 1
    batched = translate_tensor(g, x)
    single = torch.cat([translate_tensor(g, x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=atol, rtol=0)


def test_translate_tensor_restores_modes_and_uses_eval():
    m = tiny_model(dropout=0.5, norm="batch")
    g = m.generator("a2b")
    g.train()
    x = torch.rand(2, 1, 20, 20) * 2 - 1
    first = translate_tensor(g, x)
    assert g.training and all(mod.training for mod in g.modules())
    torch.testing.assert_close(translate_tensor(g, x), first)  # eval: no dropout, running BN stats
    g.eval()
    g.up.train()  # a mixed state comes back exactly as it was
    translate_tensor(g, x)
    assert not g.training and g.up.training and not g.stem.training


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_pil_mode_translates(model, mode):
    img = gradient((23, 17))
    img = img.convert("L").convert(mode) if mode in ("I;16", "I", "F", "1", "LA") else img.convert(mode)
    assert img.mode == mode
    for direction, out_mode in (("a2b", "RGB"), ("b2a", "L")):
        out = model.translate(img, direction)
        assert out.size == (23, 17) and out.mode == out_mode


def test_gray_to_colour_channels(model):
    gray = gradient((30, 22)).convert("L")
    out = translate_image(model.generator("a2b"), gray, model.channels("a2b")[0])
    assert out.mode == "RGB" and out.size == (30, 22)
    # a colour input to the gray domain is reduced to luma first
    colour_in = translate_image(model.generator("a2b"), gradient((30, 22)), 1)
    assert colour_in.mode == "RGB"


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    gradient((45, 31)).save(root / "odd.png")
    gradient((20, 24)).convert("P").save(root / "sub" / "palette.png")
    gradient((16, 16)).save(root / "sub" / "odd.jpg")  # same stem as ../odd.png, other folder
    gradient((18, 12)).save(root / "twin.png")
    gradient((18, 12)).save(root / "twin.bmp")  # same stem, same folder
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "notes.txt").write_text("ignored")
    return root


def test_translate_paths_folder_with_corrupt_file(model, folder, tmp_path):
    out = tmp_path / "out"
    result = translate_paths(model, [folder], out, direction="b2a")
    assert isinstance(result, TranslateResult) and not result.ok
    assert len(result.failures) == 1
    bad, reason = result.failures[0]
    assert bad.name == "broken.jpg" and "broken.jpg" in reason
    rel = sorted(p.relative_to(out).as_posix() for p in result.written)
    assert rel == ["odd_b2a.png", "sub/odd_b2a.png", "sub/palette_b2a.png", "twin-2_b2a.png", "twin_b2a.png"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == rel  # no temp files left behind
    with Image.open(out / "odd_b2a.png") as im:
        assert im.size == (45, 31) and im.mode == "L"
    with Image.open(out / "sub" / "palette_b2a.png") as im:
        assert im.size == (20, 24)


def test_translate_paths_files_missing_input_and_roundtrip(model, folder, tmp_path):
    out = tmp_path / "rt"
    missing = tmp_path / "nope.png"
    result = translate_paths(model, [folder / "odd.png", missing, str(folder / "sub" / "palette.png")], out,
                             direction="b2a", roundtrip=True, suffix=".png")  # fmt: skip
    assert [p for p, _ in result.failures] == [missing] and "nope.png" in result.failures[0][1]
    names = sorted(p.name for p in result.written)
    assert names == ["odd_b2a.png", "odd_b2a_roundtrip.png", "palette_b2a.png", "palette_b2a_roundtrip.png"]
    with Image.open(out / "odd_b2a_roundtrip.png") as strip:
        assert strip.size == (3 * 45, 31) and strip.mode == "RGB"  # gray middle panel shown as RGB
        assert strip.crop((0, 0, 45, 31)).tobytes() == gradient((45, 31)).tobytes()  # real on the left


def test_translate_paths_gray_domain_roundtrip(tmp_path):
    torch.manual_seed(1)
    m = CycleGAN(CycleGANConfig(channels_a=1, channels_b=1, size=32, ngf=4, blocks=1).validate(),
                 with_discriminators=False)  # fmt: skip
    gradient((13, 9)).save(tmp_path / "x.png")
    result = translate_paths(m, [tmp_path / "x.png"], tmp_path / "o", roundtrip=True)
    assert result.ok
    with Image.open(tmp_path / "o" / "x_a2b_roundtrip.png") as strip:
        assert strip.size == (39, 9) and strip.mode == "L"


def test_empty_folder_is_a_failure_not_a_crash(model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = translate_paths(model, [empty], tmp_path / "o")
    assert not result.ok and result.failures[0][0] == empty and str(empty) in result.failures[0][1]
