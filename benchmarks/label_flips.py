"""Where a digit translator loses label preservation, and who reads its flips as what::

    python benchmarks/label_flips.py RUN [RUN …] --data-root ../shared/data

(RUN: a run folder, read at its newest checkpoint, or one checkpoint ``RUN/checkpoints/step_N.pt``;
``--images`` larger than a split reads the whole split.)

For each run (a `--semantic-loss` digit run, e.g. the three seeds of the digit default):

- per source digit, the share of ``--images`` random test translations that the evaluation's judge (the
  label classifier of `gankit eval`) reads as the source label, and what the others are read as
  (:func:`gankit.metrics.translation.label_flips`);
- of the translations the judge reads as flipped, the share that the loss's own task classifier (from the
  run's checkpoint) and ``--other-seeds`` more task classifiers trained the same way on the same source
  still read as the source label: if other seeds disagree with the loss's classifier, the flips are
  adversarial to its weights and an ensemble would catch them; if they agree, the two handwritings'
  readers disagree;
- the same on ``--images`` random images of the source's train split, which the translator trained on,
  beside the share of translations the loss's reader reads as the label the loss asks for: a translator
  that satisfies its loss on train images (~0.99) while the judge keeps fewer labels there has found the
  reader's blind spots; the fall from train to test is what it did not learn to generalise.

For the first run, ``--fit-seeds`` adaptation classifiers (the recipe of `gankit eval`, one per seed) on
its USPS → MNIST translations of the whole B train split: how far one classifier's seed moves adaptation
accuracy. Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gankit.data.recipes import load_recipe
from gankit.inference.translate import translate_tensor
from gankit.metrics.adaptation import ADAPTATION_CLASSIFIER, adaptation_accuracies, translated_split
from gankit.metrics.classifier import load_uint8, tensor_to_uint8, train_label_classifier
from gankit.metrics.translation import label_flips, stream
from gankit.models.persist import load_model, read_checkpoint
from gankit.models.semantic import load_semantic_state, match_channels, train_task_classifier

REPO = Path(__file__).resolve().parents[1]


def newest_checkpoint(run: Path) -> Path:
    checkpoints = sorted((run / "checkpoints").glob("step_*.pt"))
    if not checkpoints:
        raise SystemExit(f"{run}/checkpoints: no checkpoint with the semantic loss's classifiers")
    return checkpoints[-1]


def share_of(readers: dict[str, np.ndarray], chosen: np.ndarray, wanted: np.ndarray) -> dict[str, float]:
    """Per reader, the share of the ``chosen`` images it reads as ``wanted``."""
    return {name: round(float((read[chosen] == wanted[chosen]).mean()), 3) for name, read in readers.items()}


def translate_and_read(generator, source, images: int, size: int, judge, loss_reader, labeller, others: dict) -> dict:
    """Translate ``images`` random images of ``source`` and read them: the judge against the true labels
    (label preservation), and the loss's reader against the label the loss asks for (its labeller's
    reading of the untranslated image): where the second holds and the first does not, the translator
    satisfied the loss in the reader's blind spot; where the second fails, it did not learn to."""
    idx = np.random.default_rng(0).permutation(len(source))[:images]
    read = {"judge": [], "loss": [], "wanted": [], **{name: [] for name in others}}
    with torch.no_grad():
        for x in stream(source, idx, size, 256):
            fake = translate_tensor(generator, x).float()
            read["judge"].append(judge.predict(tensor_to_uint8(fake, judge.config.image_size))[0].argmax(1))
            read["wanted"].append(labeller(match_channels(x, labeller.in_channels)).argmax(1).numpy())
            for name, reader in [("loss", loss_reader), *others.items()]:
                read[name].append(reader(match_channels(fake, reader.in_channels)).argmax(1).numpy())
    read = {k: np.concatenate(v) for k, v in read.items()}
    labels = np.asarray(source.labels)[idx]
    flipped = read["judge"] != labels
    readers = {k: v for k, v in read.items() if k not in ("judge", "wanted")}
    return {
        "images": len(idx),
        "label_preservation": round(float((~flipped).mean()), 4),
        "loss_reader_keeps_loss_label": round(float((read["loss"] == read["wanted"]).mean()), 4),
        "flips": label_flips(read["judge"], labels),
        "flipped": int(flipped.sum()),
        "flipped_read_as_source": share_of(readers, flipped, labels),
        "flipped_read_as_judge": share_of(readers, flipped, read["judge"]),
    }


def readings(run: Path, data_root: str, images: int, other_seeds: list[int], lenet_steps: int | None) -> dict:
    checkpoint = run if run.suffix == ".pt" else newest_checkpoint(run)
    model = load_model(checkpoint, "cpu")
    c = model.config
    state = read_checkpoint(checkpoint)["extra"].get("semantic")
    if not state:
        raise SystemExit(f"{run}: not a --semantic-loss run (its checkpoint holds no task classifier)")
    semantic = load_semantic_state(c.semantic_source, state, torch.device("cpu"))
    train, test = load_recipe(c.dataset, data_root, "train"), load_recipe(c.dataset, data_root, "test")
    out = {}
    for d, source, source_train, target_train, target_test, letter in (
        ("a2b", test.source_a, train.source_a, train.source_b, test.source_b, "b"),
        ("b2a", test.source_b, train.source_b, train.source_a, test.source_a, "a"),
    ):
        judge = train_label_classifier(target_train, target_test, f"{test.name}-{letter}")
        loss_reader = semantic.classifier_for(d)
        others = []
        for seed in other_seeds:
            reader, _ = train_task_classifier(source_train, None, loss_reader.in_channels, c.size, seed=seed,
                                              steps=lenet_steps or c.semantic_steps)  # fmt: skip
            others.append(reader)
        labeller = semantic.label_reader(d)
        r = out[d] = translate_and_read(model.generator(d), source, images, c.size, judge, loss_reader, labeller,
                                        dict(zip((f"seed {s}" for s in other_seeds), others)))  # fmt: skip
        seen = translate_and_read(model.generator(d), source_train, images, c.size, judge, loss_reader, labeller, {})
        r["train_split"] = {k: seen[k] for k in ("images", "label_preservation", "loss_reader_keeps_loss_label")}
    return out


def seed_spread(run: Path, data_root: str, seeds: list[int]) -> dict:
    """USPS → MNIST adaptation accuracy of one run's translations, one adaptation classifier per seed."""
    model = load_model(run, "cpu")
    train, test = load_recipe(model.config.dataset, data_root, "train"), load_recipe(model.config.dataset, data_root,
                                                                                     "test")  # fmt: skip
    s = ADAPTATION_CLASSIFIER.image_size
    source = train.source_b
    fake = translated_split(model, "b2a", source, model.config.size, np.arange(len(source)), s, torch.device("cpu"))
    labels = torch.from_numpy(np.asarray(source.labels, dtype=np.int64))
    target_y = torch.from_numpy(np.asarray(test.source_a.labels, dtype=np.int64))
    configs = [replace(ADAPTATION_CLASSIFIER, seed=k) for k in seeds]
    accuracies = adaptation_accuracies(fake, labels, load_uint8(test.source_a, s), target_y, configs)
    return {"run": str(run), "seeds": seeds, "adaptation_accuracy_b2a": [round(a, 4) for a in accuracies]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="--semantic-loss digit run folders or their checkpoints")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--images", type=int, default=2000, help="random test images per direction (default 2000)")
    p.add_argument("--other-seeds", type=int, nargs="*", default=[11, 12], help="seeds of the extra task classifiers")
    p.add_argument("--lenet-steps", type=int, default=None, help="their steps (default: the run's --semantic-steps)")
    p.add_argument("--fit-seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5],
                   help="adaptation classifier seeds for the first run's spread (none: skip)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results-label-flips.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = {"command": "python benchmarks/label_flips.py " + " ".join(str(r) for r in args.runs),
              "machine": platform.processor() or platform.machine(), "runs": {}}  # fmt: skip
    for run in args.runs:
        result["runs"][str(run)] = r = readings(run, args.data_root, args.images, args.other_seeds, args.lenet_steps)
        print(f"\n{run}")
        for d, v in r.items():
            worst = sorted(v["flips"].items(), key=lambda kv: kv[1]["kept"])[:3]
            print(f"  {d}: label preservation {v['label_preservation']:.3f} on {v['images']}; kept least: "
                  + "; ".join(f"{k} {f['kept']:.2f} (read as {f['read_as']})" for k, f in worst))  # fmt: skip
            print(f"  {d}: of {v['flipped']} judge-flipped, read as the source label by "
                  + ", ".join(f"{k} {s:.3f}" for k, s in v["flipped_read_as_source"].items())
                  + "; agreeing with the judge: "
                  + ", ".join(f"{k} {s:.3f}" for k, s in v["flipped_read_as_judge"].items()))  # fmt: skip
            t = v["train_split"]
            print(f"  {d}: the loss's reader keeps the loss's label on {v['loss_reader_keeps_loss_label']:.3f} of "
                  f"test / {t['loss_reader_keeps_loss_label']:.3f} of train translations; label preservation "
                  f"{v['label_preservation']:.3f} / {t['label_preservation']:.3f}")  # fmt: skip
    if args.fit_seeds:
        result["adaptation_classifier_seed_spread"] = spread = seed_spread(args.runs[0], args.data_root, args.fit_seeds)
        acc = spread["adaptation_accuracy_b2a"]
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"\nadaptation_accuracy_b2a of {args.runs[0]}, classifier seeds {args.fit_seeds}: {acc} "
              f"(mean {statistics.mean(acc):.3f}, std {std:.3f})")  # fmt: skip
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
