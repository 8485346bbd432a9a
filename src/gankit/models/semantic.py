"""CyCADA's semantic-consistency loss (Hoffman et al., ICML 2018, eq. 4): a task classifier f trained on
a source domain's labels, then frozen, reads each image before and after translation, and the
translation is penalised by the cross-entropy between f's reading of the translated image and the
label f predicted for the untranslated one,

    L_sem = CE(f(G(a)), argmax f(a)) + CE(f(F(b)), argmax f(b)).

It fights CycleGAN's label flipping (a 3 translated into a 5 is still cycle-consistent). Which
domain's labels train f (``--semantic-source``): ``a`` or ``b`` use one source for both terms, as in
the paper's single-source setting; ``both`` trains one classifier per domain and each direction's
term reads its own source domain's classifier, so neither direction's loss sees its target's labels.
Target labels never enter training; they exist for evaluation only.

A classifier trained on gray digits reads a coloured translation (MNIST → MNIST-M) poorly, and L_sem
then pulls the translation back towards gray. ``recolour`` trains a gray source's classifier on
random recolourings of its digits instead (:func:`random_recolour`), a source-side augmentation that
reads no target image. Likewise a classifier trained on one handwriting reads another poorly (a USPS
LeNet reads MNIST's thin, centred digits at ~75 %), and L_sem then rewards translations that this
classifier, not a reader of the target domain, calls right; ``reshape`` trains it under random warps and
stroke widths (:func:`random_reshape`), again from source images only.

Every source-only reader tried still reads the source digit in translations that a reader of the
target calls another digit: the two handwritings' readers disagree there, and L_sem cannot see it.
``target_readers`` lets a reader of the target domain judge each translation instead, still without a
target label (:func:`train_target_reader`): a classifier trained on the source labels with its
features aligned to the unlabelled target images (CyCADA's feature level, eq. 5) pseudo-labels the
target's real train images, and a LeNet learns the target's handwriting from the confident ones —
self-training across domains (Lee, ICML-W 2013; Saito et al., ICML 2017). The source classifier
still gives the label of each untranslated source image:

    L_sem = CE(r_B(G(a)), argmax f_A(a)) + CE(r_A(F(b)), argmax f_B(b))   (r_D: the reader of D)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gankit.data.sources import ImageSource
from gankit.errors import DataError
from gankit.nn.classifiers import LeNet, SmallCNN, fit_classifier
from gankit.nn.layers import luminance

SEMANTIC_SOURCES = ("a", "b", "both")
SEMANTIC_READERS = ("auto", "source", "target")
SEED_OFFSET = 104729
"""Added to the run's seed for the classifier: never the evaluation judge's seed (0)."""
BATCH_SIZE = 64
LR = 1e-3
LABELLER = {"width": 16, "batch_size": 64, "lr": 2e-3, "steps_per_reader_step": 1.2}  # fmt: skip
"""The pseudo-labeller of :func:`train_target_reader`: the evaluation's feature-level recipe (2,400 steps
beside the reader's default 2,000)."""
PSEUDO_LABEL_CONFIDENCE = 0.9


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images in [-1, 1] with ``channels`` channels: colour → gray by ITU-R 601 luma, gray → colour by
    repetition (for a classifier of one domain reading images of the other, e.g. MNIST ↔ MNIST-M)."""
    if x.shape[1] == channels:
        return x
    if channels == 1:
        return luminance(x)
    return x.expand(-1, channels, -1, -1)


def source_tensor(source: ImageSource, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All labelled images of ``source`` square-resized to ``size`` as uint8 (N, C, size, size), and their
    labels (N,)."""
    labels = labels_tensor(source)  # before reading every image
    return images_tensor(source, size), labels


def labels_tensor(source: ImageSource) -> torch.Tensor:
    """The labels of ``source`` (N,); a clear error when it has none."""
    if source.labels is None:
        raise DataError(f"{source.description}: no labels; --semantic-loss needs labelled source images")
    return torch.from_numpy(np.asarray(source.labels, dtype=np.int64))


def images_tensor(source: ImageSource, size: int) -> torch.Tensor:
    """All images of ``source`` square-resized to ``size`` as uint8 (N, C, size, size); labels unread."""
    if len(source) == 0:
        raise DataError(f"{source.description}: no images")
    images = None
    for i in range(len(source)):
        img = source.load(i)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BICUBIC)  # as the training crops
        pixels = np.asarray(img, dtype=np.uint8)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if images is None:
            images = np.empty((len(source), *pixels.shape), np.uint8)
        images[i] = pixels
    return torch.from_numpy(images)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str):
    """Seed the global RNGs of the CPU and of ``device`` (the dropout draws of a model trained there) for the
    block, and restore the caller's states after it: a classifier trained inside leaves the run's streams as
    they were."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


def uint8_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images with ``channels`` channels (:func:`match_channels`)."""
    if x.shape[1] == channels:
        return x
    return match_channels(to_unit(x), channels).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def probabilities(model: nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Softmax of ``model`` on uint8 ``images`` (N, K)."""
    model.eval()
    return torch.cat([model(to_unit(images[i : i + batch])).softmax(1) for i in range(0, len(images), batch)])


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    if len(images) == 0:
        return 0.0
    return float((probabilities(model, images, batch).argmax(1) == labels).float().mean())


def smooth_noise(shape: tuple[int, ...], size: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:  # fmt: skip
    """Uniform noise of ``shape`` (N, C, h, w) bilinearly upsampled to ``size``: a smooth random field. The
    draws come from ``generator`` (on the CPU, so that a seed gives the same field on every device)."""
    coarse = torch.rand(shape, generator=generator).to(device)
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def random_recolour(gray: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gray digits in [-1, 1] (N, 1, H, W) as random colour images in [-1, 1] (N, 3, H, W): each image is kept
    as it is, inverted, or set as |background − digit| on a per-channel background of coarse and fine
    smooth noise at a random level and contrast — the blend by which MNIST-M is made from photo patches
    (Ganin et al., JMLR 2016, §5.2.2), with noise in place of the photos."""
    digit = gray.add(1).div(2).expand(-1, 3, -1, -1)
    n, size, device = len(gray), gray.shape[-1], gray.device
    noise = (smooth_noise((n, 3, 4, 4), size, generator, device)
             + smooth_noise((n, 3, 16, 16), size, generator, device)) / 2  # fmt: skip
    level = torch.rand(n, 3, 1, 1, generator=generator).to(device)
    background = level + torch.rand(n, 3, 1, 1, generator=generator).to(device) * (1 - level) * noise
    mode = torch.randint(3, (n, 1, 1, 1), generator=generator).to(device)
    out = torch.where(mode == 0, digit, torch.where(mode == 1, (background - digit).abs(), 1 - digit))
    return out * 2 - 1


def random_reshape(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images in [-1, 1] (N, C, H, W), bright strokes on a dark ground, under a random affine warp
    (log-uniform scale 0.65–1.55, rotation ±12°, shear ±0.15) and a random stroke width (a blend towards
    a 3×3 dilation or erosion): the distortions that teach digit classifiers invariance (Simard et al.,
    ICDAR 2003), so that a classifier of one handwriting reads another (MNIST's thin centred digits ↔
    USPS's thick full-frame ones) without reading a target image."""
    n = len(x)
    scale = torch.exp(np.log(0.65) + np.log(1.55 / 0.65) * torch.rand(n, generator=generator))
    angle = (torch.rand(n, generator=generator) * 2 - 1) * (12 * np.pi / 180)
    shear = (torch.rand(n, generator=generator) * 2 - 1) * 0.15
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin + shear, torch.zeros(n)], 1),
                         torch.stack([sin, cos, torch.zeros(n)], 1)], 1)  # fmt: skip
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    warped = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
    amount = ((torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * 0.7).to(x.device)
    dilated = F.max_pool2d(warped, 3, 1, 1)
    eroded = -F.max_pool2d(-warped, 3, 1, 1)
    return warped + amount.clamp(min=0) * (dilated - warped) + (-amount).clamp(min=0) * (eroded - warped)


def train_task_classifier(train: ImageSource, test: ImageSource | None, channels: int, size: int, *, seed: int,
                          steps: int, num_classes: int = 10, recolour: bool = False, reshape: bool = False,
                          device: torch.device | str = "cpu",
                          read: Callable[[ImageSource], torch.Tensor] | None = None,
                          ) -> tuple[LeNet, float | None]:  # fmt: skip
    """A :class:`LeNet` trained on ``train``'s labels (seeded), frozen; and its accuracy on ``test`` (the same
    domain's held-out split, None without one). ``recolour`` (gray sources only) trains a colour classifier
    on :func:`random_recolour` of the digits; ``reshape`` trains on :func:`random_reshape` of them. Trained
    on ``device`` (the run's: on a GPU this is where the steps are cheap); the random draws stay on the CPU.
    ``read`` gives a split's uint8 images (default :func:`images_tensor` at ``size``; a caller that reads
    the same splits again passes its cache)."""
    read = read or (lambda split: images_tensor(split, size))
    labels = labels_tensor(train).to(device)  # before reading every image
    images = read(train).to(device)
    if int(labels.max()) >= num_classes or int(labels.min()) < 0:
        raise DataError(f"{train.description}: labels must lie in 0..{num_classes - 1}")
    if recolour and channels != 1:
        raise DataError(f"{train.description}: recolouring needs gray source images, these have {channels} channels")
    generator = torch.Generator().manual_seed(seed)

    def to_input(x: torch.Tensor) -> torch.Tensor:
        x = random_reshape(to_unit(x), generator) if reshape else to_unit(x)
        return random_recolour(x, generator) if recolour else x

    with seeded(seed, device):  # the seed alone fixes the weights and the dropout draws
        model = LeNet(3 if recolour else channels, num_classes).to(device)
        fit_classifier(model, images, labels, steps=steps, batch_size=BATCH_SIZE, lr=LR, generator=generator,
                       to_input=to_input)  # fmt: skip
    model.requires_grad_(False)
    held_out = None
    if test is not None and test.labels is not None:
        test_labels, test_images = labels_tensor(test).to(device), read(test).to(device)
        held_out = accuracy(model, test_images.expand(-1, model.in_channels, -1, -1), test_labels)
    return model.eval(), held_out


def train_target_reader(source_images: torch.Tensor, source_labels: torch.Tensor, target_images: torch.Tensor, *,
                        seed: int, steps: int, num_classes: int = 10,
                        confidence: float = PSEUDO_LABEL_CONFIDENCE) -> tuple[LeNet, float]:  # fmt: skip
    """A frozen :class:`LeNet` that reads the target domain's real images, trained without a target label;
    and the share of the target images it learnt from. uint8 inputs; the reader takes the target's channels.

    A :class:`SmallCNN` learns the source labels with its features aligned to the unlabelled target
    images (:func:`fit_classifier` with ``target_images``: CyCADA's feature level, which reads USPS ↔
    MNIST at ~96 % where a source-only classifier reads 74–93 %); it labels the target images, and those
    it labels with probability ≥ ``confidence`` train the LeNet from scratch. The LeNet never sees a
    source image or a translation, so it reads a translation as a reader of the target's handwriting
    does, not as a reader of the source's (whose blind spot L_sem cannot otherwise see). Trained where
    ``target_images`` lie."""
    channels, device = target_images.shape[1], target_images.device
    source_images = uint8_channels(source_images.to(device), channels)
    source_labels = source_labels.to(device)
    generator = torch.Generator().manual_seed(seed)
    with seeded(seed, device):
        labeller = SmallCNN(num_classes, LABELLER["width"], in_channels=channels).to(device)
        fit_classifier(labeller, source_images, source_labels,
                       steps=max(1, round(steps * LABELLER["steps_per_reader_step"])),
                       batch_size=LABELLER["batch_size"], lr=LABELLER["lr"], generator=generator, to_input=to_unit,
                       target_images=target_images)  # fmt: skip
        best, pseudo = probabilities(labeller, target_images).max(1)
        keep = best >= confidence
        if int(keep.sum()) < num_classes * BATCH_SIZE:  # too few confident: learn from every pseudo-label
            keep = torch.ones_like(keep)
        reader = LeNet(channels, num_classes).to(device)
        fit_classifier(reader, target_images[keep], pseudo[keep], steps=steps, batch_size=BATCH_SIZE, lr=LR,
                       generator=generator, to_input=to_unit)  # fmt: skip
    return reader.requires_grad_(False).eval(), float(keep.float().mean())


class SemanticConsistency(nn.Module):
    """The frozen task classifiers and L_sem. Not a trainable network of the model: it has no optimizer,
    no parameter requires grad, and it stays in eval mode (no dropout) whatever the model's mode."""

    def __init__(self, source: str, classifiers: Mapping[str, LeNet]):
        super().__init__()
        if source not in SEMANTIC_SOURCES:
            raise ValueError(f"semantic source must be one of {SEMANTIC_SOURCES}, got {source!r}")
        self.source = source
        self.classifiers = nn.ModuleDict(dict(classifiers)).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> SemanticConsistency:
        return super().train(False)

    def teacher(self, direction: str) -> str:
        """The domain whose labels train ``direction``'s classifiers: its source under ``both``, else the one."""
        return direction[0] if self.source == "both" else self.source

    def reader(self, domain: str, teacher: str) -> LeNet:
        """The classifier that reads ``domain``'s images for a loss term taught by ``teacher``'s labels: the
        teacher's own classifier, or the reader of ``domain`` it taught (:func:`train_target_reader`)."""
        return self.classifiers[f"{domain}_from_{teacher}" if f"{domain}_from_{teacher}" in self.classifiers
                                else teacher]  # fmt: skip

    def classifier_for(self, direction: str) -> LeNet:
        """The classifier that judges ``direction``'s translations."""
        return self.reader(direction[-1], self.teacher(direction))

    def label_reader(self, direction: str) -> LeNet:
        """The classifier that labels ``direction``'s untranslated source images."""
        return self.reader(direction[0], self.teacher(direction))

    def loss(self, direction: str, translated: torch.Tensor, source_images: torch.Tensor) -> torch.Tensor:
        """CE(f(translated), argmax f'(source_images)): gradients reach the translator, never f or f'."""
        f, labeller = self.classifier_for(direction), self.label_reader(direction)
        with torch.no_grad():
            target = labeller(match_channels(source_images, labeller.in_channels)).argmax(1)
        return F.cross_entropy(f(match_channels(translated, f.in_channels)), target)


def build_semantic_consistency(source: str, domains: Mapping[str, tuple[ImageSource, ImageSource | None, int]],
                               size: int, *, seed: int, steps: int, recolour: bool = False, reshape: bool = False,
                               target_readers: bool = False, device: torch.device | str = "cpu",
                               log: Callable[[str], None] = print) -> SemanticConsistency:  # fmt: skip
    """Train the classifiers ``source`` needs, on ``device``: ``domains`` maps 'a'/'b' to (train split, test
    split or None, channels). ``recolour`` recolours every gray source whose other domain is in colour;
    ``reshape`` warps every source's digits; ``target_readers`` adds, per source, a reader of the other domain
    (:func:`train_target_reader`; the other domain's test labels only report its accuracy)."""
    classifiers = {}
    loaded: dict[int, torch.Tensor] = {}

    def images(split: ImageSource) -> torch.Tensor:  # a2b's target is b2a's source: read each split once
        if id(split) not in loaded:
            loaded[id(split)] = images_tensor(split, size).to(device)
        return loaded[id(split)]

    letters = ("a", "b") if source == "both" else (source,)
    for letter in letters:  # every source labelled, before minutes of training on the first
        labels_tensor(domains[letter][0])
    for letter in letters:
        train, test, channels = domains[letter]
        other = "b" if letter == "a" else "a"
        recoloured = recolour and channels == 1 and domains[other][2] == 3
        start = time.perf_counter()
        extras = "".join(f", {word}" for word, on in (("recoloured", recoloured), ("reshaped", reshape)) if on)
        log(f"semantic loss: training the domain-{letter.upper()} task classifier (LeNet, {steps} steps, "
            f"{len(train)} labelled images{extras})")  # fmt: skip
        classifiers[letter], held_out = train_task_classifier(train, test, channels, size, seed=seed + SEED_OFFSET,
                                                              steps=steps, recolour=recoloured,
                                                              reshape=reshape, device=device,
                                                              read=images)  # fmt: skip
        score = f"{held_out:.2%} on its held-out split" if held_out is not None else "no held-out split"
        log(f"semantic loss: domain-{letter.upper()} classifier {score}, {time.perf_counter() - start:.0f} s")
        if target_readers:
            start = time.perf_counter()
            other_train, other_test, _ = domains[other]
            log(f"semantic loss: training a reader of domain {other.upper()} from domain {letter.upper()}'s labels "
                f"(feature-aligned pseudo-labeller on {len(other_train)} unlabelled {other.upper()} images, then "
                f"LeNet, {steps} steps)")  # fmt: skip
            reader, kept = train_target_reader(images(train), labels_tensor(train), images(other_train),
                                               seed=seed + SEED_OFFSET + 1, steps=steps)  # fmt: skip
            classifiers[f"{other}_from_{letter}"] = reader
            score = "no labelled test split"
            if other_test is not None and other_test.labels is not None:
                read = accuracy(reader, images(other_test), labels_tensor(other_test).to(device))
                score = f"{read:.2%} on its test split (reported only)"
            log(f"semantic loss: domain-{other.upper()} reader learnt from {kept:.0%} of the pseudo-labels, {score}, "
                f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    return SemanticConsistency(source, classifiers)


def semantic_state(module: SemanticConsistency) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_semantic_state(source: str, state: Mapping[str, torch.Tensor],
                        device: torch.device) -> SemanticConsistency:  # fmt: skip
    """Rebuild the frozen classifiers (and target readers) from a checkpoint (resume without training them
    again); each one's input channels come from its first conv's weights."""
    names = sorted({k.split(".")[1] for k in state})
    module = SemanticConsistency(source, {x: LeNet(state[f"classifiers.{x}.body.0.weight"].shape[1]) for x in names})
    module.load_state_dict(dict(state))
    return module.to(device).eval()
