"""``gankit`` command line: thin commands that build a config and call the library."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from gankit.config import add_config_arguments, config_from_args, read_yaml_options
from gankit.errors import ConfigError, GankitError, Interrupted

DEMO_PRESET = dict(generator="unet", ngf=32, ndf=32, steps=2000, sample_every=200, checkpoint_every=500,
                   log_every=10, keep_checkpoints=1)  # fmt: skip
"""Small enough to finish in under 5 minutes on 2 CPU cores, large enough to visibly learn: seed 000's U-Net
carries the input's structure through its skips from the first steps, so the budget goes to the style, and
its instance-normalised input keeps it from settling on the identity, which a U-Net reading raw pixels did
(docs/results.md, "Demo")."""


NPROC_HELP = ("data-parallel training on N processes of this machine (starts torchrun for you; --batch-size is "
              "per process)")  # fmt: skip


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (or --resume a run)",
                       description="Train a model: `gankit train cyclegan --dataset apple2orange --out runs/a2o` "
                       "(`gankit models` lists the kinds); continue an interrupted run with "
                       "`gankit train --resume RUN_DIR`.")  # fmt: skip
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this folder from its newest checkpoint")
    p.add_argument("--steps", type=int, default=None, help="with --resume: new total number of steps")
    p.add_argument("--data-root", dest="resume_data_root", default=None,
                   help="with --resume: the run's data now lives in this folder")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, default=None, help=NPROC_HELP)
    models = p.add_subparsers(dest="model", metavar="MODEL")
    from gankit.models.registry import model_kinds

    for kind, cls in model_kinds().items():
        m = models.add_parser(kind, help=cls.summary or kind, description=cls.summary or None)
        m.add_argument("--config", metavar="YAML", help="options from a YAML file (flags override it)")
        m.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
        m.add_argument("--no-progress", action="store_true", dest="no_progress_c", help="no progress bar")
        m.add_argument("--nproc", type=int, default=None, dest="nproc_c", help=NPROC_HELP)
        add_config_arguments(m, cls.config_class)


def _add_sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw images from a trained generative model (cgan, sgan, progan…)",
                       description="Write a grid of new images from RUN: `gankit sample runs/cgan --label 7 --n 64`, "
                       "or a latent-space interpolation grid with --interpolate.")  # fmt: skip
    p.add_argument("model", metavar="RUN", help="run folder or its model.safetensors")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--label", type=int, default=None, help="class to draw (conditional models)")
    p.add_argument("--interpolate", action="store_true", help="latent-space interpolation grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output PNG (default RUN/samples/sample-….png)")
    p.add_argument("--device", default="auto")


def _add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a small CycleGAN on built-in sample photos (photo ↔ ink drawing)",
                       description="The main job on an embedded default: trains a small CycleGAN in a few "
                       "minutes on CPU to turn photos into ink drawings and back (photos that ship with scikit-image "
                       "and matplotlib; 24 crops of bands that training never sees show it at work), and writes "
                       "a run folder with checkpoints, sample grids, loss curves and index.html.")  # fmt: skip
    p.add_argument("--dataset", default="demo", help="recipe (default: bundled photos, photo ↔ ink drawing)")
    p.add_argument("--data-root", default=None, help="data folder for recipes other than demo")
    p.add_argument("--out", default=None, help="run folder (default runs/demo-DATASET)")
    p.add_argument("--steps", type=int, default=None, help=f"iterations (default {DEMO_PRESET['steps']})")
    p.add_argument("--size", type=int, default=None, help="crop size (default from the recipe, at most 64)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def _add_translate_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate images or folders with a trained model",
                       description="Translate files or folders of any size and mode. MODEL is a run folder, a "
                       "model.safetensors, a checkpoint, or with --official a junyanz latest_net_G_A.pth.")  # fmt: skip
    p.add_argument("model", metavar="MODEL")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--direction", default="a2b", help="a2b or b2a (what the model translates)")
    p.add_argument("--roundtrip", action="store_true", help="also write real | translated | reconstructed strips")
    p.add_argument("--official", action="store_true", help="MODEL is an official pytorch-CycleGAN G_A .pth")
    p.add_argument("--official-b", default=None, help="with --official: the G_B .pth (default: sibling *G_B*)")
    p.add_argument("--official-blocks", type=int, default=9, help="with --official: resnet blocks (6 or 9)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="translate in N x N pixel tiles, in memory bounded by the tile size; instance-norm "
                   "statistics stay those of the whole image, so there are no seams (0 = never tile; default: "
                   "tile when the one-piece pass would exceed --max-memory)")  # fmt: skip
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory a one-piece pass may use before tiling automatically, e.g. 4G or 800M "
                   "(default: half the available memory)")  # fmt: skip
    p.add_argument("--samples", type=int, default=None, metavar="K",
                   help="models trained with --latent-dim: write K translations of each input, INPUT_s0.png … "
                   "INPUT_s{K-1}.png, with K codes drawn from the prior (the same K for every input)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="with --samples: seed of the K codes (default 0)")
    p.add_argument("--like", default=None, metavar="REF_IMAGE",
                   help="models trained with --latent-dim: translate with the target-domain code the model's "
                   "encoder infers from the pair (input, REF_IMAGE), REF_IMAGE an example of the target domain; "
                   "writes INPUT_like_REF.png")  # fmt: skip


def _add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure training and inference speed on this machine",
                       description="Time CycleGAN iterations (`train`), generator inference (`infer`) or the "
                       "attainable conv rate (`conv`); prints a table, or JSON lines with --json.")  # fmt: skip
    p.add_argument("what", choices=("train", "infer", "conv"))
    p.add_argument("--model", nargs="+", default=["cyclegan"],
                   help="train: translation model kind(s), each in its default training configuration and, when "
                   "several models or sizes are asked for, each in its own process (e.g. --model fastcut cut "
                   "cyclegan)")  # fmt: skip
    p.add_argument("--size", type=int, nargs="+", default=None, help="image size(s) (train 128, infer 256)")
    p.add_argument("--generator", default=None, help="generator architecture (default: the model's)")
    p.add_argument("--blocks", type=int, default=None, help="residual blocks (default: the model's, 9)")
    p.add_argument("--ngf", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--iters", type=int, default=5, help="timed repetitions (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    p.add_argument("--amp", default="off", choices=("off", "bf16", "fp16", "auto"))
    p.add_argument("--compile", action="store_true", help="train: torch.compile the networks (compiles in warm-up)")
    from gankit.models.translation import CONV_ALGORITHMS

    p.add_argument("--conv-algorithms", default="tuned", choices=CONV_ALGORITHMS,
                   help="train: CPU convolution algorithms (see `gankit train --help`)")  # fmt: skip
    p.add_argument("--heap", default="training", choices=("training", "glibc"),
                   help="train: the allocator policy of `gankit train` (training: no mmap, freed memory kept; "
                   "glibc: its defaults, for comparison)")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--nproc", type=int, nargs="+", default=None,
                   help="train: data-parallel throughput of real training on apple2orange with N processes "
                   "(e.g. --nproc 1 2); --batch-size is per process")  # fmt: skip
    p.add_argument(
        "--data-root", default=None, help="with --nproc: data folder (default $GANKIT_DATA or ../shared/data)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a generator to ONNX or TorchScript (runs without gankit)",
                       description="Export one generator of MODEL (run folder, model.safetensors or checkpoint) "
                       "to a file taking (N, C, H, W) float32 in [-1, 1]; H and W must be multiples of the "
                       "generator's size_multiple (stored in the file's metadata).")  # fmt: skip
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--format", dest="fmt", choices=("onnx", "torchscript"), required=True)
    p.add_argument("--out", required=True, help="output file (.onnx or .pt)")
    p.add_argument("--direction", default="a2b", help="a2b or b2a (what the model translates)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--static", action="store_true", help="fix the input shape to 1 x C x size x size")
    p.add_argument("--no-check", action="store_true", help="skip comparing the exported file with PyTorch")


def _add_serve_parser(sub) -> None:
    from gankit.serve.options import DEFAULT_MAX_PIXELS, TOKEN_ENV, ServeOptions

    d = ServeOptions(runs=())
    p = sub.add_parser("serve", help="a web page and an HTTP API over trained models (pip install \"gankit[serve]\")",
                       description="Serve RUN folders (or model.safetensors / checkpoints) on a web page (upload an "
                       "image, see the translation and the round trip) and an HTTP API (POST /api/translate, GET "
                       "/api/models, GET /healthz). Binds 127.0.0.1 unless --host says otherwise; beyond loopback an "
                       "access token is required. See docs/serve.md.")  # fmt: skip
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder, model.safetensors or checkpoint (several: one "
                   "tab each)")  # fmt: skip
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=d.port, help="port (default %(default)s; 0: any free port)")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb,
                   help="largest upload in MB (default %(default)s)")  # fmt: skip
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="largest image in pixels, checked from its header before decoding; larger-than-memory "
                   "images below it are tiled (default %(default)s = 4096 x 4096)")  # fmt: skip
    p.add_argument("--queue-size", type=int, default=d.queue_size,
                   help="requests that may wait for a busy model, page and API together; more get 503 "
                   "(default %(default)s)")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help="requests computed at once per model (default %(default)s)")  # fmt: skip
    p.add_argument("--auth-token", default=None, metavar="TOKEN",
                   help=f"access token for the page and the API (default ${TOKEN_ENV}); required beyond "
                   "loopback")  # fmt: skip
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory one translation may use before it is tiled, e.g. 2G (default: half the available "
                   "memory, shared by the translations that may run at once)")  # fmt: skip
    p.add_argument("--examples", type=int, default=d.examples,
                   help="example images per direction from the run's data (default %(default)s)")  # fmt: skip
    p.add_argument("--device", default=d.device, help="cpu, cuda, cuda:N or auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gankit", description="Unpaired image-to-image translation (CycleGAN).")
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo_parser(sub)
    _add_train_parser(sub)
    _add_translate_parser(sub)
    _add_bench_parser(sub)
    _add_export_parser(sub)
    _add_sample_parser(sub)
    _add_serve_parser(sub)
    from gankit.metrics.cli import add_eval_arguments

    add_eval_arguments(
        sub.add_parser(
            "eval",
            help="measure translation quality (classifier FID/KID, success rate, cycle L1…)",
            description="Evaluate a model on a recipe's test split or folders, or score two folders "
            "(--real/--fake). Writes report.json and report.html.",
        )
    )
    sub.add_parser("recipes", help="list the built-in datasets")
    sub.add_parser("models", help="list the model kinds (built-in and plugins)")
    return parser


def cmd_train(args) -> int:
    from gankit.models.registry import model_class
    from gankit.training.loop import resume, train

    progress = not (args.no_progress or getattr(args, "no_progress_c", False))
    nproc = getattr(args, "nproc_c", None) or args.nproc
    if nproc is not None:
        if nproc < 1:
            raise ConfigError(f"--nproc {nproc}: expected a number ≥ 1")
        if nproc > 1:
            from gankit.distributed import run_torchrun

            return run_torchrun(nproc, _without_nproc(args.argv))
    if args.resume:
        if args.model:
            raise ConfigError("--resume RUN_DIR continues a run with its saved options; give no MODEL with it")
        if args.steps is not None and args.steps < 1:
            raise ConfigError(f"--steps {args.steps}: expected a number ≥ 1")
        resume(args.resume, steps=args.steps, data_root=args.resume_data_root, progress=progress)
        return 0
    if not args.model:
        raise ConfigError("usage: gankit train MODEL [options] (see `gankit models`) | gankit train --resume RUN_DIR")
    cls = model_class(args.model).config_class
    base = None
    if args.config:
        base = read_yaml_options(args.config)
        kind = base.pop("kind", base.pop("model", args.model))
        if kind != args.model:
            raise ConfigError(f"{args.config}: a {kind} config, not {args.model}")
    config = config_from_args(cls, args, with_recipe_options(cls, args, base), source=args.config or "config")
    if args.dry_run:
        import yaml

        print(yaml.safe_dump({"kind": args.model, **config.to_dict()}, sort_keys=False))
        return 0
    train(config, args.model, progress=progress)
    return 0


def with_recipe_options(cls: type, args, base: dict | None) -> dict:
    """YAML options ``base`` over the defaults of the run's recipe (e.g. digit-sized networks for
    mnist-usps), for the fields ``cls`` has; flags are applied over both by the caller."""
    import dataclasses

    from gankit.data.recipes import recipe_options

    base = dict(base or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "dataset" not in fields or getattr(args, "domain_a", None) or base.get("domain_a"):
        return base
    dataset = getattr(args, "dataset", None) or base.get("dataset") or fields["dataset"].default
    return {k: v for k, v in recipe_options(dataset).items() if k in fields} | base


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def cmd_sample(args) -> int:
    import torch

    from gankit.io import save_image_atomic
    from gankit.models.persist import load_model

    if args.n < 1:
        raise ConfigError(f"--n {args.n}: expected a number ≥ 1")
    model = load_model(args.model, device=args.device)
    with torch.no_grad():
        grid = model.sample(n=args.n, label=args.label, interpolate=args.interpolate, seed=args.seed)
    run = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
    what = "interpolation" if args.interpolate else (f"label{args.label}" if args.label is not None else "random")
    out = Path(args.out) if args.out else run / "samples" / f"sample-{what}-seed{args.seed}.png"
    save_image_atomic(grid, out)
    print(f"wrote {out}")
    return 0


def demo_config(dataset: str, data_root: str | None, out: str | None, steps: int | None, size: int | None,
                device: str = "auto"):  # fmt: skip
    from gankit.data.loading import domain_pair
    from gankit.models.cyclegan import CycleGANConfig

    base = CycleGANConfig(dataset=dataset, data_root=data_root, device=device)
    pair = domain_pair(base, "train")
    size = size or min(64, pair.default_crop_size)
    preset = DEMO_PRESET | {"steps": steps or DEMO_PRESET["steps"]}
    return dataclasses.replace(base, size=size, out=out or f"runs/demo-{dataset}", **preset).validate()


def cmd_demo(args) -> int:
    import shlex

    from gankit.io import list_checkpoints
    from gankit.training.loop import train

    config = demo_config(args.dataset, args.data_root, args.out, args.steps, args.size, args.device)
    run = Path(config.out)
    if list_checkpoints(run / "checkpoints"):
        # a demo is disposable: start it afresh in a numbered folder rather than refusing
        n = 2
        while list_checkpoints(Path(f"{config.out}-{n}") / "checkpoints"):
            n += 1
        config = dataclasses.replace(config, out=f"{config.out}-{n}")
    print(f"gankit demo: training CycleGAN on '{config.dataset}' for {config.steps} steps at {config.size}px")
    train(config, progress=not args.no_progress)
    run_arg = shlex.quote(config.out)
    print(f"score it on the held-out images: gankit eval {run_arg} --out {shlex.quote(config.out + '/eval')}")
    print(f"serve its model: gankit serve {run_arg}")
    return 0


def cmd_translate(args) -> int:
    from gankit.api import CycleGAN
    from gankit.inference.tiled import parse_bytes
    from gankit.inference.translate import translate_paths
    from gankit.runtime import resolve_device

    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples {args.samples}: expected a number ≥ 1")
    if args.seed is not None and args.samples is None:
        raise ConfigError(f"--seed {args.seed}: it seeds the codes of --samples K; give --samples too")
    device = resolve_device(args.device)

    if args.official:
        path_a = Path(args.model)
        path_b = Path(args.official_b) if args.official_b else path_a.with_name(path_a.name.replace("G_A", "G_B"))
        if path_b == path_a or not path_b.is_file():
            raise GankitError(f"{path_b}: G_B weights not found; pass --official-b FILE")
        model = CycleGAN.load_official(path_a, path_b, device=device, blocks=args.official_blocks)
    else:
        model = load_translator(args.model, device)
    model.generator(args.direction)  # an unknown or missing direction is a usage error before any work
    max_memory = parse_bytes(args.max_memory) if args.max_memory is not None else None
    if args.tile is not None and args.tile < 0:
        raise ConfigError(f"--tile {args.tile}: expected 0 (never tile) or a positive number of pixels")
    result = translate_paths(model, args.inputs, args.out, direction=args.direction, roundtrip=args.roundtrip,
                             tile=args.tile, max_memory=max_memory, samples=args.samples, seed=args.seed or 0,
                             like=args.like)  # fmt: skip
    for path, tile in result.tiled:
        how = "as asked" if args.tile else "the one-piece pass would exceed the memory budget"
        print(f"tiled {path} in {tile} px tiles ({how}; whole-image statistics, no seams)")
    print(f"wrote {len(result.written)} image(s) to {args.out}")
    for _, reason in result.failures:
        print(f"error: {reason}", file=sys.stderr)
    return 0 if result.ok else 1


def cmd_bench(args) -> int:
    import itertools
    import json

    import torch

    from gankit.bench import attainable_conv_gflops, bench_infer, bench_train, bench_train_in_own_process, format_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    if args.nproc and args.what != "train":
        raise ConfigError("--nproc: only `gankit bench train` runs on several processes")
    for size in args.size or [128 if args.what == "train" else 256]:
        if args.what == "train" and args.nproc:
            from gankit.bench import bench_train_ranks
            from gankit.data.recipes import resolve_data_root

            for model, n in itertools.product(args.model, args.nproc):
                if n < 1:
                    raise ConfigError(f"--nproc {n}: expected a number ≥ 1")
                root = str(resolve_data_root(args.data_root))
                row = bench_train_ranks(nproc=n, model=model, data_root=root, size=size,
                                        blocks=args.blocks or 9, ngf=args.ngf, batch_size=args.batch_size,
                                        iters=args.iters, warmup=args.warmup,
                                        conv_algorithms=args.conv_algorithms)  # fmt: skip
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
            continue
        if args.what == "train":
            for model in args.model:
                if len(args.model) * len(args.size or [0]) > 1:
                    row = bench_train_in_own_process(model, size, _bench_train_flags(args))
                else:
                    row = bench_train(model=model, size=size, generator=args.generator, blocks=args.blocks,
                                      ngf=args.ngf, batch_size=args.batch_size, iters=args.iters,
                                      warmup=args.warmup, device=args.device, amp=args.amp,
                                      compile=args.compile, conv_algorithms=args.conv_algorithms,
                                      heap=args.heap)  # fmt: skip
                rows.append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
            continue
        if args.what == "infer":
            row = bench_infer(size=size, generator=args.generator or "resnet", blocks=args.blocks or 9,
                              iters=args.iters, warmup=args.warmup, device=args.device)  # fmt: skip
        else:
            from gankit.runtime import resolve_device

            dev = resolve_device(args.device)
            row = {"bench": "conv", "gflops": attainable_conv_gflops(dev),
                   "gflops_channels_last": attainable_conv_gflops(dev, channels_last=True),
                   "threads": torch.get_num_threads(), "device": str(dev)}  # fmt: skip
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(format_rows(rows))
    return 0


def _bench_train_flags(args) -> list[str]:
    """The ``gankit bench train`` flags of ``args`` that a child process measuring one model needs."""
    flags = ["--batch-size", str(args.batch_size), "--iters", str(args.iters), "--warmup", str(args.warmup),
             "--amp", args.amp, "--conv-algorithms", args.conv_algorithms, "--device", args.device,
             "--heap", args.heap]  # fmt: skip
    for name in ("generator", "blocks", "ngf", "threads"):
        if getattr(args, name) is not None:
            flags += [f"--{name}", str(getattr(args, name))]
    return flags + (["--compile"] if args.compile else [])


def cmd_export(args) -> int:
    from gankit.inference.export import check_export, export_generator

    model = load_translator(args.model, "cpu")
    model.generator(args.direction)
    path = export_generator(model, args.direction, args.fmt, Path(args.out), opset=args.opset,
                            dynamic=not args.static)  # fmt: skip
    print(f"wrote {path}")
    if not args.no_check:
        diff = check_export(model, args.direction, path)
        print(f"max abs difference to PyTorch: {diff:.2e}")
        if diff > 1e-3:
            print("gankit: error: exported model differs from PyTorch", file=sys.stderr)
            return 1
    return 0


def cmd_serve(args) -> int:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        print('gankit serve needs the serve extra: pip install "gankit[serve]"', file=sys.stderr)
        return 1
    from gankit.inference.tiled import parse_bytes
    from gankit.serve.app import serve
    from gankit.serve.options import ServeOptions

    try:
        max_memory = parse_bytes(args.max_memory) if args.max_memory is not None else None
    except GankitError as e:
        raise ConfigError(f"--max-memory: {e}") from None
    options = ServeOptions(runs=tuple(args.runs), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
                           max_pixels=args.max_pixels, queue_size=args.queue_size, concurrency=args.concurrency,
                           auth_token=args.auth_token, device=args.device, max_memory=max_memory,
                           examples=args.examples)  # fmt: skip
    return serve(options)


def load_translator(path: str, device):
    """A trained model that translates images (any registered kind with the Translator capability)."""
    from gankit.models.base import Translator
    from gankit.models.persist import load_model

    model = load_model(path, device)
    if not isinstance(model, Translator):
        raise ConfigError(f"{path}: a {model.kind} model does not translate images; try `gankit sample {path}`")
    return model


def cmd_models(_args) -> int:
    from gankit.models.base import Translator
    from gankit.models.registry import model_kinds

    for kind, cls in model_kinds().items():
        what = "translator" if issubclass(cls, Translator) else "generator"
        print(f"{kind:12s} {what:10s} {cls.summary}")
    return 0


def cmd_recipes(_args) -> int:
    from gankit.data.recipes import list_recipes

    for name, description in list_recipes():
        print(f"{name:24s} {description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except GankitError as e:  # e.g. a plugin that does not import
        print(f"gankit: error: {e}", file=sys.stderr)
        return 1
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.version:
        from gankit.version import VERSION as __version__

        print(__version__)
        return 0
    from gankit.metrics.cli import run_eval

    commands = {"train": cmd_train, "demo": cmd_demo, "translate": cmd_translate, "eval": run_eval,
                "bench": cmd_bench, "export": cmd_export, "recipes": cmd_recipes, "sample": cmd_sample,
                "models": cmd_models, "serve": cmd_serve}  # fmt: skip
    if args.command not in commands:
        parser.print_help()
        return 2
    try:
        return commands[args.command](args)
    except ConfigError as e:
        print(f"gankit: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"gankit: {e}", file=sys.stderr)
        return e.exit_status
    except GankitError as e:
        print(f"gankit: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gankit: interrupted (checkpoints written so far are intact)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
