"""End to end through the command line, on real data at tiny sizes."""

import json
import subprocess
import sys

import pytest
import yaml
from PIL import Image

from gankit.cli import main

from .conftest import FULL

TINY = ["--ngf", "8", "--ndf", "8", "--blocks", "1", "--no-progress", "--threads", "2"]


def test_train_translate_roundtrip_cli(shared_data, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "cyclegan", "--dataset", "apple2orange", "--data-root", str(shared_data), "--size", "32",
               "--steps", "6", "--checkpoint-every", "3", "--sample-every", "3", "--log-every", "1",
               "--seed", "1", "--out", str(run), *TINY])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(run / "index.html") in printed
    for name in ("config.yaml", "model.safetensors", "losses.csv", "losses.png", "index.html", "summary.json"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    assert "samples/step_0000006.png" in (run / "index.html").read_text()
    assert len((run / "losses.csv").read_text().splitlines()) == 7
    assert json.loads((run / "summary.json").read_text())["step"] == 6

    # translate: a folder with a bad file and a file of odd size
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (45, 31), (200, 30, 30)).save(inputs / "odd.png")
    (inputs / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    rc = main(["translate", str(run), str(inputs), str(shared_data / "apple2orange/testA/n07740461_10011.jpg"),
               "--out", str(out), "--roundtrip"])  # fmt: skip
    assert rc == 1  # the broken file makes the exit status non-zero …
    err = capsys.readouterr().err
    assert "broken.jpg" in err
    names = sorted(p.name for p in out.rglob("*.png"))
    assert any(n.startswith("odd") for n in names) and any(n.startswith("n07740461_10011") for n in names)
    odd = next(p for p in out.rglob("odd*.png") if "roundtrip" not in p.name)
    assert Image.open(odd).size == (45, 31)  # … but the others are written, at their own size


def test_refuses_to_overwrite_a_run_and_errors_are_clear(shared_data, tmp_path, capsys):
    assert main(["train", "cyclegan", "--dataset", "no-such-set", "--data-root", str(shared_data)]) == 1
    assert "no-such-set" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "cyclegan", "--domain-a", str(empty), "--domain-b", str(empty), *TINY]) == 1
    assert str(empty) in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "nothing"), "x.png", "--out", str(tmp_path / "o")]) == 1
    assert "nothing" in capsys.readouterr().err


def test_dry_run_prints_resolved_yaml(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("generator: unet-upsample\nlambda_id: 0.9\n")
    assert main(["train", "cyclegan", "--config", str(cfg), "--swap", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "generator: unet-upsample" in out and "lambda_id: 0.9" in out and "swap: true" in out


def test_digit_recipes_bring_digit_sized_networks_that_yaml_and_flags_override(tmp_path, capsys):
    def resolved(*argv):
        assert main(["train", "cyclegan", *argv, "--dry-run"]) == 0
        return yaml.safe_load(capsys.readouterr().out)

    digits = resolved("--dataset", "mnist-usps")
    assert (digits["blocks"], digits["ngf"], digits["ndf"], digits["batch_size"]) == (6, 32, 32, 4)
    assert digits["flip"] is False  # a mirrored digit is no digit
    assert digits["steps"] == 4000 and resolved("--dataset", "mnist-usps", "--steps", "2000")["steps"] == 2000
    assert resolved("--dataset", "mnist-mnistm")["steps"] == 2000  # the longer budget is measured on mnist-usps only
    assert resolved("--dataset", "mnist-usps", "--flip")["flip"] is True
    assert resolved("--dataset", "mnist-mnistm")["semantic_recolour"] is True  # gray MNIST's LeNet reads colour
    assert resolved("--dataset", "mnist-mnistm", "--no-semantic-recolour")["semantic_recolour"] is False
    assert digits["semantic_recolour"] is False
    weights = resolved("--dataset", "mnist-usps", "--semantic-loss", "--lambda-sem-b2a", "5")
    assert (weights["lambda_sem"], weights["lambda_sem_b2a"]) == (1.0, 5.0)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: mnist-mnistm\nblocks: 3\n")
    from_yaml = resolved("--config", str(cfg), "--batch-size", "2")
    assert (from_yaml["blocks"], from_yaml["ngf"], from_yaml["batch_size"]) == (3, 32, 2)
    photos = resolved("--dataset", "apple2orange")
    assert (photos["blocks"], photos["ngf"], photos["batch_size"], photos["flip"]) == (9, None, 1, True)
    assert resolved("--dataset", "mnist-usps", "--domain-a", "x", "--domain-b", "y")["blocks"] == 9  # folders


def test_console_script_help():
    res = subprocess.run([sys.executable, "-m", "gankit.cli", "train", "cyclegan", "--help"], capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 0
    for flag in ("--generator", "--blocks", "--gan-loss", "--lambda-id", "--swap", "--amp", "--checkpoint-every"):
        assert flag in res.stdout


@pytest.mark.parametrize(
    "options",
    [
        ["--generator", "unet", "--discriminator", "scalar", "--gan-loss", "vanilla", "--optimizer", "rmsprop"],
        ["--generator", "unet-upsample", "--discriminator", "pixel", "--gan-loss", "wgan-gp", "--n-critic", "2"],
        ["--generator", "unet-skip", "--unet-depth", "5", "--gan-loss", "hinge", "--lambda-id", "0", "--swap"],
        [
            "--gan-loss",
            "wgan",
            "--batch-size",
            "2",
            "--schedule",
            "inverse-time",
            "--pool-size",
            "0",
            "--d-padding",
            "reflect",
            "--label-smoothing",
            "0.1",
            "--amp",
            "bf16",
        ],
    ],
)
def test_every_architecture_and_game_trains(shared_data, tmp_path, options):
    run = tmp_path / "run"
    rc = main(["train", "cyclegan", "--dataset", "apple2orange", "--data-root", str(shared_data), "--size", "32",
               "--steps", "2", "--out", str(run), *TINY, *options])  # fmt: skip
    assert rc == 0
    assert (run / "model.safetensors").is_file()


def test_export_cli_both_formats(tmp_path, capsys):
    from gankit.api import CycleGAN
    from gankit.models.cyclegan import CycleGANConfig

    model = CycleGAN(CycleGANConfig(channels_a=1, channels_b=3, size=32, ngf=4, blocks=1), with_discriminators=False)
    weights = model.save_generators(tmp_path / "model.safetensors")
    for fmt, name in (("onnx", "g.onnx"), ("torchscript", "g.pt")):
        assert main(["export", str(weights), "--format", fmt, "--out", str(tmp_path / name), "--direction", "b2a"]) == 0
        assert "max abs difference" in capsys.readouterr().out
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--lr", "nan"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--size", "31", "--generator", "unet"], "--size"),
        (["--blocks", "-2"], "--blocks"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lambda-cyc", "-1"], "--lambda-cyc"),
        (["--cycle-noise", "-0.1"], "--cycle-noise"),
        (["--steps", "0"], "--steps"),
        (["--n-critic", "0"], "--n-critic"),
        (["--label-smoothing", "1.5"], "--label-smoothing"),
    ],
)
def test_bad_flag_values_are_usage_errors_before_any_run_folder(shared_data, tmp_path, capsys, flags, named):
    run = tmp_path / "run"
    rc = main(["train", "cyclegan", "--dataset", "apple2orange", "--data-root", str(shared_data), "--out", str(run),
               *flags])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and not run.exists()
    assert named in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["cgan", "sgan", "progan"])
def test_companion_flags_are_checked_the_same_way(tmp_path, capsys, kind):
    run = tmp_path / "run"
    assert main(["train", kind, "--lr", "inf", "--out", str(run)]) == 2 and not run.exists()
    assert "--lr" in capsys.readouterr().err


def test_bad_yaml_values_name_the_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("kind: cyclegan\nlr: -0.5\n")
    run = tmp_path / "run"
    assert main(["train", "cyclegan", "--config", str(cfg), "--out", str(run)]) == 2 and not run.exists()
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "lr" in err


def test_models_lists_every_kind(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(kind in out for kind in ("cyclegan", "cgan", "sgan", "progan"))


def test_demo_runs_on_the_bundled_photos(tmp_path, capsys):
    """The README's main job, shortened: it trains on data that ships with the install and ends with the
    commands that score and serve its model."""
    run = tmp_path / "demo"
    assert main(["demo", "--steps", "4", "--out", str(run), "--no-progress"]) == 0
    assert (run / "model.safetensors").is_file() and (run / "index.html").is_file()
    out = capsys.readouterr().out
    assert "demo" in out and f"gankit eval {run} --out {run}/eval" in out
    assert out.rstrip().splitlines()[-1].endswith(f"gankit serve {run}")


DEMO_BUDGET = {"steps": None, "classifier_steps": None, "bar": 0.9} if FULL else \
    {"steps": 600, "classifier_steps": 800, "bar": 0.8}  # fmt: skip
"""The full check is the issue's: the default demo, then the default `gankit eval`. The reduced one (CI)
trains 600 steps and an 800-step judge, where seeds 0 and 1 both measured success 1.000 both ways (one
thread; docs/results.md, "Demo")."""


@pytest.mark.slow
def test_the_demo_translates_held_out_crops_both_ways(tmp_path, capsys):
    """`gankit demo` then `gankit eval` on its run, as the README tells a newcomer: its translations of
    held-out crops are judged to be of the target domain, where untranslated crops and garbage are not,
    and they keep the input's edges far above what noise keeps."""
    run, report = tmp_path / "demo", tmp_path / "eval"
    steps = ["--steps", str(DEMO_BUDGET["steps"])] if DEMO_BUDGET["steps"] else []
    assert main(["demo", "--out", str(run), "--no-progress", *steps]) == 0
    judge = ["--classifier-steps", str(DEMO_BUDGET["classifier_steps"])] if DEMO_BUDGET["classifier_steps"] else []
    assert main(["eval", str(run), "--out", str(report), "--cache-dir", str(tmp_path / "cache"), *judge]) == 0
    capsys.readouterr()
    written = json.loads((report / "report.json").read_text())
    m = written["metrics"]
    assert written["info"]["test_images_a"] >= 20 and written["info"]["test_images_b"] >= 20
    for d in ("a2b", "b2a"):
        assert m[f"success_{d}"] >= DEMO_BUDGET["bar"], (d, m[f"success_{d}"])
        assert m[f"floor_{d}"] <= 0.1 and m[f"garbage_floor_success_{d}"] <= 0.1, d
        assert m[f"content_{d}"] > 0.7 > 0.1 > m[f"content_noise_{d}"], d
        # closer to the true drawing (photo) of each crop than the untranslated crop is (measured: +2.5 dB and more)
        assert m[f"psnr_{d}"] > m[f"psnr_floor_{d}"] + 1.5, d


@pytest.mark.parametrize("command", ["translate", "export", "eval"])
def test_a_full_disk_stops_translate_export_and_eval_with_one_line(shared_data, tmp_path, monkeypatch, capsys,
                                                                   command):  # fmt: skip
    import errno
    import os

    from gankit.api import CycleGAN
    from gankit.models.cyclegan import CycleGANConfig

    model = CycleGAN(CycleGANConfig(channels_a=3, channels_b=3, size=32, ngf=4, blocks=1), with_discriminators=False)
    weights = model.save_generators(tmp_path / "model.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in sorted((shared_data / "apple2orange" / "testA").iterdir())[:3]:
        Image.open(src).resize((64, 64)).save(photos / f"{src.stem}.png")
    out = tmp_path / "out"
    argv = {
        "translate": ["translate", str(weights), str(photos), "--out", str(out)],
        "export": ["export", str(weights), "--format", "torchscript", "--out", str(out / "g.pt")],
        "eval": ["eval", "--real", str(photos), "--fake", str(photos), "--out", str(out)],
    }[command]
    real_write = os.write

    def full_under_out(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_under_out)
    assert main(argv) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]  # progress lines aside
    assert len(errors) == 1 and errors[0].startswith(f"gankit: error: {out}/") and "Traceback" not in err, err
    assert "cannot write" in errors[0] and "No space left on device" in errors[0] and "bytes free" in errors[0]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
