"""Quality per CPU-hour: translation runs trained for the same process CPU time (CycleGAN, CUT,
FastCUT on apple2orange at 128 px), each evaluated at every checkpoint it wrote at fixed intervals
(never a best-of-run pick) with the garbage-aware ``gankit eval``, plus Inception FID/KID with
``--inception-weights``. Prints a table, writes JSON and the a→b translations of the same 8 test
apples side by side, one column per run::

    python benchmarks/quality_per_cpu.py RUN [RUN …] --data-root ../shared/data \\
        [--inception-weights auto] [--intervals 2] [--grid docs/img/quality_per_cpu.png]

Each run is started and resumed by the command recorded in docs/results.md (``--threads 1
--workers 0``, so that the process CPU time counts all training work); the CPU time of each
checkpoint is the one the training loop stores in it (``effort``), summed over resumes.
Evaluations are cached in ``RUN/eval/step_N`` and only missing ones run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
METRICS = ("success_a2b", "success_a2b_ci", "precision_a2b", "recall_a2b", "fid_cls_a2b", "kid_cls_a2b",
           "kid_cls_a2b_std", "content_a2b", "content_a2b_ci", "content_noise_a2b", "neither_a2b",
           "fid_inception_a2b", "kid_inception_a2b", "classifier_test_accuracy")  # fmt: skip
FLOORS = ("floor_a2b", "fid_cls_floor", "kid_cls_floor", "garbage_floor_success_a2b", "garbage_floor_fid_cls_a2b",
          "real_ceiling_success_a2b", "real_ceiling_fid_cls_a2b", "fid_inception_floor",
          "kid_inception_floor")  # fmt: skip


def checkpoints(run: Path, intervals: int = 1) -> list[tuple[int, Path]]:
    """The checkpoints at every ``intervals``-th multiple of the run's fixed interval
    (``--checkpoint-every``) and at its last step, plus those of other multiples already evaluated;
    those a stop for a pause wrote in between are left out."""
    import yaml

    from gankit.io import list_checkpoints

    config = yaml.safe_load((run / "config.yaml").read_text())
    every, steps = config["checkpoint_every"], config["steps"]
    return [(s, p) for s, p in list_checkpoints(run / "checkpoints")
            if s % (every * intervals) == 0 or s == steps or (s % every == 0 and evaluated(run, s))]  # fmt: skip


def evaluated(run: Path, step: int) -> bool:
    return (run / "eval" / f"step_{step:07d}" / "report.json").is_file()


def effort_of(path: Path) -> dict:
    from gankit.models.persist import read_checkpoint

    state = read_checkpoint(path)
    return {"kind": state["kind"], "seed": state["config"]["seed"], "steps": state["config"]["steps"],
            **state.get("effort", {})}  # fmt: skip


def evaluate(run: Path, step: int, path: Path, args) -> dict:
    out = run / "eval" / f"step_{step:07d}"
    report = out / "report.json"
    if not report.is_file():
        cmd = [sys.executable, "-m", "gankit", "eval", str(path), "--dataset", "apple2orange", "--data-root",
               args.data_root, "--out", str(out)]  # fmt: skip
        if args.inception_weights:
            cmd += ["--inception-weights", args.inception_weights]
        subprocess.run(cmd, check=True, capture_output=True)
    return json.loads(report.read_text())["metrics"]


def side_by_side(runs: list[Path], data_root: str, out: Path, n: int = 8) -> None:
    """The same ``n`` evenly spaced test apples (centre 128 px crops) translated by each run's final model."""
    from gankit.data.grid import make_grid
    from gankit.data.images import center_square_batch
    from gankit.data.recipes import load_recipe
    from gankit.io import save_image_atomic
    from gankit.models.persist import load_model

    apples = center_square_batch(load_recipe("apple2orange", data_root, split="test").source_a, 128, n)
    columns = [apples]
    labels = ["test apple"]
    for run in runs:
        model = load_model(str(run), torch.device("cpu")).eval()
        with torch.no_grad():
            columns.append(model.generator("a2b")(apples))
        labels.append(run.name)
    rows = [[col[i] for col in columns] for i in range(n)]
    save_image_atomic(make_grid(rows, labels=labels), out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--inception-weights", default=None)
    p.add_argument(
        "--intervals",
        type=int,
        default=1,
        help="evaluate every N-th checkpoint interval (and the last step) to save evaluation time",
    )
    p.add_argument("--grid", type=Path, default=REPO / "docs" / "img" / "quality_per_cpu.png")
    p.add_argument("--grid-runs", type=Path, nargs="+", default=None,
                   help="runs whose final models the grid shows (default: RUN …)")  # fmt: skip
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-quality-per-cpu.json")
    args = p.parse_args()
    rows, floors = [], {}
    for run in args.runs:
        for step, path in checkpoints(run, args.intervals):
            m = evaluate(run, step, path, args)
            floors = floors or {k: m.get(k) for k in FLOORS}
            rows.append({"run": run.name, "step": step, **effort_of(path), **{k: m.get(k) for k in METRICS}})
    header = ("run", "step", "CPU min", "success a→b", "precision", "recall", "FID_cls", "KID_cls", "content",
              "FID (Inception)")  # fmt: skip
    print(" | ".join(header))
    for r in rows:
        fid = r["fid_inception_a2b"]
        print(f"{r['run']} | {r['step']}/{r['steps']} | {r.get('cpu_seconds', 0) / 60:.1f} | {r['success_a2b']:.3f} | "
              f"{r['precision_a2b']:.2f} | {r['recall_a2b']:.2f} | {r['fid_cls_a2b']:.1f} | {r['kid_cls_a2b']:.2f} | "
              f"{r['content_a2b']:.2f} | {'' if fid is None else f'{fid:.1f}'}")  # fmt: skip
    print("floors:", json.dumps(floors))
    grid_runs = args.grid_runs or args.runs
    side_by_side([run for run in grid_runs if (run / "model.safetensors").is_file()], args.data_root, args.grid)
    result = {"rows": rows, "floors": floors, "grid": str(args.grid.relative_to(REPO)) if args.grid.is_relative_to(REPO)
              else str(args.grid), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__}  # fmt: skip
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json} and {args.grid}")


if __name__ == "__main__":
    main()
