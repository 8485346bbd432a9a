"""Augmented CycleGAN (``cyclegan --latent-dim K``): what a config builds, the augmented cycles' losses
and where their gradients go, an encoder that learns to recover the code, code sampling and inference,
weights files, and the commands (train, translate --samples / --like, export with two inputs) on real
data. Exact resume and preemption run with every other kind in tests/training (``cyclegan-augmented``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.api import CycleGAN
from gankit.cli import main
from gankit.errors import CheckpointError, ConfigError
from gankit.models.augmented import AugmentedCycleGANModel
from gankit.models.base import set_requires_grad
from gankit.models.cyclegan import CycleGANConfig, CycleGANModel
from gankit.models.persist import load_model, make_config, save_weights

K = 2
TINY = dict(channels_a=3, channels_b=3, size=16, ngf=4, ndf=4, blocks=1, d_layers=1, encoder_width=8, latent_dim=K,
            device="cpu", conv_algorithms="plain", pool_size=0)  # fmt: skip


def tiny(**fields) -> CycleGANModel:
    torch.manual_seed(0)
    config = dataclasses.replace(CycleGANConfig(), **{**TINY, **fields}).validate()
    return CycleGANModel(config, torch.device("cpu"))


def images(n: int, channels: int = 3, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_latent_dim_0_builds_todays_cyclegan_and_k_builds_augmented_cyclegan():
    plain, augmented = tiny(latent_dim=0), tiny()
    assert type(plain) is CycleGANModel and list(plain.networks()) == ["g_ab", "g_ba", "d_a", "d_b"]
    assert type(augmented) is AugmentedCycleGANModel and isinstance(augmented, CycleGANModel)
    assert augmented.kind == "cyclegan" and augmented.latent_dim == K
    assert list(augmented.networks()) == ["g_ab", "g_ba", "e_a", "e_b", "d_a", "d_b", "dz_a", "dz_b"]
    inference = CycleGANModel(augmented.config, torch.device("cpu"), for_training=False)
    assert list(inference.networks()) == ["g_ab", "g_ba", "e_a", "e_b"] == list(inference.exported)
    # the same seed builds CycleGAN's networks with the same weights whatever the new options say
    other = tiny(latent_dim=0, encoder_width=3, lambda_latent=7.0)
    assert all(torch.equal(v, other.weights()[k]) for k, v in plain.weights().items())


def test_the_network_switches_reach_the_augmented_generators():
    """--kernel-size, --activation and --downsample build the same generator layers with or without codes."""
    options = dict(kernel_size=5, activation="leaky", downsample="avgpool", discriminator="pixel")
    augmented, plain = tiny(**options), tiny(latent_dim=0, **options)
    for name in ("g_ab", "g_ba"):
        convs = [[tuple(m.weight.shape), type(m)] for m in augmented.networks()[name].modules()
                 if isinstance(m, torch.nn.Conv2d)]  # fmt: skip
        assert convs == [[tuple(m.weight.shape), type(m)] for m in plain.networks()[name].modules()
                         if isinstance(m, torch.nn.Conv2d)]  # fmt: skip
        assert any(m.weight.shape[-1] == 5 for m in augmented.networks()[name].modules()
                   if isinstance(m, torch.nn.Conv2d))  # fmt: skip
        assert any(isinstance(m, torch.nn.LeakyReLU) for m in augmented.networks()[name].modules())


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(generator="unet"), "--latent-dim 2: the code modulates the resnet generator's instance norms"),
        (dict(norm="batch"), "--latent-dim 2: the code modulates instance norms, not --norm batch"),
        (dict(latent_dim=-1), "--latent-dim -1: expected a number ≥ 0"),
        (dict(encoder_width=0), "--encoder-width 0: expected a number ≥ 1"),
    ],
)
def test_the_config_refuses_what_augmented_cyclegan_cannot_do(fields, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**fields)


def test_configs_written_before_the_option_load_as_plain_cyclegan():
    old = {k: v for k, v in CycleGANConfig(channels_a=3, channels_b=3, size=32).to_dict().items()
           if k not in ("latent_dim", "encoder_width", "lambda_latent", "lambda_latent_gan")}  # fmt: skip
    config = make_config("cyclegan", old, "old run")
    assert config.latent_dim == 0 and type(CycleGANModel(config, torch.device("cpu"))) is CycleGANModel


def test_the_generator_update_reaches_generators_and_encoders_through_every_term():
    model = tiny()
    m = model.nets
    a, b = images(2), images(2, seed=2)
    z_a, z_b = torch.randn(2, K), torch.randn(2, K)
    out = m.cycle(a, b, z_a, z_b)
    assert torch.equal(out.fake_b, m.g_ab(a, z_b)) and torch.equal(out.inferred_a, m.e_a(a, out.fake_b))
    assert torch.allclose(out.rec_a, m.g_ba(out.fake_b, out.inferred_a)) and out.rec_z_b.shape == (2, K)
    set_requires_grad([m.d_a, m.d_b, m.dz_a, m.dz_b], False)
    loss, terms = m.generator_loss(a, b, out)
    assert {"G_adv_a2b", "G_adv_b2a", "Z_adv_a", "Z_adv_b", "cycle_a", "cycle_b", "code_a", "code_b"} < set(terms)
    assert terms["code_b"].item() == pytest.approx((out.rec_z_b - z_b).abs().mean().item())
    loss.backward()
    for name in ("g_ab", "g_ba", "e_a", "e_b"):
        grads = [p.grad for p in getattr(m, name).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), f"{name} has parameters without gradient"
    assert all(p.grad is None for d in (m.d_a, m.d_b, m.dz_a, m.dz_b) for p in d.parameters())


@pytest.mark.parametrize("latent_dim", [0, K])
@pytest.mark.parametrize("gray", ["a", "b"])
def test_the_luminance_term_ties_each_translation_to_the_gray_side_whichever_domain_is_gray(latent_dim, gray):
    """--lambda-luma adds λ·(‖Y(colour) − gray‖₁ of each direction) to the generators' objective, in plain
    and augmented CycleGAN, with the gray domain on either side."""
    channels = {"channels_a": 1, "channels_b": 3} if gray == "a" else {"channels_a": 3, "channels_b": 1}
    off, on = tiny(latent_dim=latent_dim, **channels), tiny(latent_dim=latent_dim, lambda_luma=4.0, **channels)
    a, b = images(2, channels["channels_a"]), images(2, channels["channels_b"], seed=2)
    if latent_dim:
        z_a, z_b = torch.randn(2, K), torch.randn(2, K)
        out = on.nets.cycle(a, b, z_a, z_b)
    else:
        out = on.nets.cycle(a, b)
    loss_off, terms_off = off.nets.generator_loss(a, b, out)
    loss_on, terms = on.nets.generator_loss(a, b, out)
    luma = {1: lambda x: x, 3: lambda x: 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]}
    fake_b_luma, fake_a_luma = luma[out.fake_b.shape[1]](out.fake_b), luma[out.fake_a.shape[1]](out.fake_a)
    expected_a2b = (fake_b_luma - luma[a.shape[1]](a)).abs().mean().item()
    expected_b2a = (fake_a_luma - luma[b.shape[1]](b)).abs().mean().item()
    assert terms["luma_a2b"].item() == pytest.approx(expected_a2b, rel=1e-5)
    assert terms["luma_b2a"].item() == pytest.approx(expected_b2a, rel=1e-5)
    assert "luma_a2b" not in terms_off
    assert (loss_on - loss_off).item() == pytest.approx(4.0 * (expected_a2b + expected_b2a), rel=1e-4)
    assert "luminance" in on.describe() and "luminance" not in off.describe()


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(lambda_luma=1.0), "--lambda-luma 1.0: the luminance tie joins a gray domain to a colour one; A has 3 "
         "channels, B has 3"),
        (dict(keep_luminance=True), "--keep-luminance True: the luminance tie joins a gray domain"),
        (dict(keep_luminance=True, channels_a=1, generator="unet"), "--keep-luminance True: an option of the resnet "
         "generator, not of unet"),
    ],
)  # fmt: skip
def test_the_luminance_options_refuse_pairs_and_generators_they_cannot_tie(fields, message):
    with pytest.raises(ConfigError, match=message):
        tiny(latent_dim=0, **fields)


@pytest.mark.parametrize("latent_dim", [0, K])
def test_keep_luminance_ties_both_generators_and_leaves_the_weights_as_they_were(latent_dim):
    off = tiny(latent_dim=latent_dim, channels_a=1)
    on = tiny(latent_dim=latent_dim, channels_a=1, keep_luminance=True)
    assert all(torch.equal(v, on.weights()[k]) for k, v in off.weights().items())
    a = images(2, 1)
    fake_b = on.nets.g_ab(a, torch.randn(1, K)) if latent_dim else on.nets.g_ab(a)
    torch.testing.assert_close(0.299 * fake_b[:, :1] + 0.587 * fake_b[:, 1:2] + 0.114 * fake_b[:, 2:], a)
    assert on.nets.g_ab.luminance if not latent_dim else on.nets.g_ab.body.luminance == "keep"
    assert (on.nets.g_ba.luminance if not latent_dim else on.nets.g_ba.body.luminance) == "residual"
    assert "--keep-luminance" in on.describe()["luminance"]


@pytest.mark.parametrize("gan_loss", ["lsgan", "wgan-gp"])
def test_code_discriminators_tell_the_prior_from_inferred_codes(gan_loss):
    model = tiny(gan_loss=gan_loss)
    a, b = images(2), images(2, seed=2)
    with torch.no_grad():
        out = model.nets.cycle(a, b, torch.randn(2, K), torch.randn(2, K), reconstruct=False)
    assert out.rec_a is None
    loss, terms = model.nets.discriminator_loss(a, b, out.fake_a, out.fake_b, out)
    assert {"D_a", "D_b", "D_za", "D_zb"} <= set(terms) and torch.isfinite(loss)
    assert ("D_za_gp" in terms) == (gan_loss == "wgan-gp")
    loss.backward()
    assert all(p.grad is not None for p in model.nets.dz_a.parameters())


def test_the_encoder_learns_to_recover_the_code():
    """80 training steps of a tiny model (λ_latent 10, lr 2e-3, 16 px, seconds of CPU): the round-trip
    error |E_B(a, G_AB(a, z)) − z| on codes it never saw falls well below the untrained encoder's and
    below what guessing the prior's mean scores (E|z| = √(2/π) ≈ 0.80)."""
    model = tiny(lambda_latent=10.0, lr=2e-3, schedule="constant", steps=80)
    a_set, b_set = images(16), images(16, seed=2)
    test_a, test_z = images(32, seed=3), torch.randn(32, K, generator=torch.Generator().manual_seed(4))

    def round_trip_error() -> float:
        with torch.no_grad():
            return float((model.nets.e_b(test_a, model.nets.g_ab(test_a, test_z)) - test_z).abs().mean())

    before = round_trip_error()
    pick = torch.Generator().manual_seed(5)
    for step in range(80):
        i = torch.randint(0, 16, (2,), generator=pick)
        model.train_step([{"A": a_set[i], "B": b_set[i]}], step + 1)
    after = round_trip_error()
    assert before > 0.75 and after < 0.6 and after < 0.75 * before, (before, after)


def test_codes_are_drawn_reproducibly_and_inferred_from_pairs():
    model = tiny()
    state = torch.random.get_rng_state()
    z = model.sample_codes(3, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is left alone
    assert z.shape == (3, K) and torch.equal(z, model.sample_codes(3, seed=7))
    assert not torch.equal(z, model.sample_codes(3, seed=8))
    model.eval()
    a, b = images(2), images(2, seed=2)
    with torch.no_grad():
        assert torch.allclose(model.infer_code("a2b", a, b), model.nets.e_b(a, b))  # E_B(a, b): code of b
        assert torch.allclose(model.infer_code("b2a", b, a), model.nets.e_a(a, b))  # E_A(a, b): code of a
        big = torch.nn.functional.interpolate(b, size=(40, 40), mode="nearest")
        assert model.infer_code("a2b", a, big).shape == (2, K)  # any size: both resized to the training size
        coded = model.coded_generator("a2b", z[:1])
        assert torch.allclose(coded(a), model.nets.g_ab(a, z[:1]))
        default = model.generator("a2b")(a)  # the plain translator: the prior's mode z = 0
        assert torch.allclose(default, model.nets.g_ab(a, torch.zeros(1, K)))
        assert (coded(a) - default).abs().mean() > 1e-3
    with pytest.raises(ConfigError, match="--direction x2y"):
        model.coded_generator("x2y", z[:1])


def test_weights_file_holds_generators_and_encoders_and_loads_without_pickles(tmp_path):
    model = tiny().eval()
    path = save_weights(model, tmp_path / "model.safetensors")
    loaded = load_model(path, "cpu")
    assert type(loaded) is AugmentedCycleGANModel and list(loaded.networks()) == ["g_ab", "g_ba", "e_a", "e_b"]
    a, b, z = images(2), images(2, seed=2), torch.randn(1, K)
    with torch.no_grad():
        assert torch.equal(loaded.coded_generator("b2a", z)(b), model.coded_generator("b2a", z)(b))
        assert torch.equal(loaded.infer_code("a2b", a, b), model.infer_code("a2b", a, b))
    with pytest.raises(CheckpointError, match="an Augmented CycleGAN .--latent-dim 2."):
        CycleGAN.load(path)


def test_sample_grid_shows_translations_with_three_codes_and_a_reconstruction(shared_data):
    model = tiny(dataset="apple2orange", data_root=str(shared_data), size=32, d_layers=2)
    grid = model.sample_grid(0)
    assert isinstance(grid, Image.Image) and grid.width > grid.height / 2  # 5 columns, 8 rows
    assert "3 fixed codes" in model.describe()["grids"] and "no identity loss" in model.describe()["loss"]


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_train_translate_samples_like_and_export_through_the_cli(shared_data, tmp_path, capsys):
    """gray → colour (1 → 3 channels): two training steps, then K translations of one input, the same K
    again with the same seed, tiles, a translation like an example, and ONNX with two inputs."""
    run = tmp_path / "run"
    args = ["train", "cyclegan", "--dataset", "cifar10-colorization", "--data-root", str(shared_data), "--latent-dim",
            "4", "--size", "32", "--blocks", "1", "--ngf", "4", "--ndf", "4", "--encoder-width", "4", "--steps", "2",
            "--log-every", "1", "--workers", "0", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(args) == 0
    header = (run / "losses.csv").read_text().splitlines()[0]
    assert all(t in header for t in ("code_a", "code_b", "Z_adv_a", "D_za", "cycle_a"))
    image = sorted((shared_data / "cifar10" / "test").glob("*/*.png"))[0]
    reference = sorted((shared_data / "cifar10" / "test").glob("*/*.png"))[40]
    out = tmp_path / "out"
    assert main(["translate", str(run), str(image), "--samples", "3", "--seed", "5", "--out", str(out)]) == 0
    files = [out / f"{image.stem}_s{k}.png" for k in range(3)]
    assert all(f.is_file() for f in files) and Image.open(files[0]).mode == "RGB"
    first = [_pixels(f) for f in files]
    assert all(np.abs(first[i] - first[j]).mean() > 0.5 for i in range(3) for j in range(i))  # K different ones
    again = tmp_path / "again"
    assert main(["translate", str(run), str(image), "--samples", "3", "--seed", "5", "--tile", "16", "--out",
                 str(again)]) == 0  # fmt: skip
    assert "in 16 px tiles" in capsys.readouterr().out
    for k in range(3):  # the same seed, the same codes; every tile got its image's code
        assert np.abs(_pixels(again / f"{image.stem}_s{k}.png") - first[k]).max() <= 1
    assert main(["translate", str(run), str(image), "--like", str(reference), "--out", str(out)]) == 0
    assert (out / f"{image.stem}_like_{reference.stem}.png").is_file()
    capsys.readouterr()
    assert main(["translate", str(run), str(image), "--like", str(reference), "--samples", "2", "--out", str(out)]) == 2
    assert "--samples and --like: give one" in capsys.readouterr().err
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "g.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(onnx_path)]) == 0
    assert "max abs difference to PyTorch" in capsys.readouterr().out
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "z"]
    model = load_model(run, "cpu")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 1, 32, 32)).astype(np.float32)
    z = model.sample_codes(2, seed=3)
    (y,) = session.run(None, {"input": x, "z": z.numpy()})
    with torch.no_grad():
        expected = model.conditional_generator("a2b")(torch.from_numpy(x), z).numpy()
    assert np.abs(y - expected).max() < 1e-4 and np.abs(y[0] - y[1]).mean() > 1e-3


def test_deterministic_models_refuse_samples_and_like(tmp_path, capsys):
    config = CycleGANConfig(channels_a=3, channels_b=3, size=32, ngf=4, blocks=1, ndf=4)
    weights = CycleGAN(config).save_generators(tmp_path / "model.safetensors")
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    out = tmp_path / "out"
    assert main(["translate", str(weights), str(image), "--samples", "2", "--out", str(out)]) == 2
    expected = ("gankit: error: --samples 2: this cyclegan model is deterministic (one translation per input); "
                "train it with --latent-dim K for many")  # fmt: skip
    assert capsys.readouterr().err.strip() == expected
    assert main(["translate", str(weights), str(image), "--like", str(image), "--out", str(out)]) == 2
    assert "--like" in capsys.readouterr().err and not out.exists()
    assert main(["translate", str(weights), str(image), "--seed", "3", "--out", str(out)]) == 2
    assert "--seed 3: it seeds the codes of --samples K" in capsys.readouterr().err
    assert main(["translate", str(weights), str(image), "--samples", "1", "--out", str(out)]) == 0
    assert (out / "x_s0.png").is_file()  # its one translation
