"""``gankit eval``: score a CycleGAN on a test split (both directions) or any two image folders, and
write ``report.json`` + ``report.html`` (metrics table, best/worst grids).

Metric names (``report.json["metrics"]``):

- ``classifier_test_accuracy``: held-out accuracy of the project's A-vs-B domain classifier; the
  classifier metrics below are flagged unreliable when it is < 0.95.
- ``success_a2b`` / ``success_b2a``: share of translations classified as the target domain;
  ``floor_a2b`` / ``floor_b2a``: the same share for the untranslated inputs ("do nothing").
- ``fid_cls_*`` / ``kid_cls_*``: FID (Heusel et al. 2017) / KID (Bińkowski et al. 2018) between
  translations and real target-domain test images in the classifier's penultimate features;
  ``fid_cls_floor`` / ``kid_cls_floor``: between the real A and real B test images.
- ``cycle_l1_a`` / ``cycle_l1_b``: mean |F(G(a)) − a| and |G(F(b)) − b| on the [-1, 1] scale.
- ``psnr_a2b`` / ``ssim_a2b`` (colorization truth) and ``label_preservation_*`` (digits).
- ``fid_inception*`` / ``kid_inception*`` / ``is_inception*`` with ``--inception-weights``.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data.images import list_images
from gankit.data.recipes import DomainPair
from gankit.data.sources import FileSource, ImageSource
from gankit.data.transforms import EvalTransform
from gankit.errors import ConfigError
from gankit.io import atomic_write_text
from gankit.metrics.classifier import (
    RELIABLE_ACCURACY,
    ClassifierConfig,
    TrainedClassifier,
    tensor_to_uint8,
    train_domain_classifier,
    train_label_classifier,
)
from gankit.metrics.fid import KID_SUBSET_SIZE, KID_SUBSETS, fid_from_features, kid
from gankit.metrics.image_quality import psnr, ssim
from gankit.metrics.inception import InceptionExtractor, inception_score
from gankit.metrics.registry import TRANSLATOR, EvalRequest, register_evaluator

GRID_CASES = 4
Log = Callable[[str], None]


@dataclass
class Report:
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    grids: list[tuple[str, str]] = field(default_factory=list)  # (title, file name)
    descriptions: dict[str, str] = field(default_factory=dict)  # metric → meaning, beyond DESCRIPTIONS
    title: str = "gankit eval"

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "info": self.info,
            "notes": self.notes,
            "grids": [{"title": t, "file": f} for t, f in self.grids],
        }


def _quiet(msg: str) -> None:
    pass


def _json_value(v):
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _choose(n: int, cap: int | None) -> np.ndarray:
    """``cap`` indices spread evenly over ``n`` (all when ``cap`` is None or ≥ n)."""
    if cap is None or cap >= n:
        return np.arange(n)
    if cap < 2:
        raise ConfigError(f"--max-images must be at least 2, got {cap}")
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def _load(source: ImageSource, indices: np.ndarray, size: int | None) -> torch.Tensor:
    t = EvalTransform(size)
    return torch.stack([t(source.load(int(i))) for i in indices])


def _translate(generator: torch.nn.Module, x: torch.Tensor, device: torch.device, batch: int) -> torch.Tensor:
    from gankit.inference.translate import translate_tensor

    out = [translate_tensor(generator, x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)]
    return torch.cat(out)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1], gray replicated to 3 channels."""
    x = (x.clamp(-1, 1) + 1) / 2
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _set_distance(prefix: str, fa: np.ndarray, fb: np.ndarray, m: dict, notes: list[str], label: str) -> None:
    if len(fa) < 2 or len(fb) < 2:
        m[f"fid_{prefix}"] = m[f"kid_{prefix}"] = None
        notes.append(f"{label}: FID/KID need at least 2 images per set")
        return
    m[f"fid_{prefix}"] = fid_from_features(fa, fb)
    m[f"kid_{prefix}"], m[f"kid_{prefix}_std"] = kid(fa, fb, KID_SUBSETS, KID_SUBSET_SIZE)


def evaluate_model(
    model,
    test_pair: DomainPair,
    out_dir: str | Path,
    train_pair: DomainPair | None = None,
    size: int | None = None,
    max_images: int | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    classifier_config: ClassifierConfig | None = None,
    batch_size: int = 16,
    log: Log = _quiet,
    model_name: str = "",
) -> dict[str, Any]:
    """Score ``model`` (a :class:`~gankit.models.base.Translator` with both directions) on ``test_pair``,
    write ``out_dir/report.json`` and ``report.html``, return the metrics. ``train_pair`` (the train
    split) is needed for the classifier metrics; without it they are None with a note."""
    device = torch.device(device)
    model.eval()
    size = size or getattr(model, "image_size", None) or model.config.size
    for d, (ca, cb) in (
        ("A", (test_pair.channels_a, model.channels("a2b")[0])),
        ("B", (test_pair.channels_b, model.channels("b2a")[0])),
    ):
        if ca != cb:
            raise ConfigError(f"domain {d} of {test_pair.name} has {ca} channel(s) but the model expects {cb}")
    rep = Report()
    m, notes = rep.metrics, rep.notes
    idx_a = _choose(len(test_pair.source_a), max_images)
    idx_b = _choose(len(test_pair.source_b), max_images)
    log(f"loading {len(idx_a)} A and {len(idx_b)} B test images at {size} px")
    real_a, real_b = _load(test_pair.source_a, idx_a, size), _load(test_pair.source_b, idx_b, size)
    log("translating")
    fake_b = _translate(model.generator("a2b"), real_a, device, batch_size)
    rec_a = _translate(model.generator("b2a"), fake_b, device, batch_size)
    fake_a = _translate(model.generator("b2a"), real_b, device, batch_size)
    rec_b = _translate(model.generator("a2b"), fake_a, device, batch_size)
    l1_a = (rec_a - real_a).abs().flatten(1).mean(1)
    l1_b = (rec_b - real_b).abs().flatten(1).mean(1)
    rep.info.update(
        model=model_name,
        dataset=test_pair.name,
        size=size,
        test_images_a=len(idx_a),
        test_images_b=len(idx_b),
        device=str(device),
    )

    keys = (
        "classifier_test_accuracy",
        "success_a2b",
        "success_b2a",
        "floor_a2b",
        "floor_b2a",
        "fid_cls_a2b",
        "fid_cls_b2a",
        "kid_cls_a2b",
        "kid_cls_b2a",
    )
    m.update(dict.fromkeys(keys))
    m["cycle_l1_a"], m["cycle_l1_b"] = float(l1_a.mean()), float(l1_b.mean())
    score_a2b, score_b2a = -l1_a.numpy(), -l1_b.numpy()  # higher is better, for the grids
    score_name = "cycle L1"

    # --- domain classifier ---
    if train_pair is None:
        notes.append("no train split given (--dataset or --train-a/--train-b): classifier metrics skipped")
    else:
        cfg = classifier_config or ClassifierConfig()
        log(f"domain classifier ({cfg.image_size} px): training or loading from cache")
        clf = train_domain_classifier(
            train_pair.source_a,
            train_pair.source_b,
            test_pair.source_a,
            test_pair.source_b,
            test_pair.name,
            cfg,
            cache_dir,
        )
        rep.info["classifier"] = _classifier_info(clf)
        m["classifier_test_accuracy"] = clf.test_accuracy
        m["classifier_reliable"] = clf.reliable
        if not clf.reliable:
            notes.append(
                f"domain classifier test accuracy {clf.test_accuracy:.3f} < {RELIABLE_ACCURACY}: "
                "success rates and classifier FID/KID are unreliable"
            )
        s = cfg.image_size
        p_fb, f_fb = clf.predict(tensor_to_uint8(fake_b, s))
        p_fa, f_fa = clf.predict(tensor_to_uint8(fake_a, s))
        p_ra, f_ra = clf.predict(tensor_to_uint8(real_a, s))
        p_rb, f_rb = clf.predict(tensor_to_uint8(real_b, s))
        m["success_a2b"] = float((p_fb.argmax(1) == 1).mean())
        m["success_b2a"] = float((p_fa.argmax(1) == 0).mean())
        m["floor_a2b"] = float((p_ra.argmax(1) == 1).mean())
        m["floor_b2a"] = float((p_rb.argmax(1) == 0).mean())
        _set_distance("cls_a2b", f_fb, f_rb, m, notes, "a2b")
        _set_distance("cls_b2a", f_fa, f_ra, m, notes, "b2a")
        _set_distance("cls_floor", f_ra, f_rb, m, notes, "real A vs real B")
        score_a2b, score_b2a, score_name = p_fb[:, 1], p_fa[:, 0], "P(target domain)"

    # --- ground truth (colorization) ---
    if test_pair.test_a_truth is not None:
        truth = _unit(_load(test_pair.test_a_truth, idx_a, size))
        out, inp = _unit(fake_b), _unit(real_a)
        if out.shape == truth.shape:
            ps = psnr(out, truth)
            m["psnr_a2b"], m["ssim_a2b"] = _finite_mean(ps), float(ssim(out, truth).mean())
            m["psnr_floor_a2b"], m["ssim_floor_a2b"] = (
                _finite_mean(psnr(inp, truth)),
                float(ssim(inp, truth).mean()),
            )
            score_a2b, score_name_a2b = ps.numpy(), "PSNR"
            rep.info["score_a2b"] = score_name_a2b
        else:
            notes.append(f"translations {tuple(out.shape[1:])} and truth {tuple(truth.shape[1:])} differ: no PSNR")

    # --- label preservation (digits) ---
    if train_pair is not None and test_pair.test_a_truth is None and _labelled(train_pair, test_pair):
        for d, fake, src_labels, train_t, test_t in (
            ("a2b", fake_b, test_pair.source_a.labels[idx_a], train_pair.source_b, test_pair.source_b),
            ("b2a", fake_a, test_pair.source_b.labels[idx_b], train_pair.source_a, test_pair.source_a),
        ):
            log(f"label classifier of the {d} target domain: training or loading from cache")
            lc = train_label_classifier(train_t, test_t, f"{test_pair.name}-{d[-1]}", cache_dir=cache_dir)
            m[f"label_classifier_accuracy_{d[-1]}"] = lc.test_accuracy
            m[f"label_preservation_{d}"] = label_preservation(
                lc, tensor_to_uint8(fake, lc.config.image_size), src_labels
            )
            real = real_a if d == "a2b" else real_b
            m[f"label_floor_{d}"] = label_preservation(lc, tensor_to_uint8(real, lc.config.image_size), src_labels)

    # --- Inception ---
    if inception_weights:
        ext = InceptionExtractor(inception_weights, device=device)
        log("Inception features")
        feats = {
            k: ext(tensor_to_uint8(v, v.shape[-1]))
            for k, v in (("fb", fake_b), ("fa", fake_a), ("ra", real_a), ("rb", real_b))
        }
        _set_distance("inception_a2b", feats["fb"][0], feats["rb"][0], m, notes, "Inception a2b")
        _set_distance("inception_b2a", feats["fa"][0], feats["ra"][0], m, notes, "Inception b2a")
        for d, k in (("a2b", "fb"), ("b2a", "fa")):
            logits = feats[k][1]
            if logits is None:
                m[f"is_inception_{d}"] = None
            else:
                m[f"is_inception_{d}"], m[f"is_inception_{d}_std"] = inception_score(logits)
        if feats["fb"][1] is None:
            notes.append(f"Inception Score unavailable: {ext.logits_reason}")

    # --- grids ---
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for d, inp, fake, rec, score in (
        ("a2b", real_a, fake_b, rec_a, score_a2b),
        ("b2a", real_b, fake_a, rec_b, score_b2a),
    ):
        name = rep.info.get(f"score_{d}", score_name)
        rep.grids += _best_worst(out_dir, d, inp, fake, rec, np.asarray(score), name)
    return write_report(rep, out_dir)


@register_evaluator(TRANSLATOR)
def evaluate_translator(model, request: EvalRequest) -> dict[str, Any]:
    """``gankit eval RUN`` for a model that translates images: its own data's test split (or
    ``--dataset`` / ``--test-a --test-b``), scored by :func:`evaluate_model`."""
    import dataclasses

    from gankit.data.loading import domain_pair
    from gankit.data.recipes import folder_pair

    ca, cb = model.channels("a2b")
    if request.test_a or request.test_b:
        if not (request.test_a and request.test_b):
            raise ConfigError("--test-a and --test-b go together")
        test = folder_pair(request.test_a, request.test_b, ca, cb, name=Path(request.test_a).parent.name or "folders")
        train = None
        if request.train_a and request.train_b:
            train = folder_pair(request.train_a, request.train_b, ca, cb, name=test.name)
    else:
        # the model's own data by default; --swap runs are scored in their own A/B orientation
        data = model.config
        if request.dataset:
            data = dataclasses.replace(data, dataset=request.dataset, domain_a=[], domain_b=[])
        if request.data_root:
            data = dataclasses.replace(data, data_root=request.data_root)
        test, train = domain_pair(data, "test"), domain_pair(data, "train")
    return evaluate_model(model, test, request.out, train, request.size, request.max_images, request.device,
                          request.cache_dir, request.inception_weights, request.classifier_config, log=request.log,
                          model_name=request.model_name)  # fmt: skip


def finish_report(rep: Report, model, request: EvalRequest) -> dict[str, Any]:
    """Write a model evaluator's report (with the model's name and kind) and return its metrics."""
    rep.info.setdefault("model", request.model_name)
    rep.info.setdefault("kind", model.kind)
    return write_report(rep, request.out)


def _finite_mean(values: torch.Tensor) -> float:
    """Mean PSNR; identical pairs (inf) are capped at 100 dB so one exact copy does not make it inf."""
    return float(values.clamp(max=100.0).mean())


def _labelled(train: DomainPair, test: DomainPair) -> bool:
    return all(s.labels is not None for s in (train.source_a, train.source_b, test.source_a, test.source_b))


def label_preservation(classifier: TrainedClassifier, images: torch.Tensor, labels) -> float:
    """Share of ``images`` (uint8) whose predicted label equals ``labels`` (their sources' labels)."""
    probs, _ = classifier.predict(images)
    return float((probs.argmax(1) == np.asarray(labels)).mean())


def _classifier_info(c: TrainedClassifier) -> dict[str, Any]:
    return {
        "test_accuracy": c.test_accuracy,
        "reliable": c.reliable,
        "cached": c.cached,
        "train_seconds": round(c.train_seconds, 2),
        "path": str(c.path) if c.path else None,
        "image_size": c.config.image_size,
        "steps": c.config.steps,
    }


def _best_worst(out_dir: Path, d: str, inp, fake, rec, score: np.ndarray, score_name: str) -> list[tuple[str, str]]:
    from gankit.data.grid import make_grid
    from gankit.io import save_image_atomic

    k = min(GRID_CASES, len(score) // 2) or min(1, len(score))
    order = np.argsort(-score, kind="stable")
    grids = []
    for which, chosen in (("best", order[:k]), ("worst", order[::-1][:k])):
        rows = [[inp[i], fake[i], rec[i]] for i in chosen]
        labels = ["input", "translated", "reconstructed"]
        row_labels = [f"{score[i]:.3g}" for i in chosen]
        file = f"grid_{d}_{which}.png"
        save_image_atomic(make_grid(rows, labels, row_labels), out_dir / file)
        grids.append((f"{d}: {which} {k} by {score_name}", file))
    return grids


# --- folders --------------------------------------------------------------------------------------------
def evaluate_folders(
    real_dir: str | Path,
    fake_dir: str | Path,
    out_dir: str | Path,
    inception_weights: str | Path | None = None,
    size: int | None = None,
    max_images: int | None = None,
    classifier: TrainedClassifier | None = None,
    device: str | torch.device = "cpu",
    log: Log = _quiet,
) -> dict[str, Any]:
    """Score any two folders of images: Inception FID/KID/IS (with weights), classifier FID/KID and
    target share (with a trained domain ``classifier``; the fakes should be domain B), and PSNR/SSIM
    over files with the same name stem in both folders. Writes report.json/report.html."""
    rep = Report()
    m, notes = rep.metrics, rep.notes
    real_paths, fake_paths = list_images(real_dir), list_images(fake_dir)
    real_paths = [real_paths[i] for i in _choose(len(real_paths), max_images)]
    fake_paths = [fake_paths[i] for i in _choose(len(fake_paths), max_images)]
    rep.info.update(real=str(real_dir), fake=str(fake_dir), real_images=len(real_paths), fake_images=len(fake_paths))
    log(f"loading {len(real_paths)} real and {len(fake_paths)} fake images")
    real_src, fake_src = FileSource(real_paths, 3), FileSource(fake_paths, 3)
    uniform = size is not None or _same_size(real_src, fake_src)
    if not uniform:
        size = 256
        notes.append("images differ in size: all resized to 256 px (pass --size to choose)")
    real = _load(real_src, np.arange(len(real_src)), size)
    fake = _load(fake_src, np.arange(len(fake_src)), size)
    real_u8, fake_u8 = tensor_to_uint8(real, real.shape[-1]), tensor_to_uint8(fake, fake.shape[-1])

    m["fid_inception"] = m["kid_inception"] = m["is_inception"] = None
    if inception_weights:
        ext = InceptionExtractor(inception_weights, device=device)
        log("Inception features")
        fr, _ = ext(real_u8)
        ff, logits = ext(fake_u8)
        _set_distance("inception", ff, fr, m, notes, "Inception")
        if logits is None:
            notes.append(f"Inception Score unavailable: {ext.logits_reason}")
        else:
            m["is_inception"], m["is_inception_std"] = inception_score(logits)
    else:
        notes.append("no --inception-weights: Inception FID/KID/IS not computed")

    if classifier is not None:
        s = classifier.config.image_size
        pr, fr = classifier.predict(tensor_to_uint8(real, s))
        pf, ff = classifier.predict(tensor_to_uint8(fake, s))
        m["classifier_test_accuracy"] = classifier.test_accuracy
        m["share_b_real"], m["share_b_fake"] = (
            float((pr.argmax(1) == 1).mean()),
            float((pf.argmax(1) == 1).mean()),
        )
        _set_distance("cls", ff, fr, m, notes, "classifier features")
        rep.info["classifier"] = _classifier_info(classifier)

    stems = {p.stem: i for i, p in enumerate(real_paths)}
    pairs = [(stems[p.stem], j) for j, p in enumerate(fake_paths) if p.stem in stems]
    if pairs:
        ri, fi = (torch.tensor(v) for v in zip(*pairs))
        r, f = _unit(real[ri]), _unit(fake[fi])
        if r.shape == f.shape and min(r.shape[-2:]) >= 11:
            m["paired_images"] = len(pairs)
            m["psnr"], m["ssim"] = _finite_mean(psnr(f, r)), float(ssim(f, r).mean())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_report(rep, out_dir)


def _same_size(*sources: FileSource) -> bool:
    from PIL import Image

    sizes = set()
    for s in sources:
        for p in s.paths:
            with Image.open(p) as im:
                sizes.add(im.size)
            if len(sizes) > 1:
                return False
    return True


# --- output ---------------------------------------------------------------------------------------------
DESCRIPTIONS = {
    "classifier_test_accuracy": "domain classifier, held-out accuracy",
    "success_a2b": "A→B translations classified as B",
    "floor_a2b": "untranslated A classified as B (floor)",
    "success_b2a": "B→A translations classified as A",
    "floor_b2a": "untranslated B classified as A (floor)",
    "fid_cls_a2b": "FID, classifier features, G(A) vs B",
    "fid_cls_b2a": "FID, classifier features, F(B) vs A",
    "fid_cls_floor": "FID, classifier features, A vs B",
    "kid_cls_a2b": "KID, classifier features, G(A) vs B",
    "kid_cls_b2a": "KID, classifier features, F(B) vs A",
    "kid_cls_floor": "KID, classifier features, A vs B",
    "cycle_l1_a": "mean |F(G(a)) − a| on [-1, 1]",
    "cycle_l1_b": "mean |G(F(b)) − b| on [-1, 1]",
    "psnr_a2b": "PSNR (dB) of G(A) vs true colours",
    "ssim_a2b": "SSIM of G(A) vs true colours",
    "psnr_floor_a2b": "PSNR (dB) of the gray input vs true colours",
    "ssim_floor_a2b": "SSIM of the gray input vs true colours",
    "classifier_reliable": f"classifier accuracy ≥ {RELIABLE_ACCURACY}",
    "label_classifier_accuracy_a": "digit classifier of domain A, test accuracy",
    "label_classifier_accuracy_b": "digit classifier of domain B, test accuracy",
    "label_preservation_a2b": "G(A) keeps the source digit label",
    "label_preservation_b2a": "F(B) keeps the source digit label",
    "label_floor_a2b": "untranslated A read with B's digit classifier",
    "label_floor_b2a": "untranslated B read with A's digit classifier",
    "fid_inception": "FID, Inception features",
    "kid_inception": "KID, Inception features",
    "is_inception": "Inception Score of the fakes",
}


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def format_table(metrics: dict[str, Any], descriptions: dict[str, str] | None = None) -> str:
    """Plain-text table of metrics: name, value, description."""
    descriptions = {**DESCRIPTIONS, **(descriptions or {})}
    width = max((len(k) for k in metrics), default=6)
    lines = [f"{'metric':<{width}}  {'value':>10}  description", "-" * (width + 40)]
    for k, v in metrics.items():
        lines.append(f"{k:<{width}}  {_fmt(v):>10}  {descriptions.get(k, '')}".rstrip())
    return "\n".join(lines)


def write_report(rep: Report, out_dir: Path) -> dict[str, Any]:
    """``out_dir/report.json`` (``{"metrics": …, "info": …}``) and ``report.html``, written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep.metrics = {k: _json_value(v) for k, v in rep.metrics.items()}
    atomic_write_text(out_dir / "report.json", json.dumps(rep.to_json(), indent=2, default=str))
    atomic_write_text(out_dir / "report.html", _html(rep))
    return rep.metrics


def _html(rep: Report) -> str:
    e = html.escape
    descriptions = {**DESCRIPTIONS, **rep.descriptions}
    rows = "\n".join(
        f"<tr><td><code>{e(k)}</code></td><td class=num>{e(_fmt(v))}</td><td>{e(descriptions.get(k, ''))}</td></tr>"
        for k, v in rep.metrics.items()
    )
    info = "\n".join(f"<li>{e(k)}: {e(json.dumps(v, default=str))}</li>" for k, v in rep.info.items())
    notes = "".join(f"<li>{e(n)}</li>" for n in rep.notes)
    grids = "\n".join(
        f"<figure><img src='{e(f)}' alt='{e(t)}'><figcaption>{e(t)}</figcaption></figure>" for t, f in rep.grids
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{e(rep.title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 10px}} .num{{text-align:right}}
table{{border-collapse:collapse}} tr:nth-child(even){{background:#f3f3f3}} figure{{display:inline-block}}
.notes{{color:#a33}}</style></head><body>
<h1>{e(rep.title)}</h1>
<table><tr><th>metric</th><th>value</th><th>description</th></tr>
{rows}
</table>
<ul class=notes>{notes}</ul>
<h2>Cases</h2>
{grids}
<h2>Details</h2><ul>{info}</ul>
</body></html>
"""
