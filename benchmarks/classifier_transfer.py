"""How well the semantic loss's task classifier reads the other domain: the LeNet of ``--semantic-loss``
trained on one domain's labels only, plain and with a source-side augmentation, scored on its own
domain's and the other domain's held-out digits (the other domain's labels are read here to measure,
never to train)::

    python benchmarks/classifier_transfer.py --dataset mnist-mnistm   # plain vs --semantic-recolour
    python benchmarks/classifier_transfer.py --dataset mnist-usps     # plain vs --semantic-reshape

On mnist-mnistm the classifier is trained on MNIST and a plain (gray) one reads MNIST-M through its
luma (as the loss feeds it colour translations), a recoloured one reads the colour images. On
mnist-usps a classifier is trained on each domain and read on the other. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from gankit.data.recipes import load_recipe
from gankit.models.semantic import SEED_OFFSET, accuracy, match_channels, source_tensor, to_unit, train_task_classifier

REPO = Path(__file__).resolve().parents[1]
AUGMENTATION = {"mnist-mnistm": "recolour", "mnist-usps": "reshape"}
SOURCES = {"mnist-mnistm": ("a",), "mnist-usps": ("a", "b")}


def mean_std(values: list[float]) -> str:
    mean = f"{statistics.mean(values):.3f}"
    return f"{mean} ± {statistics.stdev(values):.3f}" if len(values) > 1 else mean


def with_channels(images: torch.Tensor, labels: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 digits with ``channels`` channels (colour read as luma by a gray classifier, gray repeated)."""
    if images.shape[1] != channels:
        images = ((match_channels(to_unit(images), channels) + 1) * 127.5).round().to(torch.uint8)
    return images, labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=tuple(AUGMENTATION), default="mnist-mnistm")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2000, help="classifier training steps (--semantic-steps)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None,
                   help="default: benchmarks/results-classifier-transfer-DATASET.json")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    augmentation = AUGMENTATION[args.dataset]
    train, test = load_recipe(args.dataset, args.data_root, "train"), load_recipe(args.dataset, args.data_root, "test")
    tests = {letter: source_tensor(getattr(test, f"source_{letter}"), 32) for letter in ("a", "b")}
    rows = []
    for augmented in (False, True):
        for letter in SOURCES[args.dataset]:
            other = "b" if letter == "a" else "a"
            for seed in args.seeds:
                start = time.process_time()
                model, _ = train_task_classifier(getattr(train, f"source_{letter}"), None, 1, 32,
                                                 seed=seed + SEED_OFFSET, steps=args.steps,
                                                 **{augmentation: augmented})  # fmt: skip
                row = {augmentation: augmented, "source": letter, "seed": seed,
                       "cpu_seconds": round(time.process_time() - start, 1),
                       "own_test": accuracy(model, *with_channels(*tests[letter], model.in_channels)),
                       "other_test": accuracy(model, *with_channels(*tests[other], model.in_channels))}  # fmt: skip
                rows.append(row)
                print(f"{augmentation}={augmented!s:5} trained on {letter.upper()}, seed {seed}: own "
                      f"{row['own_test']:.3f}  other {row['other_test']:.3f}  ({row['cpu_seconds']:.0f} CPU-s)",
                      flush=True)  # fmt: skip
    print(f"\n| {args.dataset} classifier | trained on | own held-out | other domain's held-out |\n|---|---|---|---|")
    for augmented in (False, True):
        for letter in SOURCES[args.dataset]:
            part = [r for r in rows if r[augmentation] == augmented and r["source"] == letter]
            own, other = mean_std([r["own_test"] for r in part]), mean_std([r["other_test"] for r in part])
            print(f"| {augmentation if augmented else 'plain'} | {letter.upper()} | {own} | {other} |")
    path = args.json or REPO / "benchmarks" / f"results-classifier-transfer-{args.dataset}.json"
    machine = platform.processor() or platform.machine()
    result = {"dataset": args.dataset, "steps": args.steps, "rows": rows, "machine": machine}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
