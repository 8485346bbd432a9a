"""Does gankit's fast training path learn what the official code learns? Equal steps, real data.

Trains three CycleGANs on the same real batches (apple2orange from ``--data-root``), all from the
same initial weights (the official networks' N(0, 0.02) draw, mapped into gankit by position):

- ``official``   junyanz/pytorch-CycleGAN-and-pix2pix's ``CycleGANModel.optimize_parameters``;
- ``gankit``     gankit's ``CycleGANModel.train_step`` with the given overrides (default ``compile=true``,
  the path the speed benchmark measures);
- ``official-2`` the official code again, with another seed for its image pools (Python ``random``).

Until the image pools are full the three are the same computation. After that each pool hands
its discriminators different old fakes, so the runs drift apart; ``official`` vs ``official-2``
is therefore the run-to-run spread of the official code itself, the yardstick for
``official`` vs ``gankit``. Both optimizers follow gankit's linear schedule (constant, then linear
decay over the second half), set on the official optimizers by hand before every step.

Writes ``--out``: per-step losses (``losses.csv``), their smoothed curves (``losses.png``), one
gankit run folder per model (``config.yaml`` + ``model.safetensors``, the official generators
converted) scored by ``gankit eval`` (``<name>/eval/report.json``), and ``results.json`` plus a
table on stdout. The official code is not part of gankit: pass ``--official-repo``::

    python benchmarks/official_equal_steps.py --official-repo ../pytorch-CycleGAN-and-pix2pix \
        --data-root ../shared/data --size 64 --blocks 6 --ngf 32 --steps 600 --threads 1 --out eq
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gankit.launch import prefer_short_openmp_spin

prefer_short_openmp_spin()  # as the gankit command does; must precede torch's import

import torch  # noqa: E402

from gankit.api import CycleGAN  # noqa: E402
from gankit.bench import CycleGANSteps as Trainer  # noqa: E402
from gankit.config import CycleGANConfig  # noqa: E402
from gankit.data.loading import domain_pair, make_loader, resolve_config  # noqa: E402
from gankit.io import atomic_write_text  # noqa: E402
from gankit.models.official import map_official_state_dict  # noqa: E402
from gankit.models.persist import save_weights  # noqa: E402
from gankit.models.schedules import lr_factor  # noqa: E402
from gankit.training.report import moving_average  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from official_side_by_side import (  # noqa: E402
    LOSS_KEYS,
    copy_official_weights,
    gankit_step,
    load_official_model,
    official_options,
    official_step,
    parse_overrides,
    relative_difference,
)

DIVERGENCE_STEPS = (1, 2, 5, 10, 50)
METRIC_KEYS = ("success_a2b", "success_b2a", "fid_cls_a2b", "fid_cls_b2a", "cycle_l1_a", "cycle_l1_b")


def make_config(args, overrides: dict) -> CycleGANConfig:
    config = CycleGANConfig(
        dataset=args.dataset, data_root=args.data_root, size=args.size, generator="resnet", blocks=args.blocks,
        ngf=args.ngf, ndf=args.ngf, discriminator="patch", d_layers=3, norm="instance", gan_loss="lsgan",
        lambda_cyc=10.0, lambda_id=0.5, pool_size=50, lr=2e-4, beta1=0.5, init="normal", init_gain=0.02,
        batch_size=1, steps=args.steps, schedule="linear", device="cpu", threads=args.threads, amp="off",
        seed=args.seed,
    )  # fmt: skip
    config = dataclasses.replace(config, **overrides).validate()
    return resolve_config(config, domain_pair(config, "train"))


def real_batches(config: CycleGANConfig, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n`` training batches of gankit's loader (decoded, resized, cropped, flipped)."""
    batches = iter(make_loader(config, domain_pair(config, "train"), 0))
    out = []
    for _ in range(n):
        b = next(batches)
        out.append((b["A"].clone(), b["B"].clone()))
    return out


def new_official(args, workdir: str):
    torch.manual_seed(args.seed)  # the same initial weights every time
    return load_official_model(
        Path(args.official_repo), official_options(args.size, 1, args.blocks, workdir, args.ngf, args.ngf)
    )


def train_official(args, config, batches, pool_seed: int, workdir: str) -> tuple[object, list[dict]]:
    model = new_official(args, workdir)
    random.seed(pool_seed)  # their ImagePool draws from Python's random
    losses, start = [], time.perf_counter()
    for step, (a, b) in enumerate(batches):
        factor = lr_factor(step, config.steps, config.schedule, decay_start=config.decay_start)
        for opt in model.optimizers:
            for group in opt.param_groups:
                group["lr"] = config.lr * factor
        losses.append(official_step(model, a, b))
        log_progress("official", step, len(batches), losses[-1], start)
    return model, losses


def train_gankit(args, config, batches, run_dir: Path, workdir: str) -> tuple[Trainer, list[dict]]:
    trainer = Trainer(config)
    copy_official_weights(new_official(args, workdir), trainer)
    losses, start = [], time.perf_counter()
    for step, (a, b) in enumerate(batches):
        losses.append(gankit_step(trainer, a, b))
        log_progress("gankit", step, len(batches), losses[-1], start)
    return trainer, losses


def log_progress(name: str, step: int, total: int, losses: dict, start: float) -> None:
    if (step + 1) % 50 == 0 or step + 1 == total:
        print(f"  {name:>10} {step + 1:>5}/{total}  G {losses['G_total']:.3f}  D {losses['D']:.3f}  "
              f"cycle {losses['cycle']:.3f}  ({time.perf_counter() - start:.0f}s)", flush=True)  # fmt: skip


def save_run(config: CycleGANConfig, run_dir: Path, official=None, trainer: Trainer | None = None) -> Path:
    """A run folder ``gankit eval`` reads: config.yaml + model.safetensors (official G_A is A→B)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(config, out=str(run_dir), compile=False)
    config.save_yaml(run_dir / "config.yaml")
    if trainer is not None:
        return save_weights(trainer.run, run_dir / "model.safetensors")
    model = CycleGAN(config, with_discriminators=False)
    model.g_ab.load_state_dict(map_official_state_dict(official.netG_A.state_dict(), model.g_ab))
    model.g_ba.load_state_dict(map_official_state_dict(official.netG_B.state_dict(), model.g_ba))
    return model.save_generators(run_dir / "model.safetensors")


def evaluate(run_dir: Path, args) -> dict:
    out = run_dir / "eval"
    cmd = [sys.executable, "-m", "gankit", "eval", str(run_dir), "--dataset", args.dataset,
           "--data-root", args.data_root, "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return json.loads((out / "report.json").read_text())["metrics"]


def train_all(args, config, out: Path) -> dict[str, list[dict]]:
    batches = real_batches(config, args.steps)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        official, runs["official"] = train_official(args, config, batches, args.seed, tmp)
        save_run(config, out / "official", official=official)
        trainer, runs["gankit"] = train_gankit(args, config, batches, out / "gankit", tmp)
        save_run(config, out / "gankit", trainer=trainer)
        official2, runs["official-2"] = train_official(args, config, batches, args.seed + 1, tmp)
        save_run(config, out / "official-2", official=official2)
    return runs


def read_losses(path: Path) -> dict[str, list[dict]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    names = list(dict.fromkeys(k.split(":")[0] for k in rows[0] if k != "step"))
    return {n: [{k: float(r[f"{n}:{k}"]) for k in LOSS_KEYS} for r in rows] for n in names}


def write_losses(out: Path, runs: dict[str, list[dict]], smooth: int) -> None:
    names = list(runs)
    with (out / "losses.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step"] + [f"{n}:{k}" for n in names for k in LOSS_KEYS])
        for step in range(len(runs[names[0]])):
            w.writerow([step + 1] + [f"{runs[n][step][k]:.6g}" for n in names for k in LOSS_KEYS])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LOSS_KEYS), figsize=(5 * len(LOSS_KEYS), 3.6))
    for ax, key in zip(axes, LOSS_KEYS):
        for name, style in zip(names, ("-", "--", ":")):
            y = np.array([r[key] for r in runs[name]])
            ax.plot(np.arange(1, len(y) + 1), moving_average(y, smooth), style, label=name, lw=1.4)
        ax.set_title(f"{key} (moving average of {smooth})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "losses.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official-repo", required=True, help="checkout of junyanz/pytorch-CycleGAN-and-pix2pix")
    p.add_argument("--dataset", default="apple2orange")
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--blocks", type=int, default=6, choices=(6, 9))
    p.add_argument("--ngf", type=int, default=32, help="generator and discriminator base width (theirs: 64)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smooth", type=int, default=50, help="moving-average window of the loss plot and table")
    p.add_argument("--gankit", action="append", default=["compile=true"], metavar="FIELD=VALUE")
    p.add_argument("--out", default="equal-steps")
    p.add_argument("--reuse", action="store_true", help="re-summarize the losses and reports already in --out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = make_config(args, parse_overrides(args.gankit))
    if args.reuse:
        runs = read_losses(out / "losses.csv")
    else:
        runs = train_all(args, config, out)
    write_losses(out, runs, args.smooth)
    metrics = {}
    for name in runs:
        report = out / name / "eval" / "report.json"
        metrics[name] = json.loads(report.read_text())["metrics"] if args.reuse else evaluate(out / name, args)
    divergence = {step: relative_difference(runs["official"][step - 1], runs["gankit"][step - 1])
                  for step in DIVERGENCE_STEPS if step <= len(runs["official"])}  # fmt: skip
    tail = {n: {k: float(np.mean([r[k] for r in rs[-args.smooth :]])) for k in LOSS_KEYS} for n, rs in runs.items()}
    print("\nofficial vs gankit, relative loss difference at step " + "; ".join(
        f"{step}: G {d['G_total']:.1e} D {d['D']:.1e}" for step, d in divergence.items()))  # fmt: skip
    print(f"\n{'run':>11} " + " ".join(f"{k + ' (last ' + str(args.smooth) + ')':>18}" for k in LOSS_KEYS)
          + " " + " ".join(f"{k:>11}" for k in METRIC_KEYS))  # fmt: skip
    for name in runs:
        print(f"{name:>11} " + " ".join(f"{tail[name][k]:>18.4f}" for k in LOSS_KEYS) + " "
              + " ".join(f"{metrics[name].get(k, float('nan')):>11.4f}" for k in METRIC_KEYS))  # fmt: skip
    result = {
        "command": " ".join(sys.argv), "torch": torch.__version__, "threads": args.threads,
        "config": config.to_dict(), "loss_rel_diff_by_step": divergence, "loss_tail_mean": tail,
        "metrics": metrics,
    }  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(result, indent=2))
    print(f"\nwrote {out / 'results.json'}, {out / 'losses.png'}, {out / 'losses.csv'}")


if __name__ == "__main__":
    main()
