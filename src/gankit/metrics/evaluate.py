"""``gankit eval``: score a translator on a test split (:mod:`gankit.metrics.translation`, every
direction it translates) or any two image folders (:func:`evaluate_folders`), writing ``report.json``
and ``report.html``.

Metric names (``report.json["metrics"]``), per direction D = a2b / b2a:

- ``classifier_test_accuracy``: held-out accuracy of the project's guarded domain classifier (A / B /
  neither); classifier metrics are flagged unreliable when it is < 0.95.
- ``success_D`` (+ ``_ci``): share of translations classified as the target domain (not A/B's other
  side, not 'neither'); ``neither_D``: share classified as garbage; ``floor_D``: the same share for the
  untranslated inputs (do nothing); ``garbage_floor_success_D``: the best share any garbage reaches;
  ``real_ceiling_success_D``: real target test images.
- ``fid_cls_D`` / ``kid_cls_D``: FID / KID in the classifier's penultimate features against the real
  target test images; ``garbage_floor_fid_cls_D`` (lowest garbage FID), ``real_ceiling_fid_cls_D``
  (target train vs test); ``fid_cls_floor``: real A vs real B.
- ``precision_D`` / ``recall_D`` (+ ``_ci``): improved precision/recall (Kynkäänniemi et al. 2019, k=3).
- ``content_D`` (+ ``_ci``): edge-structure similarity of translation and input (identity 1, noise ≈ 0).
- ``cycle_l1_a`` / ``cycle_l1_b``: mean |F(G(a)) − a| and |G(F(b)) − b| on the [-1, 1] scale.
- ``psnr_a2b`` / ``ssim_a2b`` (colorization truth), ``label_preservation_D`` and
  ``label_preservation_confident_D`` / ``label_rejected_share_D`` (digits).
- ``fid_inception_D`` / ``kid_inception_D`` / ``is_inception_D`` with ``--inception-weights``.
- Models with latent codes (``cyclegan --latent-dim K``) only: ``diversity_D`` / ``diversity_cls_D``,
  mean pairwise distance of 5 translations of one input (pixels on [0, 1] / classifier features) over
  successful translations only, ``diversity_pairs_D``, ``success_samples_D``, the noisy-copies floor
  ``diversity_noise_floor_D``, and with truth ``psnr_best_of_k_a2b`` / ``psnr_mean_of_k_a2b`` (see
  :class:`~gankit.metrics.translation.DiversityBlock`); cycle L1 goes back with the inferred code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data.images import list_images
from gankit.data.sources import FileSource
from gankit.errors import ConfigError
from gankit.metrics.classifier import TrainedClassifier, tensor_to_uint8
from gankit.metrics.image_quality import paired_scores
from gankit.metrics.inception import InceptionExtractor, inception_score
from gankit.metrics.registry import TRANSLATOR, EvalRequest, register_evaluator
from gankit.metrics.report import DESCRIPTIONS, Report, format_table, write_report
from gankit.metrics.translation import choose, classifier_info, distances, evaluate_model, stream, to_unit_rgb
from gankit.runtime import HEAP

__all__ = ["DESCRIPTIONS", "Report", "evaluate_folders", "evaluate_model", "evaluate_translator", "finish_report",
           "format_table", "register_report_evaluator", "write_report"]  # fmt: skip


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
                          classifier_size=request.classifier_size,
                          model_name=request.model_name, adaptation_images=request.adaptation_images,
                          feature_adaptation=request.feature_adaptation,
                          adaptation_fits=request.adaptation_fits)  # fmt: skip


def register_report_evaluator(kind: str, evaluate) -> None:
    """Register ``evaluate(model, out_dir, *, data_root, device, cache_dir, log) -> Report`` (a model
    kind's own evaluation) as the evaluator of ``kind``; its report is written by :func:`finish_report`."""

    def run(model, request: EvalRequest) -> dict[str, Any]:
        rep = evaluate(model, request.out, data_root=request.data_root, device=request.device,
                       cache_dir=request.cache_dir, log=request.log)  # fmt: skip
        return finish_report(rep, model, request)

    register_evaluator(kind)(run)


def finish_report(rep: Report, model, request: EvalRequest) -> dict[str, Any]:
    """Write a model evaluator's report (with the model's name and kind) and return its metrics."""
    rep.info.setdefault("model", request.model_name)
    rep.info.setdefault("kind", model.kind)
    return write_report(rep, request.out)


# --- folders --------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_folders(
    real_dir: str | Path,
    fake_dir: str | Path,
    out_dir: str | Path,
    inception_weights: str | Path | None = None,
    size: int | None = None,
    max_images: int | None = None,
    classifier: TrainedClassifier | None = None,
    device: str | torch.device = "cpu",
    log=lambda msg: None,
) -> dict[str, Any]:
    """Score any two folders of images: Inception FID/KID/IS (with weights), classifier FID/KID and
    target share (with a trained domain ``classifier``; the fakes should be domain B), and PSNR/SSIM
    over files with the same name stem in both folders. Images are streamed in batches: memory grows
    with the number of images times the feature size, not with their pixels."""
    HEAP.bound()
    rep = Report()
    m, notes = rep.metrics, rep.notes
    real_paths, fake_paths = list_images(real_dir), list_images(fake_dir)
    real_paths = [real_paths[i] for i in choose(len(real_paths), max_images)]
    fake_paths = [fake_paths[i] for i in choose(len(fake_paths), max_images)]
    rep.info.update(real=str(real_dir), fake=str(fake_dir), real_images=len(real_paths), fake_images=len(fake_paths))
    real_src, fake_src = FileSource(real_paths, 3), FileSource(fake_paths, 3)
    if size is None and not _same_size(real_src, fake_src):
        size = 256
        notes.append("images differ in size: all resized to 256 px (pass --size to choose)")
    ext = InceptionExtractor(inception_weights, device=device) if inception_weights else None
    if ext is None:
        notes.append("no --inception-weights: Inception FID/KID/IS not computed")
    feats: dict[str, dict[str, list]] = {side: {"inc": [], "logits": [], "cls": [], "p": []} for side in ("r", "f")}
    for side, src in (("r", real_src), ("f", fake_src)):
        log(f"{'real' if side == 'r' else 'fake'}: {len(src)} images")
        for x in stream(src, np.arange(len(src)), size):
            if ext is not None:
                f, lg = ext(tensor_to_uint8(x, x.shape[-1]))
                feats[side]["inc"].append(f)
                if lg is not None:
                    feats[side]["logits"].append(lg)
            if classifier is not None:
                p, f = classifier.predict(tensor_to_uint8(x, classifier.config.image_size))
                feats[side]["p"].append(p)
                feats[side]["cls"].append(f)
    m["fid_inception"] = m["kid_inception"] = m["is_inception"] = None
    if ext is not None:
        distances("inception", np.concatenate(feats["f"]["inc"]), np.concatenate(feats["r"]["inc"]), m, notes)
        if feats["f"]["logits"]:
            m["is_inception"], m["is_inception_std"] = inception_score(np.concatenate(feats["f"]["logits"]))
        else:
            notes.append(f"Inception Score unavailable: {ext.logits_reason}")
    if classifier is not None:
        pr, pf = np.concatenate(feats["r"]["p"]), np.concatenate(feats["f"]["p"])
        m["classifier_test_accuracy"] = classifier.test_accuracy
        m["share_b_real"], m["share_b_fake"] = float((pr.argmax(1) == 1).mean()), float((pf.argmax(1) == 1).mean())
        distances("cls", np.concatenate(feats["f"]["cls"]), np.concatenate(feats["r"]["cls"]), m, notes)
        rep.info["classifier"] = classifier_info(classifier)
    stems = {p.stem: i for i, p in enumerate(real_paths)}
    pairs = [(stems[p.stem], j) for j, p in enumerate(fake_paths) if p.stem in stems]
    if pairs:
        log(f"{len(pairs)} same-name pairs: PSNR / SSIM")
        ri, fi = (np.array(v) for v in zip(*pairs))

        def pair_batches():
            for r, f in zip(stream(real_src, ri, size), stream(fake_src, fi, size)):
                if r.shape != f.shape or min(r.shape[-2:]) < 11:
                    raise ConfigError(f"{real_dir} and {fake_dir}: same-name images differ in size; pass --size")
                yield to_unit_rgb(f), to_unit_rgb(r)

        scores = paired_scores(pair_batches())
        m["paired_images"] = len(pairs)
        m["psnr"], m["ssim"] = float(np.minimum(scores.psnr, 100).mean()), float(scores.ssim.mean())
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
