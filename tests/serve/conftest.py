"""Tiny real models for the server tests (built and saved in a second, never trained: the tests are
about serving them), the v0.1.0 companion runs, and a live server in a thread on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO / "tests" / "fixtures" / "v0_1_0"
APPLE = "apple2orange/testA/n07740461_10011.jpg"
TINY = dict(size=32, ngf=4, ndf=4, blocks=1, channels_a=3, channels_b=3)


def save_tiny(kind: str, folder: Path, data_root: Path, **options) -> Path:
    from gankit.models.persist import build_model, make_config, save_weights

    config = make_config(kind, dict(dataset="apple2orange", data_root=str(data_root), **TINY, **options), "test")
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(build_model(config, kind, "cpu", for_training=False), folder / "model.safetensors")
    return folder


@pytest.fixture(scope="session")
def runs(shared_data, tmp_path_factory) -> dict[str, Path]:
    """``a2o``: a two-way CycleGAN run with a summary and an eval report; ``oneway``: a one-sided
    FastCUT; ``cgan``/``sgan``/``progan``: copies of gankit 0.1.0's companion runs."""
    root = tmp_path_factory.mktemp("runs")
    a2o = save_tiny("cyclegan", root / "a2o", shared_data)
    (a2o / "summary.json").write_text(json.dumps({"model": "cyclegan", "step": 1234}))
    (a2o / "eval").mkdir()
    (a2o / "eval" / "report.json").write_text(json.dumps({"metrics": {"success_a2b": 0.8125, "fid_cls_a2b": 12.5}}))
    oneway = save_tiny("fastcut", root / "oneway", shared_data, nce_layers=["input", "down1", "block1"])
    found = {"a2o": a2o, "oneway": oneway}
    for kind in ("cgan", "sgan", "progan"):
        found[kind] = Path(shutil.copytree(LEGACY / kind, root / kind))
    return found


def get(url: str, timeout: float = 30, headers: dict | None = None):
    """(status, body bytes) of a GET, error statuses included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(url: str, timeout: float = 120, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before it was ready")
        try:
            if get(f"{url}/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url}/healthz did not answer 200 within {timeout} s")


class LiveServer:
    """A prepared server run in a thread with its own event loop (``loop``), so a test can also run
    coroutines on the server's loop, e.g. hold a model's slot of the real request queue."""

    def __init__(self, options):
        from gankit.serve.app import prepare

        self.prepared = prepare(options, log=lambda _msg: None)
        self.url, self.state = self.prepared.url, self.prepared.state
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_ready(self.url)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.prepared.server.serve(sockets=[self.prepared.sock]))
        finally:  # end Gradio's queue tasks too, as a process exit would
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def on_loop(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.prepared.server.should_exit = True
        self.thread.join(30)
        self.prepared.close()
        assert not self.thread.is_alive(), "server thread did not stop"


ALL = ("a2o", "oneway", "cgan", "sgan", "progan")


@pytest.fixture(scope="session")
def apple(shared_data) -> Path:
    """A real photo of domain A of apple2orange (256 × 256 JPEG)."""
    return shared_data / APPLE


@pytest.fixture
def http_get():
    return get


@pytest.fixture
def ready():
    return wait_ready


@pytest.fixture(scope="session")
def start_server():
    """``start_server(options)`` → a :class:`LiveServer` (stop it when done)."""
    return LiveServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    url: str
    port: int
    log: Path


@pytest.fixture(scope="session")
def serve_process(runs, tmp_path_factory):
    """``python -m gankit serve RUNS/a2o --port P``, the command as the acceptance checks run it, started
    as soon as a test asks for it (``live`` asks first, so it boots while this process builds its own)."""
    pytest.importorskip("gradio", reason='gankit serve needs the serve extra: pip install "gankit[serve]"')
    port = free_port()
    log = tmp_path_factory.mktemp("serve-process") / "serve.log"
    command = [sys.executable, "-m", "gankit", "serve", str(runs["a2o"]), "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"GANKIT_SERVE_TOKEN": ""}
        )
    yield ServeProcess(proc, f"http://127.0.0.1:{port}", port, log)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def live(runs, serve_process):
    """One server over all five models with the default limits (port 0: a free one), shared by the API
    and browser tests and shut down at the end."""
    pytest.importorskip("gradio", reason='gankit serve needs the serve extra: pip install "gankit[serve]"')
    from gankit.serve.options import ServeOptions

    server = LiveServer(ServeOptions(runs=tuple(str(runs[k]) for k in ALL), port=0, device="cpu"))
    yield server
    server.stop()
