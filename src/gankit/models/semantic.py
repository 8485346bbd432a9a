"""CyCADA's semantic-consistency loss (Hoffman et al., ICML 2018, eq. 4): a task classifier f trained on
a source domain's labels, then frozen, reads each image before and after translation, and the
translation is penalised by the cross-entropy between f's reading of the translated image and the
label f predicted for the untranslated one,

    L_sem = CE(f(G(a)), argmax f(a)) + CE(f(F(b)), argmax f(b)).

It fights CycleGAN's label flipping (a 3 translated into a 5 is still cycle-consistent). Which
domain's labels train f (``--semantic-source``): ``a`` or ``b`` use one source for both terms, as in
the paper's single-source setting; ``both`` trains one classifier per domain and each direction's
term reads its own source domain's classifier, so neither direction's loss sees its target's labels.
Target labels never enter training; they exist for evaluation only."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gankit.data.sources import ImageSource
from gankit.errors import DataError
from gankit.nn.classifiers import LeNet, fit_classifier

SEMANTIC_SOURCES = ("a", "b", "both")
SEED_OFFSET = 104729
"""Added to the run's seed for the classifier: never the evaluation judge's seed (0)."""
BATCH_SIZE = 64
LR = 1e-3
LUMA = (0.299, 0.587, 0.114)


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images in [-1, 1] with ``channels`` channels: colour → gray by ITU-R 601 luma, gray → colour by
    repetition (for a classifier of one domain reading images of the other, e.g. MNIST ↔ MNIST-M)."""
    if x.shape[1] == channels:
        return x
    if channels == 1:
        return (x * x.new_tensor(LUMA)[None, :, None, None]).sum(1, keepdim=True)
    return x.expand(-1, channels, -1, -1)


def source_tensor(source: ImageSource, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All labelled images of ``source`` square-resized to ``size`` as uint8 (N, C, size, size), and their
    labels (N,)."""
    if source.labels is None:
        raise DataError(f"{source.description}: no labels; --semantic-loss needs labelled source images")
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
    return torch.from_numpy(images), torch.from_numpy(np.asarray(source.labels, dtype=np.int64))


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    hits = sum(int((model(to_unit(images[i : i + batch])).argmax(1) == labels[i : i + batch]).sum())
               for i in range(0, len(images), batch))  # fmt: skip
    return hits / max(1, len(images))


def train_task_classifier(train: ImageSource, test: ImageSource | None, channels: int, size: int, *, seed: int,
                          steps: int, num_classes: int = 10) -> tuple[LeNet, float | None]:  # fmt: skip
    """A :class:`LeNet` trained on ``train``'s labels (seeded), frozen; and its accuracy on ``test`` (the same
    domain's held-out split, None without one)."""
    images, labels = source_tensor(train, size)
    if int(labels.max()) >= num_classes or int(labels.min()) < 0:
        raise DataError(f"{train.description}: labels must lie in 0..{num_classes - 1}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LeNet(channels, num_classes)
    fit_classifier(model, images, labels, steps=steps, batch_size=BATCH_SIZE, lr=LR,
                   generator=torch.Generator().manual_seed(seed), to_input=to_unit)  # fmt: skip
    model.requires_grad_(False)
    held_out = accuracy(model, *source_tensor(test, size)) if test is not None and test.labels is not None else None
    return model.eval(), held_out


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

    def classifier_for(self, direction: str) -> LeNet:
        """The classifier that judges ``direction``: its source domain's under ``both``, else the one source."""
        letter = direction[0] if self.source == "both" else self.source
        return self.classifiers[letter]

    def loss(self, direction: str, translated: torch.Tensor, source_images: torch.Tensor) -> torch.Tensor:
        """CE(f(translated), argmax f(source_images)): gradients reach the translator, never f."""
        f = self.classifier_for(direction)
        with torch.no_grad():
            target = f(match_channels(source_images, f.in_channels)).argmax(1)
        return F.cross_entropy(f(match_channels(translated, f.in_channels)), target)


def build_semantic_consistency(source: str, domains: Mapping[str, tuple[ImageSource, ImageSource | None, int]],
                               size: int, *, seed: int, steps: int,
                               log: Callable[[str], None] = print) -> SemanticConsistency:  # fmt: skip
    """Train the classifiers ``source`` needs: ``domains`` maps 'a'/'b' to (train split, test split or None,
    channels)."""
    classifiers = {}
    for letter in ("a", "b") if source == "both" else (source,):
        train, test, channels = domains[letter]
        start = time.perf_counter()
        log(f"semantic loss: training the domain-{letter.upper()} task classifier (LeNet, {steps} steps, "
            f"{len(train)} labelled images)")  # fmt: skip
        classifiers[letter], held_out = train_task_classifier(train, test, channels, size, seed=seed + SEED_OFFSET,
                                                              steps=steps)  # fmt: skip
        score = f"{held_out:.2%} on its held-out split" if held_out is not None else "no held-out split"
        log(f"semantic loss: domain-{letter.upper()} classifier {score}, {time.perf_counter() - start:.0f} s")
    return SemanticConsistency(source, classifiers)


def semantic_state(module: SemanticConsistency) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_semantic_state(source: str, state: Mapping[str, torch.Tensor], channels: Mapping[str, int],
                        device: torch.device) -> SemanticConsistency:  # fmt: skip
    """Rebuild the frozen classifiers from a checkpoint (resume without training them again)."""
    letters = sorted({k.split(".")[1] for k in state})
    module = SemanticConsistency(source, {x: LeNet(channels[x]) for x in letters})
    module.load_state_dict(dict(state))
    return module.to(device).eval()
