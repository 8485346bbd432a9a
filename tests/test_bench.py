import json
import subprocess
import sys

import pytest

from gankit.bench import bench_infer, bench_train, format_rows
from gankit.errors import ConfigError


def test_train_bench_counts_flops_linear_in_batch():
    one = bench_train(size=32, blocks=1, ngf=4, iters=1, warmup=0, device="cpu")
    two = bench_train(size=32, blocks=1, ngf=4, batch_size=2, iters=1, warmup=0, device="cpu")
    assert one["s_per_iter"] > 0 and one["images_per_s"] == pytest.approx(2 / one["s_per_iter"])
    assert one["tflop_per_iter"] > 0
    assert two["tflop_per_iter"] == pytest.approx(2 * one["tflop_per_iter"], rel=1e-6)
    assert "s_per_iter" in format_rows([one, two])
    assert one["conv_algorithms"] == "tuned" and {r["computation"] for r in one["conv_choices"]} == {
        "forward", "input_grad", "weight_grad"}  # fmt: skip
    plain = bench_train(size=32, blocks=1, ngf=4, iters=1, warmup=0, device="cpu", conv_algorithms="plain")
    assert plain["conv_choices"] == [] and plain["tflop_per_iter"] == pytest.approx(one["tflop_per_iter"])
    glibc = bench_train(size=32, blocks=1, ngf=4, iters=1, warmup=1, device="cpu", heap="glibc")
    assert one["heap"] == "training" and glibc["heap"] == "glibc" and glibc["tflop_per_iter"] > 0
    with pytest.raises(ConfigError, match="--heap"):
        bench_train(size=32, blocks=1, ngf=4, iters=1, warmup=0, device="cpu", heap="jemalloc")


def test_infer_bench_and_cli_json():
    row = bench_infer(size=40, blocks=1, iters=1, warmup=0, device="cpu")
    assert row["ms_per_image"] > 0
    out = subprocess.run(
        [sys.executable, "-m", "gankit.cli", "bench", "train", "--size", "32", "--blocks", "1", "--ngf", "4",
         "--iters", "1", "--warmup", "0", "--conv-algorithms", "winograd", "--json"], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["s_per_iter"] > 0 and rows[0]["size"] == 32
    assert "winograd" in {r["chosen"] for r in rows[0]["conv_choices"]}


def test_bench_train_times_each_model_in_its_own_process():
    """`--model fastcut cut cyclegan`: one JSON row per model, each from a fresh process (its own peak
    RSS), each in the model's default configuration; FastCUT counts fewer FLOPs than CUT (no identity
    pass). (At this toy width the MLP heads outweigh the convolutions, so CUT is not below CycleGAN.)"""
    out = subprocess.run(
        [sys.executable, "-m", "gankit", "bench", "train", "--model", "fastcut", "cut", "cyclegan", "--size", "32",
         "--blocks", "5", "--ngf", "4", "--iters", "1", "--warmup", "0", "--json"], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    rows = {r["model"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert list(rows) == ["fastcut", "cut", "cyclegan"]
    assert all(r["s_per_iter"] > 0 and r["size"] == 32 and r["blocks"] == 5 for r in rows.values())
    assert rows["fastcut"]["tflop_per_iter"] < rows["cut"]["tflop_per_iter"]
    pids = {r["pid"] for r in rows.values()}
    assert len(pids) == 3


def test_bench_train_on_two_processes_reports_throughput(shared_data, capsys):
    import json

    from gankit.cli import main

    assert main(["bench", "train", "--size", "32", "--blocks", "1", "--ngf", "8", "--nproc", "2", "--iters", "2",
                 "--warmup", "1", "--data-root", str(shared_data), "--json"]) == 0  # fmt: skip
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["bench"] == "train-ranks" and row["ranks"] == 2 and row["images_per_s"] > 0 and row["threads"] >= 1


def test_bench_train_refuses_a_model_that_does_not_translate(capsys):
    from gankit.cli import main

    assert main(["bench", "train", "--model", "cgan", "--size", "32", "--iters", "1", "--warmup", "0"]) == 2
    assert "--model cgan: not a translation model" in capsys.readouterr().err
