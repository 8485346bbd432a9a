"""Periodic sample grids (real | translated | reconstructed, both directions) and the run's HTML
page, as seed 000's test_generator and seed 003's test() do, so progress can be seen at a glance."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageOps

from gankit.data.images import pil_to_tensor

N_SAMPLES = 4


def center_square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` then a centred square crop: a fixed, undistorted view for grids."""
    return ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)


def fixed_batch(source, size: int, n: int = N_SAMPLES) -> torch.Tensor:
    idx = torch.linspace(0, len(source) - 1, min(n, len(source))).round().long().unique()
    return torch.stack([pil_to_tensor(center_square(source.load(int(i)), size)) for i in idx])


class SampleWriter:
    """Writes ``samples/step_XXXXXXX.png`` and keeps ``losses.png`` and ``index.html`` current."""

    def __init__(self, trainer, run_dir: Path):
        from gankit.training.data import domain_pair

        self.trainer, self.run_dir = trainer, Path(run_dir)
        c = trainer.config
        try:
            pair = domain_pair(c, "test")
        except Exception:  # recipes without a test split show training images
            pair = trainer.pair
        self.real_a = fixed_batch(pair.source_a, c.size)
        self.real_b = fixed_batch(pair.source_b, c.size)

    @torch.no_grad()
    def write(self, step: int) -> Path:
        from gankit.io import save_image_atomic
        from gankit.training.grid import make_grid

        model = self.trainer.model
        was_training = model.training
        model.eval()
        dev = self.trainer.device
        a, b = self.real_a.to(dev), self.real_b.to(dev)
        out = model.cycle(a, b)
        model.train(was_training)
        rows = [[a[i], out.fake_b[i], out.rec_a[i]] for i in range(len(a))]
        rows += [[b[i], out.fake_a[i], out.rec_b[i]] for i in range(len(b))]
        row_labels = [f"A{i}" for i in range(len(a))] + [f"B{i}" for i in range(len(b))]
        grid = make_grid([[t.float().cpu() for t in r] for r in rows],
                         labels=["real", "translated", "reconstructed"], row_labels=row_labels)  # fmt: skip
        return save_image_atomic(grid, self.run_dir / "samples" / f"step_{step:07d}.png")

    def refresh_report(self) -> None:
        from gankit.training.report import plot_losses, write_index_html

        csv = self.run_dir / "losses.csv"
        if csv.is_file() and csv.stat().st_size > 0:
            plot_losses(csv, self.run_dir / "losses.png")
        samples = sorted((self.run_dir / "samples").glob("step_*.png"))
        entries = [(int(p.stem.split("_")[1]), f"samples/{p.name}") for p in samples]
        c = self.trainer.config
        data = "folders" if c.domain_a else c.dataset
        summary = {
            "data": f"{data}: {self.trainer.pair.description or ''}".strip(": "),
            "progress": f"step {self.trainer.step} of {c.steps}",
            "model": f"{c.generator} generator ({c.blocks} blocks) · {c.discriminator} discriminator · {c.gan_loss}",
            "images": f"{c.size}px crops, channels A={c.channels_a} B={c.channels_b}, batch {c.batch_size}",
            "grids": "each row: real | translated | reconstructed (A rows: A→B→A, B rows: B→A→B)",
        }
        write_index_html(self.run_dir, f"CycleGAN · {data} · step {self.trainer.step}/{c.steps}", c.to_dict(),
                         entries, extra=summary)  # fmt: skip
