"""The memory check before a run against reality: for each configuration, one training step of the
default CycleGAN (ResNet-9, ngf 64, plain convolutions) on apple2orange in its own process; the
estimate it prints (``memory: estimated peak memory … GiB``) next to that process's peak RSS from
``os.wait4``. Prints a table and writes benchmarks/results-memory-estimate.json::

    python benchmarks/memory_estimate.py --data-root ../shared/data [--configs 128x1 256x1 256x2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(size: int, batch: int, data_root: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "gankit", "train", "cyclegan", "--dataset", "apple2orange", "--data-root",
                data_root, "--size", str(size), "--batch-size", str(batch), "--steps", "1", "--threads", "2",
                "--no-progress", "--sample-every", "1000", "--conv-algorithms", "plain",
                "--out", f"{tmp}/run"]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        out = proc.stdout.read() if proc.stdout else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr.read() if proc.stderr else ''}")
    estimate = float(re.search(r"estimated peak memory ([\d.]+) GiB", out).group(1))
    peak = usage.ru_maxrss * 1024 / 2**30
    return {"size": size, "batch": batch, "estimate_gib": estimate, "peak_gib": round(peak, 2),
            "estimate_over_peak": round(estimate / peak, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--configs", nargs="+", default=["64x2", "128x1", "256x1", "256x2"], help="SIZExBATCH")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results-memory-estimate.json"))
    args = parser.parse_args()
    rows = [measure(*map(int, c.split("x")), args.data_root) for c in args.configs]
    print(f"{'size':>5} {'batch':>5} {'estimate GiB':>12} {'peak GiB':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['size']:>5} {r['batch']:>5} {r['estimate_gib']:>12.1f} {r['peak_gib']:>9.2f} "
              f"{r['estimate_over_peak']:>6.2f}")  # fmt: skip
    Path(args.out).write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
