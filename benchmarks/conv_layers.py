"""Per-layer convolution rates of the CycleGAN networks on this machine.

The whole training step is ~83 % convolution, but the layers are far from equally efficient: a
3×3 conv between 256 channels runs near the machine's attainable rate, while the head's 64 → 3 7×7
conv fills 3 of 16 AVX-512 lanes. This prints, for every distinct conv of resnet-9 + 3-layer
PatchGAN at ``--size``, the forward and forward+backward (input and weight gradients) time and
GFLOP/s in NCHW and in channels_last; for the stride-1 convs also the forward, input-gradient and
weight-gradient time of each algorithm :class:`gankit.nn.conv.TunedConv2d` chooses from (oneDNN,
NNPACK Winograd/FFT, column taps) and the best of each, i.e. what the tuned conv reaches.
Writes ``--out`` (JSON)::

    python benchmarks/conv_layers.py --size 256 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from gankit.launch import prefer_short_openmp_spin

prefer_short_openmp_spin()  # as the gankit command does; must precede torch's import

import torch  # noqa: E402

from gankit.io import atomic_write_text  # noqa: E402
from gankit.nn.conv import ALGORITHMS, candidates  # noqa: E402


def layers(size: int) -> list[dict]:
    """(name, in, out, kernel, stride, input side incl. padding, transposed) of resnet-9 + PatchGAN."""
    s = size
    rows = [
        ("G stem 7x7", 3, 64, 7, 1, s + 6, False),
        ("G down 1", 64, 128, 3, 2, s + 2, False),
        ("G down 2", 128, 256, 3, 2, s // 2 + 2, False),
        ("G residual 3x3 (x18)", 256, 256, 3, 1, s // 4 + 2, False),
        ("G up 1 (transposed)", 256, 128, 3, 2, s // 4, True),
        ("G up 2 (transposed)", 128, 64, 3, 2, s // 2, True),
        ("G head 7x7", 64, 3, 7, 1, s + 6, False),
        ("D conv 1", 3, 64, 4, 2, s + 2, False),
        ("D conv 2", 64, 128, 4, 2, s // 2 + 2, False),
        ("D conv 3", 128, 256, 4, 2, s // 4 + 2, False),
        ("D conv 4", 256, 512, 4, 1, s // 8 + 2, False),
        ("D conv 5", 512, 1, 4, 1, s // 8 + 1, False),
    ]
    keys = ("name", "in_ch", "out_ch", "kernel", "stride", "side", "transposed")
    return [dict(zip(keys, r)) for r in rows]


def median_time(fn, iters: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_conv(layer: dict, variant: str) -> torch.nn.Module:
    args = (layer["in_ch"], layer["out_ch"], layer["kernel"])
    if layer["transposed"]:
        return torch.nn.ConvTranspose2d(*args, stride=layer["stride"], padding=1, output_padding=1)
    return torch.nn.Conv2d(*args, stride=layer["stride"])


def measure(layer: dict, variant: str, iters: int) -> dict:
    conv = make_conv(layer, variant)
    x = torch.randn(1, layer["in_ch"], layer["side"], layer["side"])
    if variant == "channels_last":
        x, conv = x.contiguous(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    x.requires_grad_()
    y = conv(x)
    grad = torch.randn_like(y)
    positions = (layer["side"] ** 2) if layer["transposed"] else y.shape[-2] * y.shape[-1]
    flop = 2 * layer["in_ch"] * layer["out_ch"] * layer["kernel"] ** 2 * positions
    with torch.no_grad():
        fwd = median_time(lambda: conv(x), iters)
    both = median_time(lambda: torch.autograd.grad(conv(x), (x, conv.weight), grad), iters)
    return {"forward_ms": fwd * 1e3, "forward_gflops": flop / fwd / 1e9,
            "fwd_bwd_ms": both * 1e3, "fwd_bwd_gflops": 3 * flop / both / 1e9, "gflop": flop / 1e9}  # fmt: skip


def measure_algorithms(layer: dict, iters: int) -> list[dict]:
    """Forward, input-gradient and weight-gradient ms of each candidate algorithm, then the best of each."""
    x = torch.randn(1, layer["in_ch"], layer["side"], layer["side"])
    w = torch.randn(layer["out_ch"], layer["in_ch"], layer["kernel"], layer["kernel"]) * 0.02
    side = layer["side"] - layer["kernel"] + 1
    g = torch.randn(1, layer["out_ch"], side, side)
    flop = 2 * layer["in_ch"] * layer["out_ch"] * layer["kernel"] ** 2 * side * side
    args = {"forward": (x, w), "input_grad": (g, x, w), "weight_grad": (g, x, w)}
    ms: dict[str, dict[str, float]] = {}
    for kind, table in ALGORITHMS.items():
        for name in candidates(kind, x, w):
            ms.setdefault(name, {})[kind] = median_time(lambda: table[name](*args[kind]), iters) * 1e3  # noqa: B023
    rows = [{"variant": name, **{f"{k}_ms": v for k, v in t.items()}} for name, t in ms.items()]
    best = {kind: min((t[kind], name) for name, t in ms.items() if kind in t) for kind in ALGORITHMS}
    rows.append({"variant": "best", **{f"{k}_ms": v[0] for k, v in best.items()},
                 "chosen": {k: v[1] for k, v in best.items()}})  # fmt: skip
    for r in rows:
        total = sum(r.get(f"{k}_ms", best[k][0]) for k in ALGORITHMS)
        r.update(fwd_bwd_ms=total, fwd_bwd_gflops=3 * flop / total / 1e6, gflop=flop / 1e9)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--out", default=str(Path(__file__).with_name("results-conv-layers.json")))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'layer':<22} {'variant':<14} {'fwd ms':>8} {'GFLOP/s':>8} {'fwd+bwd ms':>11} {'GFLOP/s':>8}")
    for layer in layers(args.size):
        for variant in ["NCHW", "channels_last"]:
            r = {**layer, "variant": variant, **measure(layer, variant, args.iters)}
            rows.append(r)
            print(f"{layer['name']:<22} {variant:<14} {r['forward_ms']:>8.2f} {r['forward_gflops']:>8.0f} "
                  f"{r['fwd_bwd_ms']:>11.2f} {r['fwd_bwd_gflops']:>8.0f}", flush=True)  # fmt: skip
        if layer["stride"] == 1 and not layer["transposed"]:
            for r in measure_algorithms(layer, args.iters):
                rows.append({**layer, **r})
                parts = " ".join(f"{k} {r[f'{k}_ms']:.2f}" for k in ALGORITHMS if f"{k}_ms" in r)
                print(f"{'':<22} {r['variant']:<14} {parts} ms -> fwd+bwd {r['fwd_bwd_ms']:.2f} ms "
                      f"{r['fwd_bwd_gflops']:.0f} GFLOP/s" + (f" {r['chosen']}" if "chosen" in r else ""))  # fmt: skip
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "size": args.size,
            "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT")}  # fmt: skip
    atomic_write_text(Path(args.out), json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
