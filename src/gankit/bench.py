"""Speed measurements behind ``gankit bench`` and ``benchmarks/``: one CycleGAN training iteration,
generator inference, and the attainable convolution rate of this machine (the yardstick that tells
how close to the hardware limit a step runs). Figures are medians over timed repetitions after
warm-up; CUDA timings synchronize."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from gankit.errors import ConfigError, GankitError
from gankit.inference.translate import translate_tensor
from gankit.models.cyclegan import CycleGANNetworks, cyclegan_config
from gankit.runtime import HEAP, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], iters: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds per call for ``iters`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def attainable_conv_gflops(device: torch.device, channels_last: bool = False, iters: int = 5) -> float:
    """Forward rate of a large 3x3 conv (256→256 channels, 64x64, batch 8): what this machine's conv
    kernels reach at best, the ceiling a CycleGAN step (83 % convolutions) is compared with."""
    x = torch.randn(8, 256, 64, 64, device=device)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device)
    if channels_last:
        x, conv = x.to(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    flops = 2 * 8 * 256 * 256 * 9 * 64 * 64
    with torch.no_grad():
        t = statistics.median(time_call(lambda: conv(x), iters, 2, device))
    return flops / t / 1e9


class TrainingSteps:
    """A translation model's training step on explicit batches (the one loop's unit of work, without
    its data, logs and checkpoints): what the benchmarks time and compare with the official code."""

    def __init__(self, config, kind: str = "cyclegan"):
        from gankit.models.persist import build_model

        self.run = build_model(config, kind, config.device)
        if config.compile:
            self.run.compile_for_training()
        self.run.train()
        self.step = 0

    @property
    def model(self):
        """CycleGAN's networks module (what the side-by-side benchmarks read weights from)."""
        return self.run.nets

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        self.step += 1
        terms = self.run.train_step([{"A": real_a, "B": real_b}], self.step)
        self.run.precision.update()
        return terms


CycleGANSteps = TrainingSteps  # the name the official side-by-side benchmarks import


def translation_config(model: str, **fields: Any):
    """The default training configuration of the translation model ``model`` (what its quality runs
    use), with ``fields`` set, for 3-channel images."""
    from gankit.models.registry import model_class

    config_class = model_class(model).config_class
    values = {"channels_a": 3, "channels_b": 3, **{k: v for k, v in fields.items() if v is not None}}
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        raise ConfigError(f"--model {model}: not a translation model with {', '.join(unknown)} options")
    return dataclasses.replace(config_class(), **values).validate()


def bench_train(
    *, model: str = "cyclegan", size: int = 128, generator: str | None = None, blocks: int | None = None,
    batch_size: int = 1, iters: int = 5, warmup: int = 2, device: str = "auto", amp: str = "off",
    ngf: int | None = None, compile: bool = False, conv_algorithms: str = "tuned", heap: str = "training",
) -> dict[str, Any]:  # fmt: skip
    """One full training iteration of a translation model (its discriminator and generator updates)
    in its default configuration (CycleGAN: LSGAN, identity 0.5, pool 50; CUT/FastCUT: PatchNCE over
    five layers, antialiased sampling) on random 3-channel images; ``generator``/``blocks``/``ngf``
    override the defaults. With ``compile`` the warm-up includes torch.compile's compilation (give it
    ≥ 1 warm-up iteration); the tuned convolutions time their candidates during the first (untimed)
    iteration. FLOPs are counted on one more iteration through PyTorch's own convolutions. ``heap``
    "training" times the steps under the allocator policy of ``gankit train``
    (:meth:`~gankit.runtime.HeapPolicy.for_training`), "glibc" under glibc's defaults."""
    dev = resolve_device(device)
    config = translation_config(model, size=size, generator=generator, blocks=blocks, ngf=ngf,
                                batch_size=batch_size, device=str(dev), amp=amp, compile=compile,
                                conv_algorithms=conv_algorithms)  # fmt: skip
    steps = TrainingSteps(config, model)
    run = steps.run
    a = torch.randn(batch_size, 3, size, size, device=dev)
    b = torch.randn(batch_size, 3, size, size, device=dev)
    if heap not in ("training", "glibc"):
        raise ConfigError(f"--heap {heap}: expected training or glibc")
    if warmup > 0:  # the first step tunes the convolutions, outside the kept heap (as in gankit train)
        steps.train_step(a, b)
    with HEAP.for_training() if heap == "training" else contextlib.nullcontext():
        times = time_call(lambda: steps.train_step(a, b), iters, max(warmup - 1, 0), dev)
        peak = peak_rss_mb()
        with run.reference_passes(), FlopCounterMode(display=False) as counter:
            steps.train_step(a, b)
    flops = counter.get_total_flops()
    s = statistics.median(times)
    tuner = getattr(run, "conv_tuner", None)
    return {
        "bench": "train", "model": model, "size": size, "generator": config.generator, "blocks": config.blocks,
        "batch_size": batch_size, "amp": amp, "dtype": str(run.precision.dtype or torch.float32).removeprefix("torch."),
        "memory_format": "NCHW (contiguous)", "compile": compile, "conv_algorithms": conv_algorithms, "heap": heap,
        "conv_choices": tuner.summary() if tuner else [],
        "s_per_iter": s, "s_min": min(times), "s_max": max(times), "iters_per_s": 1 / s,
        "images_per_s": 2 * batch_size / s, "tflop_per_iter": flops / 1e12, "gflops": flops / s / 1e9,
        "peak_rss_mb": peak, "pid": os.getpid(), **_environment(dev),
    }  # fmt: skip


def bench_train_in_own_process(model: str, size: int, flags: list[str]) -> dict[str, Any]:
    """:func:`bench_train` of one model and size in a fresh Python process, so that its peak RSS (a
    per-process high-water mark) is its own; ``flags`` are further ``gankit bench train`` flags."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "gankit", "bench", "train", "--model", model, "--size", str(size), "--json", *flags]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise GankitError(f"bench train --model {model} --size {size} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_infer(
    *, size: int = 256, generator: str = "resnet", blocks: int = 9, iters: int = 5, warmup: int = 1,
    device: str = "auto",
) -> dict[str, Any]:  # fmt: skip
    """Milliseconds to translate one ``size``x``size`` image with a generator of official width."""
    dev = resolve_device(device)
    config = cyclegan_config(channels_a=3, channels_b=3, size=256, generator=generator, blocks=blocks)
    g = CycleGANNetworks(config, with_discriminators=False).g_ab.to(dev).eval()
    x = torch.rand(1, 3, size, size, device=dev) * 2 - 1
    times = time_call(lambda: translate_tensor(g, x), iters, warmup, dev)
    s = statistics.median(times)
    return {"bench": "infer", "size": size, "generator": generator, "blocks": blocks, "ms_per_image": 1000 * s,
            "peak_rss_mb": peak_rss_mb(), **_environment(dev)}  # fmt: skip


def bench_train_ranks(
    *, nproc: int, data_root: str, model: str = "cyclegan", size: int = 128, blocks: int = 9, ngf: int | None = None,
    batch_size: int = 1, iters: int = 5, warmup: int = 2, conv_algorithms: str = "tuned",
) -> dict[str, Any]:  # fmt: skip
    """Throughput of real data-parallel training: ``gankit train MODEL`` on apple2orange with
    ``--nproc N`` (N = 1: one process with every core), run to ``warmup`` and to ``warmup + iters``
    steps; the difference of the two runs' loop times is the steady-state time of ``iters`` steps
    (start-up, data loading, first-step tuning and all-reduces of the warm-up cancel out)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    args = ["train", model, "--dataset", "apple2orange", "--data-root", data_root, "--size", str(size),
            "--blocks", str(blocks), "--batch-size", str(batch_size), "--conv-algorithms", conv_algorithms,
            "--no-progress", "--sample-every", "1000000", "--checkpoint-every", "1000000", "--checkpoint-minutes",
            "0", "--log-every", "1000000", "--workers", "0"]  # fmt: skip
    if model == "cyclegan":
        args += ["--pool-size", "0"]
    if ngf:
        args += ["--ngf", str(ngf)]
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for steps in (warmup, warmup + iters):
            out = os.path.join(tmp, f"run{steps}")
            cmd = [sys.executable, "-m", "gankit", *args, "--steps", str(steps), "--out", out]
            if nproc > 1:
                cmd += ["--nproc", str(nproc)]
            subprocess.run(cmd, check=True, capture_output=True)
            with open(os.path.join(out, "summary.json")) as f:
                seconds.append(json.load(f)["seconds"])
    per_step = max(seconds[1] - seconds[0], 1e-9) / iters
    return {"bench": "train-ranks", "model": model, "ranks": nproc, "size": size, "blocks": blocks,
            "batch_size": batch_size, "s_per_iter": round(per_step, 4),
            "images_per_s": round(batch_size * nproc / per_step, 3),
            "threads": max(1, (os.cpu_count() or 1) // nproc), "device": "cpu"}  # fmt: skip


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of benchmark rows (the JSON keeps every field)."""
    known = ("bench", "model", "ranks", "size", "generator", "blocks", "batch_size", "s_per_iter", "images_per_s",
             "tflop_per_iter", "gflops", "ms_per_image", "peak_rss_mb", "threads", "device")  # fmt: skip
    cols = [c for c in known if any(c in r for r in rows)]

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    table = [cols] + [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in table)
