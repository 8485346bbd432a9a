"""Small image classifiers and the one supervised training loop they share: the LeNet that CyCADA's
semantic-consistency loss uses as its fixed task network for digits (Hoffman et al. 2018, §4.1), the
:class:`SmallCNN` of the evaluation classifiers (:mod:`gankit.metrics`), and :func:`fit_classifier`,
which trains both."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LeNet(nn.Module):
    """LeNet-5 as CyCADA uses it for digits (two 5x5 convs with max-pooling, a 500-unit hidden layer,
    dropout): deliberately another family than the evaluation judge (3x3 conv + batch-norm stages), so
    that a translator trained against one cannot simply fit the other. Input: ``in_channels`` images
    in [-1, 1] of any size ≥ 16 (global average pooling before the hidden layer)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 20, hidden: int = 500):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.Conv2d(width, 50, 5, padding=2), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(50 * 16, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(hidden, num_classes)
        )
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class SmallCNN(nn.Module):
    """Four 3x3 conv-BN-ReLU stages (three max-pools), global average pooling (the ``width * 8``-d
    penultimate features) and a linear head. Input: 3-channel images in [-1, 1]."""

    def __init__(self, num_classes: int = 2, width: int = 16, in_channels: int = 3):
        super().__init__()
        chans = [in_channels, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
            ]
            layers += [nn.ReLU(inplace=True)] + ([nn.MaxPool2d(2)] if i < 3 else [])
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], num_classes)
        self.feature_dim = chans[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def feature_discriminator(feature_dim: int, hidden: int = 500) -> nn.Sequential:
    """ADDA's feature discriminator (Tzeng et al. 2017; CyCADA's D_feat for digits): two hidden layers of
    500 units, one logit ("these features come from the source")."""
    return nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, 1))  # fmt: skip


def alignment_ramp(progress: float) -> float:
    """DANN's schedule for the adversarial weight (Ganin et al., JMLR 2016): 2 / (1 + exp(−10 p)) − 1,
    0 at the start and ~1 after half of the run, so the features are aligned once they classify."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


@torch.enable_grad()
def fit_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    flip: bool = False,
    to_input: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    target_images: torch.Tensor | None = None,
    align_weight: float = 1.0,
) -> nn.Module:
    """Cross-entropy training with Adam under a one-cycle learning rate, random horizontal flips
    (``flip``) and random translations of up to 1/8 of the image size (reflect padding): the recipe of
    every classifier the project trains. ``to_input`` turns a batch of ``images`` (e.g. uint8) into
    network inputs; every random draw comes from ``generator``, so a seed fixes the result.

    With unlabelled ``target_images`` the classifier's features are also aligned across domains, as
    CyCADA's feature-level adaptation does (Hoffman et al. 2018, eq. 5, L_GAN(f_T, D_feat)): a
    :func:`feature_discriminator` learns to tell source features from target features, and the
    classifier is trained to make target features look like source ones (inverted labels), weighted
    by ``align_weight`` × :func:`alignment_ramp`; the discriminator takes Adam at a tenth of the
    learning rate with β1 0.5, so that it does not overpower the classifier before the features
    classify. Both domains share each batch (batch norm sees both).
    The model needs ``features(x)`` and ``head``. No target label is read."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.15)
    size = images.shape[-1]
    pad = max(1, size // 8)
    if target_images is not None:
        disc = feature_discriminator(model.head.in_features).to(images.device)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=lr / 10, betas=(0.5, 0.999))
    model.train()
    for step in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        x, y = _augment(to_input(images[idx]), size, pad, flip, generator), labels[idx]
        if target_images is None:
            loss = F.cross_entropy(model(x), y)
        else:
            t_idx = torch.randint(len(target_images), (batch_size,), generator=generator)
            t = _augment(to_input(target_images[t_idx]), size, pad, flip, generator)
            feats = model.features(torch.cat([x, t]))
            source, target = feats[:batch_size], feats[batch_size:]
            real, fake = disc(source.detach()), disc(target.detach())
            disc_loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
                F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))  # fmt: skip
            disc_opt.zero_grad(set_to_none=True)
            disc_loss.backward()
            disc_opt.step()
            fooled = disc(target)
            weight = align_weight * alignment_ramp(step / steps)
            loss = F.cross_entropy(model.head(source), y) + \
                weight * F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def _augment(x: torch.Tensor, size: int, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips (``flip``) and one random shift of up to ``pad`` pixels for the batch."""
    if flip:
        flipped = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx, dy = (int(v) for v in torch.randint(2 * pad + 1, (2,), generator=generator))
    return x[:, :, dy : dy + size, dx : dx + size]
