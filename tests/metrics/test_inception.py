"""The TorchScript Inception path with tiny scripted stand-ins (real weights cannot be downloaded),
and the Inception Score on hand-computed logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gankit.errors import CheckpointError
from gankit.metrics.inception import InceptionExtractor, inception_score


class FeaturesOnly(nn.Module):
    """Pool-like features plus the input's min, max and width (to check the preprocessing)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 7, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _features(self.conv(x), x)


def _features(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    f = torch.relu(h).mean(dim=(2, 3))
    n = x.shape[0]
    stats = torch.stack([x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)), torch.full([n], float(x.shape[-1]))], 1)
    return torch.cat([f, stats], 1)


class WithLogits(nn.Module):
    """Features as above and 5 class logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 7, stride=8)
        self.fc = nn.Linear(9, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = _features(self.conv(x), x)
        return f, self.fc(f)


def save_scripted(module: nn.Module, path):
    torch.manual_seed(0)
    torch.jit.script(module.eval()).save(str(path))
    return path


def _images(n=4, seed=0):
    return torch.randint(0, 256, (n, 3, 40, 40), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_features_only_and_preprocessing(tmp_path):
    ext = InceptionExtractor(save_scripted(FeaturesOnly(), tmp_path / "f.pt"))
    feats, logits = ext(_images())
    assert feats.shape == (4, 9) and logits is None and "only pool features" in ext.logits_reason
    assert np.all(feats[:, 6] >= -1) and np.all(feats[:, 7] <= 1) and np.all(feats[:, 6] < -0.9)
    assert np.all(feats[:, 8] == 299)


def test_with_logits_and_byte_range(tmp_path):
    ext = InceptionExtractor(save_scripted(WithLogits(), tmp_path / "l.pt"), input_size=64, value_range="byte")
    feats, logits = ext(_images())
    assert logits.shape == (4, 5) and np.all(feats[:, 8] == 64) and feats[:, 7].max() > 200


def test_bad_files_name_the_path(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="bad.pt"):
        InceptionExtractor(bad)
    with pytest.raises(CheckpointError, match="missing.pt"):
        InceptionExtractor(tmp_path / "missing.pt")


def test_inception_score_hand_computed():
    assert inception_score(np.zeros((20, 7)), splits=2)[0] == pytest.approx(1.0)  # uniform: KL 0
    confident = np.full((30, 3), -1e4)
    confident[np.arange(30), np.arange(30) % 3] = 0.0  # one-hot, classes balanced → IS = 3
    mean, std = inception_score(confident, splits=1)
    assert mean == pytest.approx(3.0, rel=1e-9) and std == 0.0
    assert inception_score(confident, splits=10)[0] == pytest.approx(3.0, rel=1e-9)
    p = np.array([[0.5, 0.5], [1.0, 1e-300]])
    q = p.mean(0)
    kl = np.mean([np.sum(r * np.log(r / q)) for r in p])
    assert inception_score(np.log(p), splits=1)[0] == pytest.approx(math.exp(kl), rel=1e-9)


def test_auto_weights_need_the_optional_package(monkeypatch):
    import importlib.util

    from gankit.errors import CheckpointError
    from gankit.metrics.inception import resolve_weights

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError, match=r"gankit\[inception\]"):
        resolve_weights("auto")
    assert str(resolve_weights("x.pt")) == "x.pt"
