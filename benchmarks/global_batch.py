"""Quality against the global batch at equal images seen (CycleGAN, a method tuned for batch 1).

N data-parallel ranks multiply the batch. This trains CycleGAN on apple2orange with global batches
of 1, 4 and 16 as that many ranks of batch 1 (``--accumulate N``, the same computation in one
process, tests/test_distributed.py) for the same number of training images, with and without the
square-root learning-rate scaling rule plus warm-up (which count the accumulated batches as ranks),
and scores every run with the garbage-aware ``gankit eval`` (its floors printed beside the figures)::

    python benchmarks/global_batch.py --data-root ../shared/data --work /tmp/global-batch [--images 2400]

Each run resumes where it stopped (``--resume`` is exact), so the study may be run in pieces; the
evaluation of a finished run is cached in ``RUN/eval``. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = ["--size", "64", "--load-size", "72", "--ngf", "32", "--ndf", "32", "--blocks", "6"]
CONFIGS = ((1, "none"), (4, "none"), (4, "sqrt"), (16, "none"), (16, "sqrt"))
METRICS = ("success_a2b", "success_b2a", "fid_cls_a2b", "fid_cls_b2a", "content_a2b", "content_b2a")
FLOORS = ("floor_a2b", "floor_b2a", "fid_cls_floor", "garbage_floor_success_a2b", "garbage_floor_success_b2a",
          "garbage_floor_fid_cls_a2b", "real_ceiling_success_a2b", "real_ceiling_success_b2a",
          "real_ceiling_fid_cls_a2b", "real_ceiling_fid_cls_b2a")  # fmt: skip


def gankit(*args: str) -> list[str]:
    return [sys.executable, "-m", "gankit", *args]


def train(run: Path, batch: int, scaling: str, args) -> dict:
    steps = args.images // batch
    if (run / "summary.json").is_file():
        return json.loads((run / "summary.json").read_text())
    if (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("step_*.pt")):
        cmd = gankit("train", "--resume", str(run), "--no-progress")
    else:
        warmup = ["--warmup-steps", str(max(1, steps // 10))] if scaling != "none" else []
        cmd = gankit("train", "cyclegan", "--dataset", "apple2orange", "--data-root", args.data_root, *MODEL,
                     "--batch-size", "1", "--accumulate", str(batch), "--lr-scaling", scaling, *warmup,
                     "--steps", str(steps),
                     "--seed", str(args.seed), "--threads", str(args.threads), "--checkpoint-every",
                     str(max(1, steps // 4)), "--checkpoint-minutes", "0", "--sample-every", str(max(1, steps // 4)),
                     "--log-every", str(max(1, steps // 100)), "--no-progress", "--out", str(run))  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return json.loads((run / "summary.json").read_text())


def evaluate(run: Path, args) -> dict:
    report = run / "eval" / "report.json"
    if not report.is_file():
        subprocess.run(gankit("eval", str(run), "--dataset", "apple2orange", "--data-root", args.data_root,
                              "--out", str(run / "eval")), check=True, capture_output=True)  # fmt: skip
    return json.loads(report.read_text())["metrics"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--work", type=Path, required=True, help="folder for the runs")
    p.add_argument("--images", type=int, default=2400, help="training images per run (steps × global batch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--configs",
        default=",".join(f"{b}:{s}" for b, s in CONFIGS),
        help="BATCH:SCALING pairs to run (default all; a second process may take the others)",
    )
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-global-batch.json")
    args = p.parse_args()
    rows, floors = [], {}
    for batch, scaling in [(int(b), s) for b, s in (c.split(":") for c in args.configs.split(","))]:
        run = args.work / f"b{batch}-{scaling}"
        summary = train(run, batch, scaling, args)
        m = evaluate(run, args)
        floors = floors or {k: m.get(k) for k in FLOORS}
        rows.append({"global_batch": batch, "lr_scaling": scaling, "steps": summary["step"],
                     "cpu_seconds": summary.get("cpu_seconds"), **{k: m.get(k) for k in METRICS}})  # fmt: skip
        r = rows[-1]
        print(f"batch {batch:2d} | {scaling:4s} | {r['steps']:5d} steps | {r['cpu_seconds'] or 0:7.0f} CPU-s | "
              f"success {r['success_a2b']:.3f} / {r['success_b2a']:.3f} | FID_cls {r['fid_cls_a2b']:.1f} / "
              f"{r['fid_cls_b2a']:.1f} | content {r['content_a2b']:.2f} / {r['content_b2a']:.2f}",
              flush=True)  # fmt: skip
    print("floors:", json.dumps(floors))
    result = {"images": args.images, "model": " ".join(MODEL), "seed": args.seed, "rows": rows, "floors": floors,
              "machine": platform.processor() or platform.machine()}  # fmt: skip
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
