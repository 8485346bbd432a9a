import json
import subprocess
import sys

import pytest

from gankit.bench import bench_infer, bench_train, format_rows


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
