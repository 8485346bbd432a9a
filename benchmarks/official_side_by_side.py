"""gankit's CycleGAN training iteration against the official implementation
(junyanz/pytorch-CycleGAN-and-pix2pix), side by side in one process.

Both train with the official defaults (resnet 9 blocks, 3-layer PatchGAN, instance norm, LSGAN,
λ 10, identity 0.5, pool 50, Adam 2e-4 β1 0.5, N(0, 0.02) init, batch 1) on the same random batches
in [-1, 1]. Timed iterations alternate between the two (and which goes first), so load from other
processes on the machine hits both alike; the figure to read is the ratio of the medians. The
ratio of median process CPU times (all threads) is printed too: on a machine shared with other
jobs it is the steadier of the two, as long as both sides use the same thread count.

By default gankit starts from the official networks' initial weights (mapped by position), so the
two runs are the same computation: until the image pools are full (``pool_size`` iterations) both
discriminators see the same fakes and the per-step losses must agree up to float rounding; the
script prints the largest relative difference of those steps.

The official code is not part of gankit: point ``--official-repo`` at a checkout of it (the
directory holding ``models/`` and ``util/``)::

    python benchmarks/official_side_by_side.py --official-repo ../pytorch-CycleGAN-and-pix2pix \
        --size 128 256 --threads 2 --iters 10 --warmup 2

``--gankit KEY=VALUE`` sets CycleGANConfig fields of the gankit side (e.g. ``--gankit compile=true``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gankit.launch import prefer_short_openmp_spin

prefer_short_openmp_spin()  # as the gankit command does; must precede torch's import

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from gankit.bench import CycleGANSteps as Trainer  # noqa: E402
from gankit.config import coerce  # noqa: E402
from gankit.io import atomic_write_text  # noqa: E402
from gankit.models.cyclegan import CycleGANConfig  # noqa: E402
from gankit.models.official import map_official_state_dict  # noqa: E402


def official_options(
    size: int, batch_size: int, blocks: int, workdir: str, ngf: int = 64, ndf: int = 64
) -> argparse.Namespace:
    """The official ``train.py`` defaults for ``--model cycle_gan`` (CPU: ``--gpu_ids -1``)."""
    return argparse.Namespace(
        # base options
        dataroot="unused", name="side_by_side", gpu_ids=[], checkpoints_dir=workdir, model="cycle_gan",
        input_nc=3, output_nc=3, ngf=ngf, ndf=ndf, netD="basic", netG=f"resnet_{blocks}blocks", n_layers_D=3,
        norm="instance", init_type="normal", init_gain=0.02, no_dropout=True, dataset_mode="unaligned",
        direction="AtoB", serial_batches=False, num_threads=0, batch_size=batch_size, load_size=size,
        crop_size=size, max_dataset_size=float("inf"), preprocess="resize_and_crop", no_flip=False,
        display_winsize=size, epoch="latest", load_iter=0, verbose=False, suffix="",
        # train options
        isTrain=True, continue_train=False, epoch_count=1, phase="train", n_epochs=100, n_epochs_decay=100,
        niter=100, niter_decay=100, beta1=0.5, lr=0.0002, gan_mode="lsgan", pool_size=50, lr_policy="linear",
        lr_decay_iters=50,
        # cycle_gan options
        lambda_A=10.0, lambda_B=10.0, lambda_identity=0.5,
    )  # fmt: skip


def load_official_model(repo: Path, opt: argparse.Namespace):
    repo = repo.resolve()
    if not (repo / "models" / "cycle_gan_model.py").is_file():
        raise SystemExit(f"{repo}: no models/cycle_gan_model.py (pass the root of an official checkout)")
    sys.path.insert(0, str(repo))
    with contextlib.redirect_stdout(io.StringIO()):  # their init prints one line per network
        from models.cycle_gan_model import CycleGANModel  # type: ignore[import-not-found]

        model = CycleGANModel(opt)
    return model


def _by_position(source: torch.nn.Module, target: torch.nn.Module) -> None:
    src, dst = list(source.state_dict().items()), target.state_dict()
    if len(src) != len(dst):
        raise SystemExit(f"cannot map weights: {len(src)} official tensors, {len(dst)} gankit ones")
    mapped = {}
    for (k_src, v), (k_dst, w) in zip(src, dst.items()):
        if v.shape != w.shape:
            raise SystemExit(f"cannot map weights: {k_src} {list(v.shape)} vs {k_dst} {list(w.shape)}")
        mapped[k_dst] = v.detach().clone()
    target.load_state_dict(mapped)


def copy_official_weights(official, trainer: Trainer) -> None:
    """Official G_A: A→B is gankit's g_ab; official D_A judges domain B (gankit d_b)."""
    m = trainer.model
    m.g_ab.load_state_dict(map_official_state_dict(official.netG_A.state_dict(), m.g_ab))
    m.g_ba.load_state_dict(map_official_state_dict(official.netG_B.state_dict(), m.g_ba))
    _by_position(official.netD_A, m.d_b)
    _by_position(official.netD_B, m.d_a)


def make_gankit(size: int, batch_size: int, blocks: int, threads: int, workdir: str, overrides: dict) -> Trainer:
    config = CycleGANConfig(
        channels_a=3, channels_b=3, size=size, generator="resnet", blocks=blocks, discriminator="patch", d_layers=3,
        norm="instance", gan_loss="lsgan", lambda_cyc=10.0, lambda_id=0.5, pool_size=50, lr=2e-4, beta1=0.5,
        init="normal", init_gain=0.02, batch_size=batch_size, steps=100_000, device="cpu", threads=threads,
        amp="off",
    )  # fmt: skip
    config = dataclasses.replace(config, **overrides).validate()
    return Trainer(config)


def official_step(model, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    model.real_A, model.real_B = a, b
    model.optimize_parameters()
    return {
        "G_total": float(model.loss_G.detach()), "D": float(model.loss_D_A.detach() + model.loss_D_B.detach()),
        "cycle": float(model.loss_cycle_A.detach() + model.loss_cycle_B.detach()) / 10.0,
    }  # fmt: skip


def gankit_step(trainer: Trainer, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    t = trainer.train_step(a, b)
    t = {k: v.detach() for k, v in t.items()}
    return {"G_total": float(t["G_total"]), "D": float(t["D_a"]) + float(t["D_b"]),
            "cycle": float(t["cycle_a"]) + float(t["cycle_b"])}  # fmt: skip


LOSS_KEYS = ("G_total", "D", "cycle")


def relative_difference(reference: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    """|reference − other| / |reference| for each of :data:`LOSS_KEYS`."""
    return {k: abs(reference[k] - other[k]) / max(abs(reference[k]), 1e-12) for k in LOSS_KEYS}


def counted_flops(fn) -> dict[str, float]:
    with FlopCounterMode(display=False) as counter:
        fn()
    ops = counter.get_flop_counts().get("Global", {})
    conv = sum(v for k, v in ops.items() if "conv" in str(k))
    return {"tflop": counter.get_total_flops() / 1e12, "conv_tflop": conv / 1e12}


def run_size(args, size: int, overrides: dict) -> dict[str, Any]:
    torch._dynamo.reset()  # else a second size recompiles with dynamic shapes (slower kernels)
    torch.manual_seed(args.seed)
    batches = [
        (torch.rand(args.batch_size, 3, size, size) * 2 - 1, torch.rand(args.batch_size, 3, size, size) * 2 - 1)
        for _ in range(4)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(args.seed)
        official = load_official_model(Path(args.official_repo), official_options(size, args.batch_size,
                                                                                args.blocks, tmp))  # fmt: skip
        trainer = make_gankit(size, args.batch_size, args.blocks, args.threads, tmp, overrides)
        tuner = trainer.model.conv_tuner
        torch.set_num_threads(args.threads)
        if not args.own_init:
            copy_official_weights(official, trainer)
        runners = {"official": lambda a, b: official_step(official, a, b),
                   "gankit": lambda a, b: gankit_step(trainer, a, b)}  # fmt: skip
        losses: dict[str, list[dict[str, float]]] = {"official": [], "gankit": []}
        times: dict[str, list[float]] = {"official": [], "gankit": []}
        cpu: dict[str, list[float]] = {"official": [], "gankit": []}  # process CPU seconds, all threads
        flops = {}
        order = ["official", "gankit"]
        last: dict[str, float] = {}
        warm: dict[int, dict[str, float]] = {}
        for it in range(args.warmup + args.iters):
            step = it
            a, b = batches[step % len(batches)]
            for name in order if it % 2 == 0 else order[::-1]:
                t0, c0 = time.perf_counter(), time.process_time()
                if step == 0:  # the first step of each is counted, not timed (gankit's eagerly: same ops)
                    with_losses = {}
                    with trainer.model.eager_passes() if name == "gankit" else contextlib.nullcontext():
                        flops[name] = counted_flops(lambda: with_losses.update(runners[name](a, b)))  # noqa: B023
                    out = with_losses
                else:
                    out = runners[name](a, b)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                last[name] = dt
                losses[name].append(out)
                if it >= args.warmup:
                    times[name].append(dt)
                    cpu[name].append(dc)
            if it < args.warmup:
                warm[it] = dict(last)
                print(f"  {size}px warm-up {it + 1}/{args.warmup}: official {last['official']:.3f}s "
                      f"gankit {last['gankit']:.3f}s (includes any compilation)", flush=True)  # fmt: skip
            else:
                print(f"  {size}px iter {it - args.warmup + 1}/{args.iters}: official {times['official'][-1]:.3f}s "
                      f"gankit {times['gankit'][-1]:.3f}s", flush=True)  # fmt: skip
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    same_fakes = min(len(losses["official"]), 50)  # until the pools are full both see the same fakes
    diffs = [relative_difference(o, g) for o, g in zip(losses["official"][:same_fakes], losses["gankit"][:same_fakes])]
    rel = {key: max(d[key] for d in diffs) for key in LOSS_KEYS}
    per_step = [d["G_total"] for d in diffs]
    return {
        "size": size, "batch_size": args.batch_size, "blocks": args.blocks, "threads": args.threads,
        "iters": args.iters, "warmup": args.warmup, "gankit_overrides": overrides,
        "official_s": med["official"], "gankit_s": med["gankit"], "ratio": med["official"] / med["gankit"],
        "official_cpu_s": med_cpu["official"], "gankit_cpu_s": med_cpu["gankit"],
        "cpu_ratio": med_cpu["official"] / med_cpu["gankit"],
        "warmup_s": list(warm.values()),
        "official_times": times["official"], "gankit_times": times["gankit"],
        "official_cpu_times": cpu["official"], "gankit_cpu_times": cpu["gankit"],
        "official_flops": flops["official"], "gankit_flops": flops["gankit"],
        "same_init": not args.own_init, "loss_max_rel_diff": rel if not args.own_init else None,
        "conv_algorithms": tuner.summary() if tuner is not None else None,
        "g_loss_rel_diff_per_step": per_step if not args.own_init else None,
        "losses_last": {k: v[-1] for k, v in losses.items()},
    }  # fmt: skip


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.replace("-", "_")
        if not sep or key not in {f.name for f in dataclasses.fields(CycleGANConfig)}:
            raise SystemExit(f"--gankit expects FIELD=VALUE with a CycleGANConfig field, got {item!r}")
        out[key] = coerce(CycleGANConfig, key, value, "--gankit")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official-repo", required=True, help="checkout of junyanz/pytorch-CycleGAN-and-pix2pix")
    p.add_argument("--size", type=int, nargs="+", default=[128])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=8, help="timed iterations of each")
    p.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed iterations of each (the first is FLOP-counted; with compile=true use ≥ 2)",
    )
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--blocks", type=int, default=9, choices=(6, 9))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--own-init", action="store_true", help="keep gankit's own initial weights")
    p.add_argument("--gankit", action="append", default=[], metavar="FIELD=VALUE", help="gankit config override")
    p.add_argument("--out", default=str(Path(__file__).with_name("results-side-by-side.json")))
    args = p.parse_args()
    if args.warmup < 1:
        raise SystemExit("--warmup must be ≥ 1 (the first iteration is FLOP-counted, not timed)")
    overrides = parse_overrides(args.gankit)
    rows = [run_size(args, size, overrides) for size in args.size]
    print(f"\n{'size':>5} {'official s/it':>14} {'gankit s/it':>12} {'ratio':>7} {'CPU-time ratio':>15} "
          f"{'conv TFLOP off/gk':>18} "
          f"{'loss max rel diff (G, D)':>25}")  # fmt: skip
    for r in rows:
        conv = f"{r['official_flops']['conv_tflop']:.3f}/{r['gankit_flops']['conv_tflop']:.3f}"
        diff = (f"{r['loss_max_rel_diff']['G_total']:.1e}, {r['loss_max_rel_diff']['D']:.1e}"
                if r["loss_max_rel_diff"] else "n/a (own init)")  # fmt: skip
        print(f"{r['size']:>5} {r['official_s']:>14.3f} {r['gankit_s']:>12.3f} {r['ratio']:>6.3f}x "
              f"{r['cpu_ratio']:>14.3f}x {conv:>18} "
              f"{diff:>25}")  # fmt: skip
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "command": " ".join(sys.argv),
            **{k: os.environ.get(k) for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}}  # fmt: skip
    out = Path(args.out)
    atomic_write_text(out, json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
