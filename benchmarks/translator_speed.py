"""CUT and FastCUT against CycleGAN: one training iteration of each model in its default training
configuration (the one the quality runs use), each in its own process (``gankit bench train --model
M --size S --json``: its peak RSS is its own), models interleaved within a pass and the pass repeated,
so that every ratio compares runs made minutes apart on the same machine. ``--heaps`` also times each
model under glibc's allocator defaults (``--heap glibc``) beside ``gankit train``'s policy (no mmap,
freed memory kept: ``gankit.runtime.HeapPolicy.for_training``); ratios compare models under the same
heap. Prints a table and writes benchmarks/results-translator-speed.json::

    python benchmarks/translator_speed.py [--sizes 128 256] [--passes 2] [--iters 5] [--warmup 2]
                                          [--heaps training glibc]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("cyclegan", "cut", "fastcut")


def bench(model: str, size: int, iters: int, warmup: int, heap: str) -> dict:
    cmd = [sys.executable, "-m", "gankit", "bench", "train", "--model", model, "--size", str(size), "--iters",
           str(iters), "--warmup", str(warmup), "--heap", heap, "--json"]  # fmt: skip
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row.pop("conv_choices", None)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--heaps", nargs="+", default=["training"], choices=("training", "glibc"))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results-translator-speed.json")
    args = p.parse_args()
    rows = []
    for n in range(args.passes):
        for size in args.sizes:
            for model in MODELS:
                for heap in args.heaps:
                    row = bench(model, size, args.iters, args.warmup, heap) | {"pass": n + 1}
                    rows.append(row)
                    print(f"pass {n + 1} {model:>8} {size:>3} px heap {heap:>8}: {row['s_per_iter']:.3f} s/iter "
                          f"{row['tflop_per_iter']:.3f} TFLOP {row['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
    summary = []
    print("\nmodel      size  heap      s/iter (median of passes)  × CycleGAN (per pass)  TFLOP/iter  × FLOPs  "
          "peak RSS MB")  # fmt: skip
    for size in args.sizes:
        for heap in args.heaps:
            runs = [r for r in rows if r["size"] == size and r["heap"] == heap]
            base = {r["pass"]: r for r in runs if r["model"] == "cyclegan"}
            for model in MODELS:
                mine = [r for r in runs if r["model"] == model]
                ratios = [r["s_per_iter"] / base[r["pass"]]["s_per_iter"] for r in mine]
                flops = mine[0]["tflop_per_iter"] / base[1]["tflop_per_iter"]
                entry = {"model": model, "size": size, "heap": heap,
                         "s_per_iter": statistics.median(r["s_per_iter"] for r in mine),
                         "ratio_per_pass": [round(x, 3) for x in ratios], "tflop_per_iter": mine[0]["tflop_per_iter"],
                         "flop_ratio": round(flops, 3), "peak_rss_mb": max(r["peak_rss_mb"] for r in mine)}  # fmt: skip
                summary.append(entry)
                print(f"{model:>8}  {size:>4}  {heap:>8}  {entry['s_per_iter']:>8.3f}  "
                      f"{' / '.join(f'{x:.3f}' for x in ratios):>22}  {entry['tflop_per_iter']:>9.3f}  {flops:>7.3f}  "
                      f"{entry['peak_rss_mb']:>8.0f}")  # fmt: skip
    args.out.write_text(
        json.dumps(
            {
                "summary": summary,
                "rows": rows,
                "machine": platform.processor() or platform.machine(),
                "python": platform.python_version(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
