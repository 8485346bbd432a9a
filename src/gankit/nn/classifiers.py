"""Small image classifiers and the one supervised training loop they share: the LeNet that CyCADA's
semantic-consistency loss uses as its fixed task network for digits (Hoffman et al. 2018, §4.1), and
:func:`fit_classifier`, which also trains the evaluation classifiers of :mod:`gankit.metrics`."""

from __future__ import annotations

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
) -> nn.Module:
    """Cross-entropy training with Adam under a one-cycle learning rate, random horizontal flips
    (``flip``) and random translations of up to 1/8 of the image size (reflect padding): the recipe of
    every classifier the project trains. ``to_input`` turns a batch of ``images`` (e.g. uint8) into
    network inputs; every random draw comes from ``generator``, so a seed fixes the result."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.15)
    size = images.shape[-1]
    pad = max(1, size // 8)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        x, y = to_input(images[idx]), labels[idx]
        if flip:
            flipped = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flipped[:, None, None, None], x.flip(3), x)
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dx, dy = (int(v) for v in torch.randint(2 * pad + 1, (2,), generator=generator))
        x = x[:, :, dy : dy + size, dx : dx + size]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()
