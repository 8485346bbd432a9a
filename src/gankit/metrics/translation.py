"""Scoring a translator on a test split, in bounded memory, by registered metric blocks.

The test images of each direction are streamed in batches: loaded, translated (and translated back
when the model has the inverse direction), and handed to every applicable :class:`MetricBlock`, which
keeps only per-image numbers and feature vectors (memory grows with N·d, never with N·H·W). Each
block then reports its metrics with their floors and ceilings:

- garbage floors: what pure noise, 1/f noise, a heavily blurred input and untrained generators score
  (the garbage floor of a metric is the best score any of them reaches);
- the do-nothing floor: the untranslated input;
- the real ceiling: real target images (test split against train split).

Blocks: cycle reconstruction, content preservation, the domain classifier (success with bootstrap
intervals, classifier FID/KID, improved precision/recall), colorization truth (PSNR/SSIM), digit
label preservation (plain and confident), Inception FID/KID/IS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from gankit.data.recipes import DomainPair
from gankit.data.sources import ImageSource
from gankit.data.transforms import EvalTransform
from gankit.errors import ConfigError
from gankit.inference.translate import stochastic, translate_tensor
from gankit.metrics.classifier import (
    ADAPTATION_FITS,
    RELIABLE_ACCURACY,
    ClassifierConfig,
    TrainedClassifier,
    domain_classifier_config,
    tensor_to_uint8,
    train_domain_classifier,
    train_label_classifier,
)
from gankit.metrics.content import edge_structure_similarity
from gankit.metrics.fid import KID_SUBSET_SIZE, KID_SUBSETS, fid_from_features, kid
from gankit.metrics.garbage import make_garbage
from gankit.metrics.image_quality import psnr, ssim
from gankit.metrics.inception import InceptionExtractor, inception_score
from gankit.metrics.precision_recall import bootstrap_interval, knn_radii, manifold_membership, precision_recall
from gankit.metrics.report import Report, write_report
from gankit.runtime import HEAP

GRID_CASES = 4
BATCH = 16
FLOOR_KINDS = ("uniform_noise", "tinted_noise", "pink_noise", "heavy_blur", "untrained_resnet", "untrained_unet")
"""Garbage whose scores are the floors of every report (noise, a blurred input, untrained generators)."""
PR_K = 3
BOOTSTRAP = 1000
LABEL_KEEP = 0.99
"""The confident label metrics reject a prediction below the confidence that keeps this share of real
held-out digits."""
Log = Callable[[str], None]


def choose(n: int, cap: int | None) -> np.ndarray:
    """``cap`` indices spread evenly over ``n`` (all when ``cap`` is None or ≥ n)."""
    if cap is None or cap >= n:
        return np.arange(n)
    if cap < 2:
        raise ConfigError(f"--max-images {cap}: expected a number ≥ 2")
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def stream(source: ImageSource, indices: np.ndarray, size: int | None, batch: int = BATCH) -> Iterator[torch.Tensor]:
    """Images ``indices`` of ``source`` in [-1, 1], ``batch`` at a time (resized to ``size``)."""
    t = EvalTransform(size)
    for i in range(0, len(indices), batch):
        yield torch.stack([t(source.load(int(j))) for j in indices[i : i + batch]])


def to_unit_rgb(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1], gray replicated to 3 channels."""
    x = (x.clamp(-1, 1) + 1) / 2
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def distances(prefix: str, fake: np.ndarray, real: np.ndarray, m: dict, notes: list[str]) -> None:
    """``fid_PREFIX``, ``kid_PREFIX`` and ``kid_PREFIX_std`` of two feature sets."""
    if len(fake) < 2 or len(real) < 2:
        m[f"fid_{prefix}"] = m[f"kid_{prefix}"] = None
        notes.append(f"{prefix}: FID/KID need at least 2 images per set")
        return
    m[f"fid_{prefix}"] = fid_from_features(fake, real)
    m[f"kid_{prefix}"], m[f"kid_{prefix}_std"] = kid(fake, real, KID_SUBSETS, KID_SUBSET_SIZE)


@dataclass
class Direction:
    """One direction of a translator and the data that judges it."""

    name: str  # "a2b" or "b2a"
    back: str | None  # the inverse direction, when the model translates it
    source: ImageSource  # test inputs
    indices: np.ndarray
    target_test: ImageSource
    target_indices: np.ndarray
    target_train: ImageSource | None
    truth: ImageSource | None = None  # true target images of the inputs (colorization, the demo)

    @property
    def target_letter(self) -> str:
        return self.name[-1]

    @property
    def target_class(self) -> int:
        return 0 if self.target_letter == "a" else 1


@dataclass
class TranslatedBatch:
    direction: Direction
    positions: np.ndarray  # positions in ``direction.indices``
    real: torch.Tensor
    fake: torch.Tensor
    rec: torch.Tensor | None


@dataclass
class EvalContext:
    model: Any
    test: DomainPair
    train: DomainPair | None
    size: int
    device: torch.device
    cache_dir: Path | None
    classifier_config: ClassifierConfig
    inception: InceptionExtractor | None
    log: Log
    report: Report
    directions: list[Direction] = field(default_factory=list)
    adaptation_images: int | None = None  # source train images translated for adaptation accuracy (None: all)
    adaptation_fits: int = ADAPTATION_FITS
    feature_adaptation: bool = False  # also align the adaptation classifiers' features to the target's
    grid_scores: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)
    domain_classifier: TrainedClassifier | None = None  # set by DomainBlock, shared with later blocks

    @property
    def metrics(self) -> dict[str, Any]:
        return self.report.metrics

    @property
    def notes(self) -> list[str]:
        return self.report.notes

    def score_for_grids(self, direction: str, scores: np.ndarray, name: str, priority: int) -> None:
        """Offer per-image scores (higher = better) to rank the best/worst grids; the block with the
        highest ``priority`` wins."""
        if priority >= self._priority.get(direction, -1):
            self.grid_scores[direction] = (scores, name)
            self._priority[direction] = priority

    _priority: dict[str, int] = field(default_factory=dict)


class MetricBlock:
    """One family of metrics over streamed translations. ``applies`` says whether the block has what
    it needs; ``update`` sees every batch; ``finish`` writes the metrics (and floors) to the report."""

    priority: ClassVar[int] = 0

    @classmethod
    def applies(cls, ctx: EvalContext) -> bool:
        return True

    def __init__(self, ctx: EvalContext):
        self.ctx = ctx

    def update(self, batch: TranslatedBatch) -> None:
        pass

    def finish(self) -> None:
        pass


METRIC_BLOCKS: list[type[MetricBlock]] = []


def metric_block(cls: type[MetricBlock]) -> type[MetricBlock]:
    """Register a block for every translator evaluation (in registration order)."""
    METRIC_BLOCKS.append(cls)
    return cls


def guarded_membership(support: torch.Tensor, features: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per sample, 1.0 when it lies inside the k-NN sphere of at least one real ``support`` sample
    (improved precision, Kynkäänniemi et al. 2019) and the guarded classifier does not call it
    'neither'. The veto matters: a generator that collapses to one flat image puts every output on a
    single point, which one large real sphere can cover (measured: an untrained U-Net's grey outputs
    scored precision 1.0 against apple2orange's oranges without it)."""
    inside = manifold_membership(torch.from_numpy(features), support, knn_radii(support, PR_K)).numpy()
    rejected = probabilities.argmax(1) == 2 if probabilities.shape[1] > 2 else np.zeros(len(features), bool)
    return (inside & ~rejected).astype(np.float64)


def guarded_precision(support: torch.Tensor, features: np.ndarray, probabilities: np.ndarray) -> float | None:
    """The share of :func:`guarded_membership`; None when the support has too few points (≤ k) for k-NN spheres."""
    if len(support) <= PR_K:
        return None
    return float(guarded_membership(support, features, probabilities).mean())


def _per_direction() -> dict[str, list]:
    return {"a2b": [], "b2a": []}


@metric_block
class CycleBlock(MetricBlock):
    """``cycle_l1_a`` / ``cycle_l1_b``: mean |F(G(a)) − a| and |G(F(b)) − b| on the [-1, 1] scale."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.l1 = _per_direction()

    def update(self, batch):
        if batch.rec is not None:
            self.l1[batch.direction.name].append((batch.rec - batch.real).abs().flatten(1).mean(1).numpy())

    def finish(self):
        for d in self.ctx.directions:
            if self.l1[d.name]:
                l1 = np.concatenate(self.l1[d.name])
                self.ctx.metrics[f"cycle_l1_{d.name[0]}"] = float(l1.mean())
                self.ctx.score_for_grids(d.name, -l1, "cycle L1 (negated)", self.priority)


@metric_block
class ContentBlock(MetricBlock):
    """``content_D``: edge-structure similarity of each translation's luminance edges to its input's
    (:func:`gankit.metrics.content.edge_structure_similarity`; identity scores 1, noise ≈ 0), with its
    bootstrap interval, beside what uniform noise scores (``content_noise_D``)."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.scores, self.noise = _per_direction(), _per_direction()
        self.gen = torch.Generator().manual_seed(0)

    def update(self, batch):
        d = batch.direction.name
        self.scores[d].append(edge_structure_similarity(batch.real, batch.fake).numpy())
        self.noise[d].append(edge_structure_similarity(batch.real, make_garbage("uniform_noise", batch.fake,
                                                                                 self.gen)).numpy())  # fmt: skip

    def finish(self):
        for d in self.ctx.directions:
            s = np.concatenate(self.scores[d.name])
            self.ctx.metrics[f"content_{d.name}"] = float(s.mean())
            self.ctx.metrics[f"content_{d.name}_ci"] = list(bootstrap_interval(s, n_boot=BOOTSTRAP))
            self.ctx.metrics[f"content_noise_{d.name}"] = float(np.concatenate(self.noise[d.name]).mean())


@metric_block
class DomainBlock(MetricBlock):
    """The project's guarded domain classifier (A / B / neither): success rates with bootstrap
    intervals, the share classified 'neither', classifier-feature FID/KID against the real target
    test images, improved precision/recall (k = 3) against those of them the classifier assigns to
    the target domain, with garbage floors, the do-nothing floor and the real ceiling of each."""

    priority = 1

    @classmethod
    def applies(cls, ctx):
        if ctx.train is None:
            ctx.notes.append("no train split given (--dataset or --train-a/--train-b): classifier metrics skipped")
        return ctx.train is not None

    def __init__(self, ctx):
        super().__init__(ctx)
        cfg = ctx.classifier_config
        ctx.log(f"domain classifier ({cfg.image_size} px, A / B / neither): training or loading from cache")
        train, test = ctx.train, ctx.test
        self.clf = train_domain_classifier(train.source_a, train.source_b, test.source_a, test.source_b, test.name,
                                           cfg, ctx.cache_dir)  # fmt: skip
        ctx.report.info["classifier"] = classifier_info(self.clf)
        ctx.domain_classifier = self.clf
        ctx.metrics["classifier_test_accuracy"] = self.clf.test_accuracy
        ctx.metrics["classifier_reliable"] = self.clf.reliable
        if not self.clf.reliable:
            ctx.notes.append(f"domain classifier test accuracy {self.clf.test_accuracy:.3f} < {RELIABLE_ACCURACY}: "
                             "success rates and classifier FID/KID are unreliable")  # fmt: skip
        self.s = cfg.image_size
        self.fake = {d: ([], []) for d in ("a2b", "b2a")}  # (probabilities, features)
        self.real = {d: ([], []) for d in ("a2b", "b2a")}
        self.garbage = {d: {k: ([], []) for k in FLOOR_KINDS} for d in ("a2b", "b2a")}
        self.gen = torch.Generator().manual_seed(1)

    def _add(self, store: tuple[list, list], images: torch.Tensor) -> None:
        p, f = self.clf.predict(tensor_to_uint8(images, self.s))
        store[0].append(p)
        store[1].append(f)

    def update(self, batch):
        d = batch.direction.name
        self._add(self.fake[d], batch.fake)
        self._add(self.real[d], batch.real)
        for kind in FLOOR_KINDS:
            self._add(self.garbage[d][kind], make_garbage(kind, batch.real, self.gen))

    def _real_features(self, source: ImageSource, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        store: tuple[list, list] = ([], [])
        for x in stream(source, indices, self.ctx.size):
            self._add(store, x)
        return np.concatenate(store[0]), np.concatenate(store[1])

    def finish(self):
        m, notes, info = self.ctx.metrics, self.ctx.notes, self.ctx.report.info
        floors: dict[str, Any] = {}
        for d in self.ctx.directions:
            name, target = d.name, d.target_class
            p_fake, f_fake = (np.concatenate(v) for v in self.fake[name])
            p_in, f_in = (np.concatenate(v) for v in self.real[name])
            p_tt, f_tt = self._real_features(d.target_test, d.target_indices)
            hits = (p_fake.argmax(1) == target).astype(np.float64)
            m[f"success_{name}"] = float(hits.mean())
            m[f"success_{name}_ci"] = list(bootstrap_interval(hits, n_boot=BOOTSTRAP))
            m[f"neither_{name}"] = float((p_fake.argmax(1) == 2).mean()) if p_fake.shape[1] > 2 else None
            m[f"floor_{name}"] = float((p_in.argmax(1) == target).mean())
            distances(f"cls_{name}", f_fake, f_tt, m, notes)
            # the target manifold: real target images the classifier assigns to the target domain (a real
            # photo it takes for garbage or for the other domain is an outlier whose large k-NN sphere would
            # cover garbage; Kynkäänniemi et al. 2019 §5 prune such spheres for the same reason)
            support = torch.from_numpy(f_tt[p_tt.argmax(1) == target])
            manifold = len(support) > PR_K
            if manifold:
                pr = precision_recall(support, torch.from_numpy(f_fake), PR_K, n_boot=BOOTSTRAP)
                on_manifold = guarded_membership(support, f_fake, p_fake)
                m[f"precision_{name}"], m[f"recall_{name}"] = float(on_manifold.mean()), pr.recall
                m[f"precision_{name}_ci"] = list(bootstrap_interval(on_manifold, n_boot=BOOTSTRAP))
                m[f"recall_{name}_ci"] = list(pr.recall_interval)
            else:
                m[f"precision_{name}"] = m[f"recall_{name}"] = None
                notes.append(f"{name}: only {len(support)} real target test images are classified as the target "
                             f"domain; precision/recall need more than k = {PR_K}")  # fmt: skip
            # garbage floors: the best any garbage reaches
            kinds = {}
            for kind, (ps, fs) in self.garbage[name].items():
                p, f = np.concatenate(ps), np.concatenate(fs)
                km: dict[str, Any] = {"success": float((p.argmax(1) == target).mean())}
                distances("cls", f, f_tt, km, [])
                km["precision"] = guarded_precision(support, f, p)
                kinds[kind] = km
            floors[name] = kinds
            m[f"garbage_floor_success_{name}"] = max(k["success"] for k in kinds.values())
            m[f"garbage_floor_fid_cls_{name}"] = min(k["fid_cls"] for k in kinds.values())
            m[f"garbage_floor_precision_{name}"] = max(k["precision"] for k in kinds.values()) if manifold else None
            # the real ceiling: real target images, test split against train split
            m[f"real_ceiling_success_{name}"] = float((p_tt.argmax(1) == target).mean())
            if d.target_train is not None:
                train_idx = choose(len(d.target_train), len(d.target_indices))
                p_tr, f_tr = self._real_features(d.target_train, train_idx)
                ceiling: dict[str, Any] = {}
                distances("cls", f_tr, f_tt, ceiling, notes)
                m[f"real_ceiling_fid_cls_{name}"] = ceiling["fid_cls"]
                m[f"real_ceiling_precision_{name}"] = guarded_precision(support, f_tr, p_tr)
            if name == "a2b" or "fid_cls_floor" not in m:
                distances("cls_floor", f_in, f_tt, m, notes)
            target_p = p_fake[:, target]
            self.ctx.score_for_grids(name, target_p, "P(target domain)", self.priority)
        info["garbage_floors"] = floors
        info["precision_recall"] = {"k": PR_K, "feature": "domain classifier penultimate layer"}
        sizes = {d.name: (len(d.indices), len(d.target_indices)) for d in self.ctx.directions}
        notes.append(
            "FID is biased upward at small N (Chong & Forsyth 2020): compare FID figures only at equal set sizes "
            f"(here translations vs real targets: {sizes}); KID is unbiased (its std over subsets is reported). "
            f"Intervals are 95 % bootstrap percentile intervals ({BOOTSTRAP} resamples); precision/recall use k = "
            f"{PR_K} neighbours."
        )


@metric_block
class TruthBlock(MetricBlock):
    """PSNR/SSIM of translations against the true target images where a data set has them (CIFAR
    colorization a→b; the demo's held-out crops, drawn and photographed, both ways), beside the
    untranslated input's (the floor)."""

    priority = 2

    @classmethod
    def applies(cls, ctx):
        return any(d.truth is not None for d in ctx.directions)

    def __init__(self, ctx):
        super().__init__(ctx)
        self.scores: dict[str, dict[str, list]] = {}

    def update(self, batch):
        d = batch.direction
        if d.truth is None:
            return
        truth = to_unit_rgb(next(stream(d.truth, d.indices[batch.positions], self.ctx.size, len(batch.positions))))
        out, inp = to_unit_rgb(batch.fake), to_unit_rgb(batch.real)
        scores = self.scores.setdefault(d.name, {"psnr": [], "ssim": [], "psnr_floor": [], "ssim_floor": []})
        if out.shape != truth.shape:
            return
        scores["psnr"].append(psnr(out, truth).numpy())
        scores["ssim"].append(ssim(out, truth).numpy())
        scores["psnr_floor"].append(psnr(inp, truth).numpy())
        scores["ssim_floor"].append(ssim(inp, truth).numpy())

    def finish(self):
        m = self.ctx.metrics
        for name, scores in self.scores.items():
            if not scores["psnr"]:
                self.ctx.notes.append(f"{name}: translations and true images differ in shape: no PSNR/SSIM")
                continue
            v = {k: np.concatenate(s) for k, s in scores.items()}
            m[f"psnr_{name}"], m[f"ssim_{name}"] = float(np.minimum(v["psnr"], 100).mean()), float(v["ssim"].mean())
            m[f"psnr_floor_{name}"] = float(np.minimum(v["psnr_floor"], 100).mean())
            m[f"ssim_floor_{name}"] = float(v["ssim_floor"].mean())
            self.ctx.score_for_grids(name, v["psnr"], "PSNR", self.priority)


DIVERSITY_SAMPLES = 5
"""Translations of each input (codes drawn from the prior) that the diversity block compares."""
DIVERSITY_NOISE = 0.1
"""Standard deviation, on the [0, 1] scale, of the Gaussian noise of the noisy-copies floor."""


@metric_block
class DiversityBlock(MetricBlock):
    """Models with latent codes (Augmented CycleGAN): K = :data:`DIVERSITY_SAMPLES` translations of every
    test input with codes drawn from the prior, compared pairwise.

    - ``diversity_D``: mean distance between two translations of the same input, in pixels (mean
      absolute difference on the [0, 1] scale), and ``diversity_cls_D`` in the domain classifier's
      penultimate features (Euclidean), both over pairs of *successful* translations only (assigned to
      the target domain by the guarded classifier, which calls noise 'neither'), so noise cannot buy
      diversity; 0.0 when no input has two successful translations. ``diversity_pairs_D``: the pairs
      counted; ``success_samples_D``: the share of the K·N sampled translations that succeed.
    - Floors: ``diversity_noise_floor_D``, the same measure on K noisy copies of each input (Gaussian
      noise σ = :data:`DIVERSITY_NOISE`): what noise buys through the success filter (0 when the
      classifier rejects them), and ``diversity_noise_raw_D``, their pixel distance without the filter.
    - With true targets (colorization): ``psnr_best_of_k_a2b``, the mean over inputs of the best PSNR of
      the K translations against the truth, ``psnr_mean_of_k_a2b`` the mean PSNR of a drawn code, beside
      ``psnr_best_of_k_noise_floor_a2b`` (best of K noisy copies of the input). A single-output model's
      best of K is its one output (``psnr_a2b``).

    A deterministic translator's diversity is 0 by construction: the block runs for models with latent
    codes only (``model.latent_dim`` > 0)."""

    @classmethod
    def applies(cls, ctx):
        if not stochastic(ctx.model):
            return False
        if ctx.train is None or ctx.domain_classifier is None:
            ctx.notes.append("diversity counts successful translations only and needs the domain classifier "
                             "(a train split): skipped")  # fmt: skip
            return False
        return True

    def __init__(self, ctx):
        super().__init__(ctx)
        self.clf = ctx.domain_classifier
        self.gen = torch.Generator().manual_seed(2)
        self.sums: dict[str, dict[str, list]] = {d.name: {} for d in ctx.directions}
        ctx.report.info["diversity"] = {
            "samples": DIVERSITY_SAMPLES,
            "noise_std": DIVERSITY_NOISE,
            "pixel_distance": "mean |x - y| on [0, 1]",
            "feature_distance": "Euclidean, domain classifier penultimate layer",
        }

    def _add(self, d: Direction, key: str, value: float) -> None:
        self.sums[d.name].setdefault(key, []).append(value)

    def _pairs(self, d: Direction, prefix: str, images: torch.Tensor) -> None:
        """Pairwise distances of K translations of one input, over the successful ones."""
        p, f = self.clf.predict(tensor_to_uint8(images, self.clf.config.image_size))
        ok = np.flatnonzero(p.argmax(1) == d.target_class)
        unit = (images.clamp(-1, 1) + 1) / 2
        self._add(d, f"{prefix}successes", len(ok))
        for n, i in enumerate(ok):
            for j in ok[n + 1 :]:
                self._add(d, f"{prefix}pixels", float((unit[i] - unit[j]).abs().mean()))
                self._add(d, f"{prefix}features", float(np.linalg.norm(f[i] - f[j])))
        if prefix:  # the noise floor without the filter
            k = len(images)
            raw = [float((unit[i] - unit[j]).abs().mean()) for i in range(k) for j in range(i + 1, k)]
            self._add(d, "noise_raw", float(np.mean(raw)))

    def update(self, batch):
        d, model, k = batch.direction, self.ctx.model, DIVERSITY_SAMPLES
        truth = None
        if d.truth is not None:
            truth = to_unit_rgb(next(stream(d.truth, d.indices[batch.positions], self.ctx.size,
                                            len(batch.positions))))  # fmt: skip
        for i, real in enumerate(batch.real):
            codes = torch.randn(k, model.latent_dim, generator=self.gen)
            x = real[None].expand(k, -1, -1, -1)
            fakes = translate_tensor(model.coded_generator(d.name, codes), x.to(self.ctx.device)).float().cpu()
            noisy = ((x + 1) / 2 + DIVERSITY_NOISE * torch.randn(x.shape, generator=self.gen)).clamp(0, 1) * 2 - 1
            self._pairs(d, "", fakes)
            self._pairs(d, "noise_", noisy)
            if truth is not None and to_unit_rgb(fakes).shape[1:] == truth.shape[1:]:
                target = truth[i : i + 1].expand(k, -1, -1, -1)
                scores = np.minimum(psnr(to_unit_rgb(fakes), target).numpy(), 100)
                self._add(d, "psnr_best", float(scores.max()))
                self._add(d, "psnr_mean", float(scores.mean()))
                noise = np.minimum(psnr(to_unit_rgb(noisy), target).numpy(), 100)
                self._add(d, "psnr_noise_best", float(noise.max()))

    def finish(self):
        m, k = self.ctx.metrics, DIVERSITY_SAMPLES
        for d in self.ctx.directions:
            v = self.sums[d.name]
            inputs = len(v.get("successes", []))
            m[f"diversity_{d.name}"] = float(np.mean(v["pixels"])) if v.get("pixels") else 0.0
            m[f"diversity_cls_{d.name}"] = float(np.mean(v["features"])) if v.get("features") else 0.0
            m[f"diversity_pairs_{d.name}"] = len(v.get("pixels", []))
            m[f"success_samples_{d.name}"] = float(np.sum(v.get("successes", [0])) / max(1, k * inputs))
            m[f"diversity_noise_floor_{d.name}"] = float(np.mean(v["noise_pixels"])) if v.get("noise_pixels") else 0.0
            m[f"diversity_noise_raw_{d.name}"] = float(np.mean(v["noise_raw"])) if v.get("noise_raw") else 0.0
            if not v.get("pixels"):
                self.ctx.notes.append(f"diversity_{d.name}: no input had two successful translations among its "
                                      f"{k}; reported as 0.0")  # fmt: skip
            if v.get("psnr_best"):
                m[f"psnr_best_of_k_{d.name}"] = float(np.mean(v["psnr_best"]))
                m[f"psnr_mean_of_k_{d.name}"] = float(np.mean(v["psnr_mean"]))
                m[f"psnr_best_of_k_noise_floor_{d.name}"] = float(np.mean(v["psnr_noise_best"]))
            self.ctx.report.descriptions |= {
                f"diversity_{d.name}": f"mean |x − y| on [0, 1], successful translations of one input ({k} codes)",
                f"diversity_cls_{d.name}": "the same, classifier-feature distance",
                f"diversity_noise_floor_{d.name}": f"diversity of {k} noisy copies of the input (floor)",
                f"psnr_best_of_k_{d.name}": f"best PSNR (dB) of {k} translations vs true colours",
                f"psnr_best_of_k_noise_floor_{d.name}": f"best PSNR (dB) of {k} noisy copies of the input (floor)",
            }


def confident_threshold(probabilities: np.ndarray, keep: float = LABEL_KEEP) -> float:
    """The confidence (highest class probability) that ``keep`` of these real images reach."""
    return float(np.quantile(probabilities.max(1), 1.0 - keep))


def label_scores(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Plain accuracy, 'correct and confident' over all samples, and the share rejected as unsure."""
    correct = probs.argmax(1) == np.asarray(labels)
    sure = probs.max(1) >= threshold
    return {"accuracy": float(correct.mean()), "confident": float((correct & sure).mean()),
            "rejected": float((~sure).mean())}  # fmt: skip


def label_flips(predicted: np.ndarray, labels: np.ndarray, top: int = 2) -> dict[str, dict]:
    """Per source label: how many translations there were, the share whose label was kept, and the
    labels the others were most often read as (Hoffman et al. 2018's label flipping, class by class:
    which digits a translator turns into which)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    flips = {}
    for k in np.unique(labels):
        read = predicted[labels == k]
        wrong, counts = np.unique(read[read != k], return_counts=True)
        order = np.argsort(-counts, kind="stable")[:top]
        flips[str(int(k))] = {"n": len(read), "kept": round(float((read == k).mean()), 4),
                              "read_as": {str(int(wrong[i])): int(counts[i]) for i in order}}  # fmt: skip
    return flips


def worst_flip_note(direction: str, flips: dict[str, dict]) -> str:
    """One line naming the label a translator keeps least, and what it becomes."""
    label, f = min(flips.items(), key=lambda kv: (kv[1]["kept"], kv[0]))
    read_as = ", ".join(f"{k} ({n})" for k, n in f["read_as"].items()) or "nothing else"
    return (
        f"label_preservation_{direction}: label {label} is kept least, in {f['kept']:.1%} of its {f['n']} "
        f"translations (read as {read_as}); info label_flips_{direction} has every label"
    )


@metric_block
class LabelBlock(MetricBlock):
    """Digit label preservation: the target domain's digit classifier reads each translation, which
    should keep its source label; the confident variant counts a translation only when the classifier is
    at least as sure as it is on 99 % of real held-out digits. Its grids rank translations by the
    classifier's probability of the source label: the worst grid shows the flipped labels."""

    priority = 2

    @classmethod
    def applies(cls, ctx):
        t, tr = ctx.test, ctx.train
        return (tr is not None and t.test_a_truth is None
                and all(s.labels is not None for s in (tr.source_a, tr.source_b, t.source_a, t.source_b)))  # fmt: skip

    def __init__(self, ctx):
        super().__init__(ctx)
        self.classifiers: dict[str, TrainedClassifier] = {}
        self.fake, self.real = _per_direction(), _per_direction()
        for d in ctx.directions:
            ctx.log(f"label classifier of the {d.name} target domain: training or loading from cache")
            self.classifiers[d.name] = train_label_classifier(d.target_train, d.target_test,
                                                              f"{ctx.test.name}-{d.target_letter}",
                                                              cache_dir=ctx.cache_dir)  # fmt: skip

    def update(self, batch):
        lc = self.classifiers[batch.direction.name]
        s = lc.config.image_size
        self.fake[batch.direction.name].append(lc.predict(tensor_to_uint8(batch.fake, s))[0])
        self.real[batch.direction.name].append(lc.predict(tensor_to_uint8(batch.real, s))[0])

    def finish(self):
        m = self.ctx.metrics
        for d in self.ctx.directions:
            lc = self.classifiers[d.name]
            real_targets = np.concatenate([lc.predict(tensor_to_uint8(x, lc.config.image_size))[0]
                                           for x in stream(d.target_test, d.target_indices, None)])  # fmt: skip
            threshold = confident_threshold(real_targets)
            labels = np.asarray(d.source.labels)[d.indices]
            probs = np.concatenate(self.fake[d.name])
            fake = label_scores(probs, labels, threshold)
            m[f"label_classifier_accuracy_{d.target_letter}"] = lc.test_accuracy
            m[f"label_preservation_{d.name}"] = fake["accuracy"]
            m[f"label_preservation_confident_{d.name}"] = fake["confident"]
            m[f"label_rejected_share_{d.name}"] = fake["rejected"]
            m[f"label_floor_{d.name}"] = label_scores(np.concatenate(self.real[d.name]), labels, threshold)["accuracy"]
            self.ctx.report.info[f"label_threshold_{d.name}"] = threshold
            self.ctx.score_for_grids(d.name, probs[np.arange(len(labels)), labels], "P(source label)", self.priority)
            flips = label_flips(probs.argmax(1), labels)
            self.ctx.report.info[f"label_flips_{d.name}"] = flips
            self.ctx.notes.append(worst_flip_note(d.name, flips))


@metric_block
class InceptionBlock(MetricBlock):
    """FID/KID in Inception features against the real target test images, and IS when the file
    gives logits (``--inception-weights``); ``fid_inception_floor`` / ``kid_inception_floor``: the same
    distances for the untranslated inputs (what doing nothing scores)."""

    @classmethod
    def applies(cls, ctx):
        return ctx.inception is not None

    def __init__(self, ctx):
        super().__init__(ctx)
        self.feats, self.logits = _per_direction(), _per_direction()
        self.inputs: list[np.ndarray] = []  # Inception features of the first direction's untranslated inputs

    def update(self, batch):
        f, lg = self.ctx.inception(tensor_to_uint8(batch.fake, batch.fake.shape[-1]))
        self.feats[batch.direction.name].append(f)
        if batch.direction is self.ctx.directions[0]:
            self.inputs.append(self.ctx.inception(tensor_to_uint8(batch.real, batch.real.shape[-1]))[0])
        if lg is not None:
            self.logits[batch.direction.name].append(lg)

    def finish(self):
        m, ext = self.ctx.metrics, self.ctx.inception
        for d in self.ctx.directions:
            real = np.concatenate([ext(tensor_to_uint8(x, x.shape[-1]))[0]
                                   for x in stream(d.target_test, d.target_indices, self.ctx.size)])  # fmt: skip
            distances(f"inception_{d.name}", np.concatenate(self.feats[d.name]), real, m, self.ctx.notes)
            if d is self.ctx.directions[0]:
                distances("inception_floor", np.concatenate(self.inputs), real, m, self.ctx.notes)
            if self.logits[d.name]:
                m[f"is_inception_{d.name}"], m[f"is_inception_{d.name}_std"] = inception_score(
                    np.concatenate(self.logits[d.name])
                )
            else:
                m[f"is_inception_{d.name}"] = None
        if not any(self.logits.values()):
            self.ctx.notes.append(f"Inception Score unavailable: {ext.logits_reason}")


def classifier_info(c: TrainedClassifier) -> dict[str, Any]:
    return {
        "test_accuracy": c.test_accuracy,
        "reliable": c.reliable,
        "classes": c.class_names,
        "garbage_accuracy": c.garbage_accuracy,
        "cached": c.cached,
        "train_seconds": round(c.train_seconds, 2),
        "path": str(c.path) if c.path else None,
        "config": vars(c.config) if hasattr(c.config, "__dict__") else str(c.config),
    }


def directions_of(model, test: DomainPair, train: DomainPair | None, max_images: int | None) -> list[Direction]:
    have = tuple(getattr(model, "directions", ("a2b", "b2a")))
    out = []
    for name in ("a2b", "b2a"):
        if name not in have:
            continue
        src, tgt = (test.source_a, test.source_b) if name == "a2b" else (test.source_b, test.source_a)
        tgt_train = None if train is None else (train.source_b if name == "a2b" else train.source_a)
        back = {"a2b": "b2a", "b2a": "a2b"}[name]
        out.append(Direction(name, back if back in have else None, src, choose(len(src), max_images), tgt,
                             choose(len(tgt), max_images), tgt_train,
                             test.test_a_truth if name == "a2b" else test.test_b_truth))  # fmt: skip
    return out


@torch.no_grad()
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
    batch_size: int = BATCH,
    log: Log = lambda msg: None,
    model_name: str = "",
    adaptation_images: int | None = None,
    classifier_size: int | None = None,
    feature_adaptation: bool = False,
    adaptation_fits: int = ADAPTATION_FITS,
) -> dict[str, Any]:
    """Score a translator (``generator(d)``, ``channels(d)``, ``directions``) on ``test_pair``, write
    ``out_dir/report.json`` and ``report.html``, return the metrics. ``train_pair`` (the train split) is
    needed for the classifier metrics; without it they are absent, with a note. The domain classifier reads
    images at ``classifier_size`` px, by default the data set's choice (``test_pair.classifier_size``)."""
    HEAP.bound()
    device = torch.device(device)
    model.eval()
    size = size or getattr(model, "image_size", None) or model.config.size
    for letter, have, want in zip("AB", (test_pair.channels_a, test_pair.channels_b), model.channels("a2b")):
        if have != want:
            raise ConfigError(f"domain {letter} of {test_pair.name} has {have} channel(s) but the model expects {want}")
    rep = Report()
    inception = InceptionExtractor(inception_weights, device=device) if inception_weights else None
    classifier_config = domain_classifier_config(test_pair, classifier_config, classifier_size)
    ctx = EvalContext(model, test_pair, train_pair, size, device, Path(cache_dir) if cache_dir else None,
                      classifier_config, inception, log, rep)  # fmt: skip
    ctx.directions = directions_of(model, test_pair, train_pair, max_images)
    ctx.adaptation_images = adaptation_images
    ctx.adaptation_fits = adaptation_fits
    ctx.feature_adaptation = feature_adaptation
    rep.info.update(model=model_name, dataset=test_pair.name, size=size, device=str(device),
                    **{f"test_images_{d.name[0]}": len(d.indices) for d in ctx.directions})  # fmt: skip
    rep.metrics["classifier_test_accuracy"] = None  # every standard key is present, None when not measured
    for d in ctx.directions:
        for key in ("success", "floor", "fid_cls", "kid_cls"):
            rep.metrics[f"{key}_{d.name}"] = None
    blocks = [cls(ctx) for cls in METRIC_BLOCKS if cls.applies(ctx)]
    for d in ctx.directions:
        log(f"translating {len(d.indices)} {d.name} test images at {size} px")
        for start in range(0, len(d.indices), batch_size):
            positions = np.arange(start, min(start + batch_size, len(d.indices)))
            real = next(stream(d.source, d.indices[positions], size, len(positions)))
            fake, rec = _translate(model, d, real, device)
            batch = TranslatedBatch(d, positions, real, fake, rec)
            for block in blocks:
                block.update(batch)
    for block in blocks:
        block.finish()
    if feature_adaptation and not any(k.startswith("feature_adaptation_accuracy") for k in rep.metrics):
        ctx.notes.append("--feature-adaptation: measured only on labelled digit pairs; not measured here")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in ctx.directions:
        if d.name in ctx.grid_scores:
            scores, name = ctx.grid_scores[d.name]
            rep.grids += best_worst_grids(model, d, scores, name, size, device, out_dir)
    return write_report(rep, out_dir)


def _translate(model, d: Direction, real: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    fake = translate_tensor(model.generator(d.name), real.to(device)).float().cpu()
    if not d.back:
        return fake, None
    back = model.generator(d.back)
    if stochastic(model):  # the augmented cycle: back with the code inferred from (input, translation)
        back = model.coded_generator(d.back, model.infer_code(d.back, fake, real))
    return fake, translate_tensor(back, fake.to(device)).float().cpu()


def best_worst_grids(model, d: Direction, scores: np.ndarray, score_name: str, size: int, device,
                     out_dir: Path) -> list[tuple[str, str]]:  # fmt: skip
    """input | translated (| reconstructed) rows of the best and worst cases by ``scores``, translated
    again from their files (only these few images are ever held at once)."""
    from gankit.data.grid import make_grid
    from gankit.io import save_image_atomic

    k = min(GRID_CASES, len(scores) // 2) or min(1, len(scores))
    order = np.argsort(-scores, kind="stable")
    grids = []
    for which, chosen in (("best", order[:k]), ("worst", order[::-1][:k])):
        real = next(stream(d.source, d.indices[chosen], size, len(chosen)))
        fake, rec = _translate(model, d, real, device)
        rows = [[real[i], fake[i]] + ([rec[i]] if rec is not None else []) for i in range(len(chosen))]
        labels = ["input", "translated"] + (["reconstructed"] if rec is not None else [])
        file = f"grid_{d.name}_{which}.png"
        save_image_atomic(make_grid(rows, labels, [f"{scores[i]:.3g}" for i in chosen]), out_dir / file)
        grids.append((f"{d.name}: {which} {k} by {score_name}", file))
    return grids


def label_preservation(classifier: TrainedClassifier, images: torch.Tensor, labels) -> float:
    """Share of ``images`` (uint8) whose predicted label equals ``labels`` (their sources' labels)."""
    probs, _ = classifier.predict(images)
    return float((probs.argmax(1) == np.asarray(labels)).mean())
