"""How well the semantic loss's task classifier reads the other domain: the LeNet of
``--semantic-loss`` trained on MNIST's labels only, plain and with ``--semantic-recolour``, scored on
MNIST's and MNIST-M's held-out digits (MNIST-M labels are read here to measure, never to train)::

    python benchmarks/recolour_transfer.py --data-root ../shared/data [--seeds 0 1 2] [--steps 2000]

A plain (gray) classifier reads MNIST-M through its luma (as the loss feeds it colour translations);
a recoloured one reads the colour images. Prints a table, writes JSON.
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


def mean_std(values: list[float]) -> str:
    mean = f"{statistics.mean(values):.3f}"
    return f"{mean} ± {statistics.stdev(values):.3f}" if len(values) > 1 else mean


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2000, help="classifier training steps (--semantic-steps)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-recolour-transfer.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train, test = (
        load_recipe("mnist-mnistm", args.data_root, "train"),
        load_recipe("mnist-mnistm", args.data_root, "test"),
    )
    mnist, mnist_labels = source_tensor(test.source_a, 32)
    mnistm, mnistm_labels = source_tensor(test.source_b, 32)
    mnistm_luma = ((match_channels(to_unit(mnistm), 1) + 1) * 127.5).round().to(torch.uint8)
    rows = []
    for recolour in (False, True):
        for seed in args.seeds:
            start = time.process_time()
            model, _ = train_task_classifier(train.source_a, None, 1, 32, seed=seed + SEED_OFFSET,
                                             steps=args.steps, recolour=recolour)  # fmt: skip
            row = {"recolour": recolour, "seed": seed, "cpu_seconds": round(time.process_time() - start, 1),
                   "mnist_test": accuracy(model, mnist.expand(-1, model.in_channels, -1, -1), mnist_labels),
                   "mnistm_test": accuracy(model, mnistm if recolour else mnistm_luma, mnistm_labels)}  # fmt: skip
            rows.append(row)
            print(f"recolour={recolour!s:5} seed {seed}: MNIST {row['mnist_test']:.3f}  "
                  f"MNIST-M {row['mnistm_test']:.3f}  ({row['cpu_seconds']:.0f} CPU-s)", flush=True)  # fmt: skip
    print("\n| classifier | MNIST test | MNIST-M test |\n|---|---|---|")
    for recolour, name in ((False, "plain (MNIST-M read as luma)"), (True, "recoloured")):
        part = [r for r in rows if r["recolour"] == recolour]
        print(
            f"| {name} | {mean_std([r['mnist_test'] for r in part])} | {mean_std([r['mnistm_test'] for r in part])} |"
        )
    machine = platform.processor() or platform.machine()
    args.json.write_text(json.dumps({"steps": args.steps, "rows": rows, "machine": machine}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
