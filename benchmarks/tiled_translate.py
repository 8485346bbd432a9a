"""Peak memory, time and exactness of tiled translation (``gankit translate --tile N``).

Each translation runs in its own subprocess (``os.wait4`` gives that child's own peak RSS) with one
torch thread. The model is the default resnet-9 CycleGAN generator (ngf 64, instance norm) with
random weights (PyTorch's default conv init, so outputs span the whole range); memory and time do not
depend on the weights, and exactness is a property of the arithmetic, not of training. The input is a
real apple2orange photo resized up with PIL bicubic and saved as PNG.

    python benchmarks/tiled_translate.py                      # 1024 px comparison + 4096 px run
    python benchmarks/tiled_translate.py --big 0              # comparison only
    python benchmarks/tiled_translate.py --big 4096 --big-tile 512 --compare 1024 --tiles 256 300 512

Prints a table and writes benchmarks/results-tiled.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gankit.launch import prefer_short_openmp_spin

prefer_short_openmp_spin()  # as the gankit command does; must precede torch's import

import torch  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHILD = (
    "import sys, torch; torch.set_num_threads(int(sys.argv[1])); "
    "from gankit.cli import main; raise SystemExit(main(sys.argv[2:]))"
)


def data_root() -> Path:
    return Path(os.environ.get("GANKIT_DATA", REPO.parent / "shared" / "data"))


def make_model(path: Path) -> Path:
    from gankit.api import CycleGAN
    from gankit.config import CycleGANConfig

    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(channels_a=3, channels_b=3).validate(), with_discriminators=False)
    for m in model.modules():  # PyTorch's default init: full-range outputs instead of near-gray ones
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.reset_parameters()
    return model.save_generators(path)


def make_photo(size: int, folder: Path, source: Path) -> Path:
    out = folder / f"photo{size}" / f"photo{size}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as im:
        im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(out)
    return out


def run_translate(model: Path, photo: Path, out: Path, tile: int, threads: int) -> dict:
    """One ``gankit translate`` in a child process: wall and CPU seconds (CPU time does not grow when
    other processes share the cores), the child's own peak RSS, its output."""
    cmd = [sys.executable, "-c", CHILD, str(threads), "translate", str(model), str(photo), "--out", str(out),
           "--tile", str(tile), "--device", "cpu"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"translate failed ({proc.returncode}):\n{text}")
    cpu = usage.ru_utime + usage.ru_stime
    rss = round(usage.ru_maxrss / 1024)
    return {"tile": tile, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": rss, "log": text.strip()}


def max_diff_255(a: Path, b: Path) -> int:
    with Image.open(a) as ia, Image.open(b) as ib:
        x, y = np.asarray(ia, dtype=np.int16), np.asarray(ib, dtype=np.int16)
    return int(np.abs(x - y).max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--big", type=int, default=4096, help="size of the large run (0 = skip)")
    p.add_argument("--big-tile", type=int, default=512)
    p.add_argument("--compare", type=int, default=1024, help="size of the tiled vs one-piece comparison")
    p.add_argument("--tiles", type=int, nargs="+", default=[256, 300, 512], help="tile sizes compared")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).with_name("results-tiled.json")))
    args = p.parse_args()

    from gankit.inference.tiled import estimate_one_piece_bytes
    from gankit.io import atomic_write_text
    from gankit.nn.generators import ResnetGenerator

    source = sorted((data_root() / "apple2orange" / "testA").glob("*.jpg"))[0]
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gankit-tiled-bench-") as tmp:
        tmp = Path(tmp)
        model = make_model(tmp / "model.safetensors")
        gen = ResnetGenerator(3, 3)
        if args.compare:
            photo = make_photo(args.compare, tmp, source)
            ref = run_translate(model, photo, tmp / "one", 0, args.threads)
            ref_png = tmp / "one" / f"{photo.stem}_a2b.png"
            rows.append({"size": args.compare, **ref, "max_diff_255": 0})
            print(f"{args.compare}px one-piece: {ref['wall_s']} s, {ref['peak_rss_mb']} MB", flush=True)
            for tile in args.tiles:
                r = run_translate(model, photo, tmp / f"t{tile}", tile, args.threads)
                r["max_diff_255"] = max_diff_255(ref_png, tmp / f"t{tile}" / f"{photo.stem}_a2b.png")
                rows.append({"size": args.compare, **r})
                print(f"{args.compare}px tile {tile}: {r['wall_s']} s, {r['peak_rss_mb']} MB, "
                      f"max diff {r['max_diff_255']}/255", flush=True)  # fmt: skip
        if args.big:
            photo = make_photo(args.big, tmp, source)
            r = run_translate(model, photo, tmp / "big", args.big_tile, args.threads)
            with Image.open(tmp / "big" / f"{photo.stem}_a2b.png") as im:
                r["output_size"] = list(im.size)
            rows.append({"size": args.big, **r, "max_diff_255": None})
            print(f"{args.big}px tile {args.big_tile}: {r['wall_s']} s, {r['peak_rss_mb']} MB", flush=True)
        for row in rows:
            est = estimate_one_piece_bytes(gen, 3, row["size"], row["size"])
            row["one_piece_activation_estimate_mb"] = round(est / 2**20)

    print()
    print(f"{'size':>6} {'tile':>6} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'max diff /255':>14}")
    for r in rows:
        tile = "none" if r["tile"] == 0 else r["tile"]
        diff = "-" if r["max_diff_255"] is None else r["max_diff_255"]
        print(f"{r['size']:>6} {tile!s:>6} {r['wall_s']:>8} {r['cpu_s']:>8} {r['peak_rss_mb']:>12} {diff!s:>14}")
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": args.threads, "cpu_count": os.cpu_count(), "model": "resnet-9 ngf 64 instance norm, "
            "random init (PyTorch default)", "photo": source.name, "resize": "PIL bicubic",
            "load_average_start_end": [load_start, os.getloadavg()[0]]}  # fmt: skip
    atomic_write_text(args.out, json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
