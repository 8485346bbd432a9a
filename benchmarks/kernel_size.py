"""What SPEC §4's network options cost for the digit recipes' default network (mnist-usps: resnet-6,
ngf 32, ndf 32, PatchGAN, batch 4, 32 px gray; one CycleGAN training iteration, what a CyCADA run
repeats): kernel 3 (the digit networks before issue 17, ``--kernel-size 3 --d-kernel-size 4``) against
kernel 5 (the digit recipes' default since, seed 000's choice) and, for reference, kernel 5 with
average-pooled downsampling or with LeakyReLU. All variants live in one process; each round times
every variant in turn and the rounds repeat, so that every ratio compares timings seconds apart on
the same (possibly shared) machine. Multiply-adds are counted too, which a shared machine cannot
blur. Prints a table and writes benchmarks/results-kernel-size.json::

    python benchmarks/kernel_size.py [--rounds 5] [--iters 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gankit.bench import TrainingSteps, time_call
from gankit.data.recipes import recipe_options
from gankit.models.cyclegan import CycleGANConfig

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "k3 (before)": {"kernel_size": 3, "d_kernel_size": 4},
    "k5 (default)": {"kernel_size": 5},
    "k5 avgpool": {"kernel_size": 5, "downsample": "avgpool"},
    "k5 leaky": {"kernel_size": 5, "activation": "leaky"},
}


def digits_config(**options) -> CycleGANConfig:
    """The config ``gankit train cyclegan --dataset mnist-usps`` resolves to, with ``options`` over it."""
    fields = recipe_options("mnist-usps") | {"dataset": "mnist-usps", "channels_a": 1, "channels_b": 1, "size": 32,
                                             "device": "cpu"} | options  # fmt: skip
    return dataclasses.replace(CycleGANConfig(), **fields).validate()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=4, help="timed iterations per variant and round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the CyCADA runs use 1)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results-kernel-size.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    a, b = torch.rand(2, 4, 1, 32, 32) * 2 - 1
    dev = torch.device("cpu")
    steps = {name: TrainingSteps(digits_config(**opts)) for name, opts in VARIANTS.items()}
    flops = {}
    for name, s in steps.items():
        time_call(lambda s=s: s.train_step(a, b), 0, args.warmup, dev)  # the tuner times its candidates here
        with s.run.reference_passes(), FlopCounterMode(display=False) as counter:
            s.train_step(a, b)
        flops[name] = counter.get_total_flops()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name, s in steps.items():
            times[name].append(statistics.median(time_call(lambda s=s: s.train_step(a, b), args.iters, 0, dev)))
        print(f"round {r + 1}: " + "  ".join(f"{n} {times[n][-1]:.3f}" for n in steps), flush=True)
    base = "k3 (before)"
    rows = []
    print("\nvariant        s/iter (median)  × k3 per round (median)  GFLOP/iter  × FLOPs")
    for name in steps:
        ratios = [t / t0 for t, t0 in zip(times[name], times[base])]
        row = {"variant": name, "options": VARIANTS[name], "s_per_iter": statistics.median(times[name]),
               "s_per_round": [round(t, 4) for t in times[name]], "ratio_median": round(statistics.median(ratios), 3),
               "ratio_per_round": [round(x, 3) for x in ratios], "gflop_per_iter": flops[name] / 1e9,
               "flop_ratio": round(flops[name] / flops[base], 3)}  # fmt: skip
        rows.append(row)
        print(f"{name:<13}  {row['s_per_iter']:>15.3f}  {row['ratio_median']:>23.3f}  {row['gflop_per_iter']:>10.2f}"
              f"  {row['flop_ratio']:>7.3f}")  # fmt: skip
    setup = {"network": "resnet-6 ngf 32, PatchGAN ndf 32 (mnist-usps recipe)", "batch_size": 4, "size": 32,
             "threads": args.threads, "rounds": args.rounds, "iters": args.iters, "torch": torch.__version__,
             "machine": platform.processor() or platform.machine(), "python": platform.python_version()}  # fmt: skip
    args.out.write_text(json.dumps({"setup": setup, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
