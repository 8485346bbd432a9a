"""Speed table of gankit on this machine: training iterations at 64/128/256 px for resnet 6/9 blocks
+ PatchGAN at batch 1 and the other batch sizes of ``--batches`` (the fastest per image is marked),
inference at 256/512/1024 px, and the attainable conv rate. Prints a table and writes JSON (default
benchmarks/results-<device>.json).

    python benchmarks/run.py [--quick] [--device cuda] [--compile] [--batches 1 2 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from gankit.launch import prefer_short_openmp_spin

prefer_short_openmp_spin()  # as the gankit command does; must precede torch's import

import torch  # noqa: E402

from gankit.bench import attainable_conv_gflops, bench_infer, bench_train, format_rows  # noqa: E402
from gankit.io import atomic_write_text  # noqa: E402
from gankit.runtime import resolve_device  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="64 px training and 256 px inference only")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (compiles in warm-up)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="batch sizes to time (resnet-9)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    dev = resolve_device(args.device)
    train_sizes = [64] if args.quick else [64, 128, 256]
    infer_sizes = [256] if args.quick else [256, 512, 1024]
    rows = []
    for size in train_sizes:
        for blocks in (6, 9):
            for batch in sorted({1, *args.batches}) if blocks == 9 else [1]:
                rows.append(bench_train(size=size, blocks=blocks, batch_size=batch, iters=args.iters, warmup=1,
                                        device=str(dev), compile=args.compile))  # fmt: skip
                print(format_rows(rows[-1:]), flush=True)
        same = [r for r in rows if r["bench"] == "train" and r["size"] == size and r["blocks"] == 9]
        max(same, key=lambda r: r["images_per_s"])["fastest_batch"] = True
    for size in infer_sizes:
        rows.append(bench_infer(size=size, iters=args.iters, warmup=1, device=str(dev)))
    conv = {"bench": "conv", "gflops": attainable_conv_gflops(dev),
            "gflops_channels_last": attainable_conv_gflops(dev, channels_last=True)}  # fmt: skip
    rows.append(conv)
    print(format_rows(rows))
    print(f"attainable conv rate: {conv['gflops']:.0f} GFLOP/s NCHW, {conv['gflops_channels_last']:.0f} channels_last")
    out = Path(args.out or Path(__file__).with_name(f"results-{dev.type}.json"))
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": str(dev)}  # fmt: skip
    atomic_write_text(out, json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
