"""Peak memory and wall time of ``gankit eval``, each run in its own process (``os.wait4`` gives that
child's own peak RSS):

- folder mode, ``gankit eval --real DIR --fake DIR`` on N real and N "fake" 256 px images of
  apple2orange (the fakes are other real photos with the same file names, so the paired PSNR/SSIM step
  runs on every pair), for N = 250 and N = 2,500 (all of apple2orange's 2,528 photos, reused);
- a model evaluation, ``gankit eval RUN`` of a CycleGAN run on the whole apple2orange test split (both
  directions, the guarded classifier from the cache, every floor and ceiling).

No Inception file is used (the aim it measures is "< 2 GB and < 2 minutes per 1,000 images without
Inception"). Prints a table and writes benchmarks/results-eval.json::

    python benchmarks/eval_memory.py --data-root ../shared/data --run runs/a2o [--sizes 250 2500]
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

REPO = Path(__file__).resolve().parents[1]


def measure(argv: list[str]) -> dict:
    """Wall seconds and peak RSS (MB) of ``python -m gankit ARGV`` in its own process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "gankit", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"gankit {' '.join(argv)} failed:\n{err}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def folders(data_root: Path, n: int, tmp: Path) -> tuple[Path, Path]:
    photos = sorted(p for split in ("trainA", "trainB", "testA", "testB") for p in (data_root / "apple2orange" /
                    split).iterdir())  # fmt: skip
    real, fake = tmp / f"real{n}", tmp / f"fake{n}"
    real.mkdir()
    fake.mkdir()
    for i in range(n):
        name = f"{i:05d}.jpg"
        os.symlink(photos[i % len(photos)], real / name)
        os.symlink(photos[(i * 7 + 3) % len(photos)], fake / name)
    return real, fake


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--run", type=Path, default=None, help="a CycleGAN run folder on apple2orange (model evaluation)")
    p.add_argument("--sizes", type=int, nargs="+", default=[250, 2500])
    p.add_argument("--cache-dir", default=None, help="classifier cache (default: gankit's)")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results-eval.json"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n in args.sizes:
            real, fake = folders(args.data_root, n, tmp)
            argv = ["eval", "--real", str(real), "--fake", str(fake), "--out", str(tmp / f"r{n}")]
            row = {"what": "eval --real --fake (256 px, paired PSNR/SSIM)", "images": n, **measure(argv)}
            row["seconds_per_1000"] = round(1000 * row["seconds"] / n, 1)
            rows.append(row)
            print(row, flush=True)
        if args.run is not None:
            cache = ["--cache-dir", args.cache_dir] if args.cache_dir else []
            row = {"what": f"eval RUN ({args.run.name}, apple2orange test split, both directions)", "images": 514,
                   **measure(["eval", str(args.run), "--data-root", str(args.data_root), "--out", str(tmp / "model"),
                              *cache])}  # fmt: skip
            row["seconds_per_1000"] = round(1000 * row["seconds"] / 514, 1)
            rows.append(row)
            print(row, flush=True)
    print(f"\n{'what':<62} {'images':>6} {'seconds':>8} {'s/1000':>7} {'peak RSS MB':>11}")
    for r in rows:
        print(f"{r['what']:<62} {r['images']:>6} {r['seconds']:>8} {r['seconds_per_1000']:>7} {r['peak_rss_mb']:>11}")
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
