"""CyCADA's study on digits (MNIST ↔ USPS or MNIST ↔ MNIST-M): CycleGAN with and without
``--semantic-loss`` over several seeds, scored as CyCADA scores it (adaptation accuracy both ways,
pixel level and with ``--feature-adaptation`` beside its feature-level-only floor), plus adaptation
accuracy against the training budget::

    python benchmarks/adaptation_study.py --work /work/cycada --seeds 0 1 2 [--jobs 2]
        [--dataset mnist-usps|mnist-mnistm] [--networks default|3x3] [--steps N] [--plot curves.png]

``--networks default`` trains the recipe's digit networks (seed 000's 5×5 kernels) for the command's
default budget unless ``--steps`` says otherwise: the configuration ``gankit train cyclegan --dataset
mnist-usps --semantic-loss`` gets. ``3x3`` gives the networks of the first study (3×3 generator, 4×4
discriminator kernels), which cost about half as much per step.

Arms: ``plain``, ``sem`` (``--semantic-source both``, the default: one classifier per domain, so each
direction's target labels shaped the other direction's generator) and ``sem-a`` / ``sem-b`` (one
classifier on A's / B's labels only: the label-free a2b / b2a figure, as CyCADA trains one model per
adaptation direction), each with the source classifiers as readers (``--semantic-reader source``, the
default before 2026-12-04); ``sem-rc`` adds ``--semantic-recolour`` (for MNIST → MNIST-M: the gray MNIST
classifier is trained on random recolourings, so that it reads coloured translations); ``sem-rs`` adds
``--semantic-reshape`` (each classifier trained under random warps and stroke widths, so that it reads
the other handwriting); ``sem-tr`` / ``sem-a-tr`` / ``sem-b-tr`` are ``sem`` / ``sem-a`` / ``sem-b`` with
``--semantic-reader target`` (what ``--semantic-loss`` alone now trains on MNIST ↔ USPS: readers of
the target's real images, taught by feature-aligned pseudo-labels, judge the translations);
``sem-tr-l2`` is ``sem-tr`` with ``--lambda-sem 2``. Every other arm with the loss runs with
``--no-semantic-recolour``, which mnist-mnistm turns on by default since 2026-12-05, so that each arm keeps
its meaning.

Runs are ``WORK/ARM-sSEED``; a run that stopped resumes (``--resume`` is exact), a finished
one is reused. Each run keeps its checkpoint every ``--curve-every`` steps; the final model gets the
whole ``gankit eval --feature-adaptation`` (``RUN/eval/final``), every earlier checkpoint an eval on
1,000 test images per domain (``RUN/eval/step_N``: adaptation accuracy trains and tests on the whole
splits either way). Evaluations are cached. Prints mean ± std over seeds, writes JSON and (``--plot``)
the curves against the training step beside the source-only and untranslated floors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARMS = {
    "plain": [],
    "sem": ["--semantic-loss", "--semantic-reader", "source"],
    "sem-a": ["--semantic-loss", "--semantic-source", "a", "--semantic-reader", "source"],
    "sem-b": ["--semantic-loss", "--semantic-source", "b", "--semantic-reader", "source"],
    "sem-rc": ["--semantic-loss", "--semantic-recolour", "--semantic-reader", "source"],
    "sem-rs": ["--semantic-loss", "--semantic-reshape", "--semantic-reader", "source"],
    "sem-tr": ["--semantic-loss", "--semantic-reader", "target"],
    "sem-a-tr": ["--semantic-loss", "--semantic-source", "a", "--semantic-reader", "target"],
    "sem-b-tr": ["--semantic-loss", "--semantic-source", "b", "--semantic-reader", "target"],
    "sem-tr-l2": ["--semantic-loss", "--semantic-reader", "target", "--lambda-sem", "2"],
}
NETWORKS = {"default": [], "3x3": ["--kernel-size", "3", "--d-kernel-size", "4"]}
METRICS = ("adaptation_accuracy_a2b", "adaptation_accuracy_b2a", "feature_adaptation_accuracy_a2b",
           "feature_adaptation_accuracy_b2a", "feature_only_accuracy_a2b", "feature_only_accuracy_b2a",
           "label_preservation_a2b", "label_preservation_b2a", "label_floor_a2b", "label_floor_b2a",
           "success_a2b", "success_b2a",
           "source_only_accuracy_a2b", "source_only_accuracy_b2a", "oracle_accuracy_a",
           "oracle_accuracy_b")  # fmt: skip
CURVE = ("adaptation_accuracy_a2b", "adaptation_accuracy_b2a", "label_preservation_a2b", "label_preservation_b2a")


def gankit(*args: str) -> list[str]:
    return [sys.executable, "-m", "gankit", *args]


def run_quietly(cmd: list[str], log: Path) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    with open(log, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env=env)


def train(run: Path, arm: str, seed: int, args) -> dict:
    if not (run / "summary.json").is_file():
        if any((run / "checkpoints").glob("step_*.pt")):
            cmd = gankit("train", "--resume", str(run), "--no-progress")
        else:
            steps = ["--steps", str(args.steps)] if args.steps else []
            plain_lenet = "--semantic-loss" in ARMS[arm] and "--semantic-recolour" not in ARMS[arm]
            cmd = gankit("train", "cyclegan", "--dataset", args.dataset, "--data-root", args.data_root,
                         *NETWORKS[args.networks], *ARMS[arm], *(["--no-semantic-recolour"] if plain_lenet else []),
                         *steps, "--seed", str(seed), "--threads", "1",
                         "--checkpoint-every", str(args.curve_every), "--keep-checkpoints", "100",
                         "--no-progress", "--out", str(run))  # fmt: skip
        run_quietly(cmd, run.parent / f"{run.name}.log")
    return json.loads((run / "summary.json").read_text())


def evaluate(run: Path, step: int | None, args) -> dict:
    from gankit.io import list_checkpoints

    out = run / "eval" / ("final" if step is None else f"step_{step:07d}")
    if not (out / "report.json").is_file():
        source = str(run) if step is None else str(dict(list_checkpoints(run / "checkpoints"))[step])
        extra = ["--feature-adaptation"] if step is None else ["--max-images", "1000"]
        extra += ["--adaptation-fits", str(args.adaptation_fits)] if args.adaptation_fits else []
        run_quietly(gankit("eval", source, "--data-root", args.data_root, "--out", str(out), *extra),
                    run.parent / f"{run.name}-eval.log")  # fmt: skip
    return json.loads((out / "report.json").read_text())["metrics"]


def study(arm: str, seed: int, args) -> dict:
    from gankit.io import list_checkpoints

    run = args.work / f"{arm}-s{seed}"
    summary = train(run, arm, seed, args)
    final = evaluate(run, None, args)
    curve = {step: {k: evaluate(run, step, args).get(k) for k in CURVE}
             for step, _ in list_checkpoints(run / "checkpoints")
             if args.curve and step % args.curve_every == 0 and step < summary["step"]}  # fmt: skip
    curve[summary["step"]] = {k: final.get(k) for k in CURVE}
    return {"arm": arm, "seed": seed, "steps": summary["step"], "cpu_seconds": summary.get("cpu_seconds"),
            "metrics": {k: final.get(k) for k in METRICS}, "curve": curve}  # fmt: skip


def mean_std(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def plot_curves(rows: list[dict], arms: list[str], dataset: str, path: Path) -> None:
    """Adaptation accuracy and label preservation against training steps, one line per arm (mean over
    seeds, the band spans the seeds), beside the source-only / untranslated floors and the goals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    published = {"mnist-usps": {"a2b": 0.956, "b2a": 0.965}}.get(dataset, {})
    fig, axes = plt.subplots(1, len(CURVE), figsize=(4.2 * len(CURVE), 3.4), sharex=True)
    for ax, key in zip(axes, CURVE, strict=True):
        direction = key.rsplit("_", 1)[1]
        for arm in arms:
            mine = [{int(step): point for step, point in r["curve"].items()} for r in rows if r["arm"] == arm]
            steps = sorted({s for curve in mine for s in curve})
            values = [[curve[s][key] for curve in mine if s in curve and curve[s][key] is not None] for s in steps]
            kept = [(s, v) for s, v in zip(steps, values, strict=True) if v]
            if not kept:
                continue
            xs = [s for s, _ in kept]
            line, = ax.plot(xs, [statistics.mean(v) for _, v in kept], marker="o", ms=3,
                            label=f"{arm} ({len(mine)} seed{'s' if len(mine) > 1 else ''})")  # fmt: skip
            ax.fill_between(xs, [min(v) for _, v in kept], [max(v) for _, v in kept], color=line.get_color(), alpha=0.2)
        adaptation = key.startswith("adaptation")
        floor_key, floor_name = (("source_only_accuracy", "source only") if adaptation
                                 else ("label_floor", "untranslated"))  # fmt: skip
        floor = [v for r in rows if (v := r["metrics"].get(f"{floor_key}_{direction}")) is not None]
        if floor:
            ax.axhline(statistics.mean(floor), color="gray", ls=":", label=floor_name)
        goal = published.get(direction) if adaptation else 0.95
        if goal:
            ax.axhline(goal, color="black", ls="--", lw=0.8, label="CyCADA (paper)" if adaptation else "goal 0.95")
        ax.set_title(key.replace("_", " "), fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--work", type=Path, required=True, help="folder for the runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=["plain", "sem"])
    p.add_argument("--dataset", choices=("mnist-usps", "mnist-mnistm"), default="mnist-usps")
    p.add_argument("--networks", choices=tuple(NETWORKS), default="default")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the command's own)")
    p.add_argument("--curve-every", type=int, default=1000)
    p.add_argument("--no-curve", dest="curve", action="store_false", help="evaluate the final models only")
    p.add_argument("--adaptation-fits", type=int, default=None,
                   help="classifiers per adaptation figure (default: gankit eval's)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-adaptation-study.json")
    p.add_argument("--plot", type=Path, default=None, help="draw the budget curves (PNG)")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: study(*job, args), [(a, s) for a in args.arms for s in args.seeds]))
    for arm in args.arms:
        mine = [r for r in rows if r["arm"] == arm]
        cpu = [r["cpu_seconds"] / 60 for r in mine if r["cpu_seconds"]]
        print(f"\n{arm} (seeds {', '.join(str(r['seed']) for r in mine)}; training {mean_std(cpu)} CPU-min)")
        for k in METRICS:
            values = [r["metrics"][k] for r in mine]
            each = ", ".join("—" if v is None else f"{v:.3f}" for v in values)
            print(f"  {k:34s} {mean_std(values)}   [{each}]")
        for step in sorted({s for r in mine for s in r["curve"]}):
            values = {k: mean_std([r["curve"][step][k] for r in mine if step in r["curve"]]) for k in CURVE}
            print(f"  step {step:5d}: " + " | ".join(f"{k} {v}" for k, v in values.items()))
    result = {"dataset": args.dataset, "networks": args.networks, "model": " ".join(NETWORKS[args.networks]),
              "steps": args.steps, "rows": rows,
              "machine": platform.processor() or platform.machine()}  # fmt: skip
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    if args.plot:
        plot_curves(rows, args.arms, args.dataset, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
