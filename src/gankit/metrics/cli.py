"""The ``gankit eval`` command: ``add_eval_arguments(parser)`` and ``run_eval(args) -> int``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gankit.errors import ConfigError
from gankit.metrics.classifier import ADAPTATION_FITS, ClassifierConfig
from gankit.runtime import resolve_device


def add_eval_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.description = (
        "Score a translation model (CycleGAN, CUT, …) on a test split in every direction it translates "
        "(`gankit eval runs/a2o --dataset apple2orange "
        "--out eval/a2o`), or any two folders of images (`gankit eval --real DIR --fake DIR --out eval/x`). "
        "Writes report.json and report.html and prints the metrics table."
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="run folder, model.safetensors or checkpoint")
    p.add_argument("--dataset", help="recipe or folder with trainA/trainB/testA/testB (test split scored)")
    p.add_argument("--data-root", default=None, help="data folder for recipes (default $GANKIT_DATA)")
    p.add_argument("--test-a", metavar="DIR", help="folder of domain-A test images (instead of --dataset)")
    p.add_argument("--test-b", metavar="DIR", help="folder of domain-B test images (instead of --dataset)")
    p.add_argument("--train-a", metavar="DIR", help="with --test-a/--test-b: domain-A train images (classifier)")
    p.add_argument("--train-b", metavar="DIR", help="with --test-a/--test-b: domain-B train images (classifier)")
    p.add_argument("--real", metavar="DIR", help="folder mode: real images")
    p.add_argument("--fake", metavar="DIR", help="folder mode: generated images")
    p.add_argument(
        "--inception-weights",
        metavar="FILE",
        help="TorchScript Inception feature extractor (.pt), or 'auto' for the one gankit[inception] installs",
    )
    p.add_argument("--out", default=None,
                   help="output folder for report.json / report.html (default with MODEL: RUN/eval/, where `gankit "
                   "serve` shows it; required with --real/--fake)")  # fmt: skip
    p.add_argument("--size", type=int, default=None, help="evaluation image size (default: the model's size)")
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="score at most N test images per domain")
    p.add_argument(
        "--adaptation-images",
        type=int,
        default=None,
        metavar="N",
        help="digit runs: translate N source train images for adaptation accuracy (default: all)",
    )
    p.add_argument(
        "--adaptation-fits",
        type=int,
        default=ADAPTATION_FITS,
        metavar="N",
        help="digit runs: average each adaptation, source-only and oracle accuracy over N classifiers of "
        "consecutive seeds and report their spread as *_std (default %(default)s; one classifier's seed moves "
        "the figure by about a point)",
    )
    p.add_argument(
        "--feature-adaptation",
        action="store_true",
        help="digit runs: also report feature_adaptation_accuracy_* (the adaptation classifier's features aligned "
        "to the unlabelled target train split, CyCADA's feature level) and feature_only_accuracy_* (the same "
        "on the untranslated source)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, … or auto")
    p.add_argument(
        "--classifier-size",
        type=int,
        default=None,
        help=f"image size of the domain classifier (default: the data set's, {ClassifierConfig.image_size} for most, "
        "64 for demo)",
    )
    p.add_argument(
        "--classifier-steps",
        type=int,
        default=ClassifierConfig.steps,
        help="training steps of the domain classifier (default %(default)s)",
    )
    p.add_argument("--cache-dir", default=None, help="classifier cache (default $GANKIT_CACHE or ~/.cache/gankit)")
    return p


def run_folder(model: str | Path) -> Path:
    """The run folder of a run folder, of its model.safetensors, or of one of its checkpoints."""
    path = Path(model)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def default_out(model: str | Path) -> Path:
    """``RUN/eval``: the report lies with the run, where ``gankit serve RUN`` shows it."""
    return run_folder(model) / "eval"


def _log(msg: str) -> None:
    print(f"[eval] {msg}", file=sys.stderr, flush=True)


def run_eval(args: argparse.Namespace) -> int:
    from gankit.data.recipes import load_recipe
    from gankit.metrics.classifier import default_cache_dir, domain_classifier_config, train_domain_classifier
    from gankit.metrics.evaluate import evaluate_folders, format_table

    device = resolve_device(args.device)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    cfg = ClassifierConfig(steps=args.classifier_steps)
    if (args.classifier_size is not None and args.classifier_size < 16) or cfg.steps < 1:
        raise ConfigError("--classifier-size must be ≥ 16 and --classifier-steps ≥ 1")
    if args.max_images is not None and args.max_images < 2:
        raise ConfigError(f"--max-images {args.max_images}: expected a number ≥ 2")
    if args.adaptation_images is not None and args.adaptation_images < 20:
        raise ConfigError(f"--adaptation-images {args.adaptation_images}: expected a number ≥ 20")
    if args.adaptation_fits < 1:
        raise ConfigError(f"--adaptation-fits {args.adaptation_fits}: expected a number ≥ 1")
    if args.size is not None and args.size < 8:
        raise ConfigError(f"--size {args.size}: expected a number ≥ 8")
    if args.real or args.fake:
        if not (args.real and args.fake):
            raise ConfigError("folder mode needs both --real DIR and --fake DIR")
        if args.model:
            raise ConfigError("give either MODEL or --real/--fake, not both")
        if not args.out:
            raise ConfigError("--out DIR: folder mode needs an output folder for its report")
        classifier = None
        if args.dataset:
            train = load_recipe(args.dataset, args.data_root, "train")
            test = load_recipe(args.dataset, args.data_root, "test")
            cfg = domain_classifier_config(test, cfg, args.classifier_size)
            classifier = train_domain_classifier(
                train.source_a, train.source_b, test.source_a, test.source_b, test.name, cfg, cache_dir
            )
        metrics = evaluate_folders(args.real, args.fake, args.out, args.inception_weights, args.size,
                                   args.max_images, classifier, device, _log)  # fmt: skip
    else:
        if not args.model:
            raise ConfigError("give MODEL (with --dataset or --test-a/--test-b), or --real DIR --fake DIR")
        from gankit.metrics.registry import EvalRequest, evaluator_for
        from gankit.models.persist import load_model

        model = load_model(args.model, device)
        if not args.out:
            args.out = str(default_out(args.model))
        request = EvalRequest(
            out=Path(args.out), device=device, cache_dir=cache_dir, model_name=str(args.model),
            data_root=args.data_root, dataset=args.dataset, test_a=args.test_a, test_b=args.test_b,
            train_a=args.train_a, train_b=args.train_b, size=args.size, max_images=args.max_images,
            adaptation_images=args.adaptation_images, feature_adaptation=args.feature_adaptation,
            adaptation_fits=args.adaptation_fits,
            inception_weights=args.inception_weights, classifier_config=cfg,
            classifier_size=args.classifier_size, log=_log,
        )  # fmt: skip
        Path(args.out).mkdir(parents=True, exist_ok=True)
        metrics = evaluator_for(model)(model, request)
    print(format_table(metrics))
    print(f"\nreport: {Path(args.out) / 'report.html'}")
    return 0
