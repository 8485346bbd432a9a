"""Load test of ``gankit serve`` on loopback: C concurrent clients post an image to ``/api/translate``
for T seconds each; reports requests/s, p50/p95 latency and errors, below the queue limit and above it.

The server is the real command (``gankit serve RUN --port P --queue-size Q``) in its own process. The
default model is the default CycleGAN (resnet-9 generators, ngf 64) with PyTorch's default random
weights, which cost exactly what trained ones cost; the input is a real apple2orange photo (256 ×
256) or, without the data, a synthetic one of --size px.

Each client is a thread with its own keep-alive connection that sends its next request as soon as the
previous one is answered; every request has a timeout, so a hang or a lost request shows up as an
error. Below the limit (C ≤ concurrency + queue size) every request must succeed; above it the excess
must be answered 503 at once (counted as ``busy``, not as errors), never left hanging.

    python benchmarks/serve_load.py                        # clients 1 2 4 8 and an overload of 16, 20 s each
    python benchmarks/serve_load.py --clients 1 4 --seconds 10 --queue-size 4 --overload 12
    python benchmarks/serve_load.py --run runs/a2o          # a trained run instead

Prints a table and writes benchmarks/results-serve-load.json.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BOUNDARY = "gankit-load-boundary"
MAX_SECONDS = 300


def data_root() -> Path:
    return Path(os.environ.get("GANKIT_DATA", REPO.parent / "shared" / "data"))


def make_run(folder: Path) -> Path:
    """The default CycleGAN (resnet-9, ngf 64) with random weights, saved as a run folder."""
    import torch

    from gankit.api import CycleGAN
    from gankit.models.cyclegan import CycleGANConfig

    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(channels_a=3, channels_b=3, size=256).validate(), with_discriminators=False)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_generators(folder / "model.safetensors")
    return folder


def photo_bytes(size: int) -> tuple[bytes, str]:
    from PIL import Image

    real = data_root() / "apple2orange" / "testA" / "n07740461_10011.jpg"
    if real.is_file() and size == 256:
        return real.read_bytes(), f"{real.name} (256 x 256)"
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    return buf.getvalue(), f"synthetic PNG ({size} x {size})"


def multipart(image: bytes) -> bytes:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="direction"\r\n\r\na2b\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    return head + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, queue_size: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "gankit", "serve", str(run), "--port", str(port), "--queue-size",
               str(queue_size), "--examples", "0"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gankit serve exited with {proc.returncode}; see {log}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("gankit serve did not answer /healthz within 180 s")


def client(port: int, body: bytes, until: float, timeout: float, out: list) -> None:
    """Post until ``until``; append (status or exception name, latency s) per request."""
    conn = None
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("POST", "/api/translate", body=body,
                         headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})  # fmt: skip
            r = conn.getresponse()
            r.read()
            out.append((r.status, time.monotonic() - started))
            if r.status == 503:
                time.sleep(0.05)  # a polite client backs off a little before retrying
        except Exception as e:  # a timeout or a dropped connection: a lost request
            out.append((type(e).__name__, time.monotonic() - started))
            conn = None


def phase(port: int, body: bytes, clients: int, seconds: float, timeout: float) -> dict:
    results: list[list] = [[] for _ in range(clients)]
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(port, body, until, timeout, results[i])) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout + 30)
    wall = time.monotonic() - started
    flat = [r for rs in results for r in rs]
    ok = [lat for status, lat in flat if status == 200]
    busy = [lat for status, lat in flat if status == 503]
    errors = [status for status, _ in flat if status not in (200, 503)]
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else None  # noqa: E731
    return {"clients": clients, "seconds": round(wall, 2), "requests": len(flat), "ok": len(ok),
            "ok_per_s": round(len(ok) / wall, 3), "p50_s": pct(ok, 50), "p95_s": pct(ok, 95),
            "busy_503": len(busy), "busy_p95_s": pct(busy, 95), "errors": len(errors),
            "error_kinds": sorted({str(e) for e in errors}),
            "hung_threads": sum(t.is_alive() for t in threads)}  # fmt: skip


def fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=None, help="run folder to serve (default: the default CycleGAN)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8], help="concurrent clients per phase")
    p.add_argument("--overload", type=int, default=16, help="clients of the overload phase (0: none)")
    p.add_argument("--seconds", type=float, default=20, help=f"seconds per phase (at most {MAX_SECONDS})")
    p.add_argument("--queue-size", type=int, default=8, help="the server's --queue-size")
    p.add_argument("--size", type=int, default=256, help="image size (256: the real photo)")
    p.add_argument("--timeout", type=float, default=120, help="seconds before a request counts as lost")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results-serve-load.json")
    args = p.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds {args.seconds}: expected 0 < T ≤ {MAX_SECONDS}")
    if any(c < 1 for c in args.clients) or args.overload < 0:
        p.error("--clients and --overload: expected numbers ≥ 1 (--overload 0: no overload phase)")
    limit = 1 + args.queue_size  # one request computed at a time (the default) plus the queue
    body = multipart(photo_bytes(args.size)[0])
    with tempfile.TemporaryDirectory(prefix="gankit-serve-load-") as tmp:
        run = args.run or make_run(Path(tmp) / "default-cyclegan")
        port = free_port()
        server = start_server(run, port, args.queue_size, Path(tmp) / "serve.log")
        try:
            warm = phase(port, body, 1, 0.01, args.timeout)  # one request: first-call costs are not measured
            if warm["ok"] != 1:
                raise SystemExit(f"the warm-up request failed: {warm}")
            rows = []
            for c in [*args.clients, *([args.overload] if args.overload else [])]:
                row = phase(port, body, c, args.seconds, args.timeout) | {"below_limit": c <= limit}
                rows.append(row)
                print(f"{c} clients: {row['ok']} ok, {row['busy_503']} busy, {row['errors']} errors", file=sys.stderr)
        finally:
            server.terminate()
            server.wait(60)
    print(f"{'clients':>7} {'limit':>6} {'ok':>5} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'503s':>5} {'503 p95 s':>9} "
          f"{'errors':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['clients']:>7} {'below' if r['below_limit'] else 'OVER':>6} {r['ok']:>5} {r['ok_per_s']:>7.3f} "
              f"{fmt(r['p50_s']):>7} {fmt(r['p95_s']):>7} {r['busy_503']:>5} {fmt(r['busy_p95_s']):>9} "
              f"{r['errors']:>6}")  # fmt: skip
    import torch

    model = str(args.run or "default CycleGAN (resnet-9, ngf 64), random weights")
    result = {"benchmark": "serve_load", "model": model,
              "image": photo_bytes(args.size)[1], "queue_size": args.queue_size, "concurrency": 1,
              "seconds_per_phase": args.seconds, "request_timeout_s": args.timeout, "rows": rows,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "load_average_at_end": os.getloadavg()}}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    bad = [r for r in rows if r["errors"] or r["hung_threads"] or (r["below_limit"] and r["busy_503"])]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
