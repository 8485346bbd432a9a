"""How much the resize protocol moves Inception FID on one real set: apple2orange's test apples vs
test oranges (266 vs 248 photos, 256 px JPEGs), FID in the 2048-d pool features of a local TorchScript
Inception (``--inception-weights``, e.g. ``auto`` after ``pip install gankit[inception]``), with the
images brought to 299 px

- as gankit does (clean-fid's convention): PIL bicubic on uint8 pixels, antialiased;
- as pytorch-fid does: ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` on
  float tensors, no antialiasing.

Also the same two at an evaluation size of 64 px (images first shrunk to 64 with PIL bicubic, as
``gankit eval --size 64`` does), where upscaling 64 → 299 is what differs. Prints a table and writes
benchmarks/results-fid-resize.json::

    python benchmarks/fid_resize.py --data-root ../shared/data --inception-weights auto
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data.recipes import load_recipe
from gankit.metrics.classifier import load_uint8
from gankit.metrics.fid import fid_from_features
from gankit.metrics.inception import INCEPTION_SIZE, InceptionExtractor


class BilinearExtractor(InceptionExtractor):
    """The same network, fed images resized the pytorch-fid way (bilinear on float tensors)."""

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        return x.round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--inception-weights", default="auto")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results-fid-resize.json"))
    args = p.parse_args()
    test = load_recipe("apple2orange", args.data_root, "test")
    rows = []
    for size in (256, 64):
        apples, oranges = load_uint8(test.source_a, size), load_uint8(test.source_b, size)
        for name, cls in (("PIL bicubic on uint8 (gankit, clean-fid)", InceptionExtractor),
                          ("bilinear on tensors (pytorch-fid)", BilinearExtractor)):  # fmt: skip
            ext = cls(args.inception_weights)
            fa, fb = ext(apples)[0], ext(oranges)[0]
            rows.append({"size": size, "resize": name, "fid_apples_vs_oranges": round(float(fid_from_features(fa, fb)),
                                                                                        2)})  # fmt: skip
            print(rows[-1], flush=True)
    for size in (256, 64):
        a, b = (r["fid_apples_vs_oranges"] for r in rows if r["size"] == size)
        print(f"{size} px: bilinear − bicubic = {b - a:+.2f} FID ({100 * (b - a) / a:+.1f} %)")
    args.out.write_text(json.dumps({"rows": rows, "numpy": np.__version__}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
