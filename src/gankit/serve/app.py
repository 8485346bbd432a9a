"""``gankit serve``: the models, the one request queue, the page and the HTTP API in one web app,
served by uvicorn in the foreground until Ctrl-C or SIGTERM.

Layout of the app::

    Guard (token, upload size) ─┬─ /healthz, /api/models, /api/translate    (gankit.serve.http)
                                └─ /  the Gradio page and its client API     (gankit.serve.page + views)
                                      both compute through ServerState → RequestQueue → worker thread
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

import gankit.serve.work as work
from gankit.errors import ConfigError
from gankit.inference.tiled import default_memory_budget
from gankit.models.base import Translator
from gankit.serve.catalog import ServedModel, load_models, write_examples
from gankit.serve.errors import BadUpload, TooLarge, UnknownModel, Unprocessable
from gankit.serve.options import ServeOptions, is_wildcard
from gankit.serve.queue import RequestQueue
from gankit.serve.uploads import open_checked, png_bytes, read_upload


def _log(message: str) -> None:
    print(f"gankit serve: {message}", file=sys.stderr, flush=True)


class ServerState:
    """What every request handler shares: the options, the models and the one request queue."""

    def __init__(self, options: ServeOptions, models: list[ServedModel], log: Callable[[str], None] = _log):
        self.options, self.models, self.log = options, models, log
        self.queue = RequestQueue(concurrency=options.concurrency, queue_size=options.queue_size)
        slots = options.concurrency * max(1, len(models))
        self.max_memory = options.max_memory or max(1, default_memory_budget() // slots)
        """Bytes one translation may use before it is tiled: the budget is shared by all that may run at once."""

    # --- finding models ---------------------------------------------------------------------------------
    def served(self, name: str | None) -> ServedModel:
        for m in self.models:
            if m.name == name:
                return m
        raise UnknownModel(f"unknown model {name!r}; this server has {', '.join(m.name for m in self.models)}")

    def translator(self, name: str | None) -> ServedModel:
        """The model ``name``, or, when no name is given, the only model that translates."""
        if not name:
            translators = [m for m in self.models if m.directions]
            if len(translators) != 1:
                names = ", ".join(m.name for m in translators) or "none"
                raise Unprocessable(f"give the model to use (form field 'model'); translators here: {names}")
            return translators[0]
        served = self.served(name)
        if not isinstance(served.model, Translator):
            raise Unprocessable(f"model {name!r} is a {served.kind} model, which does not translate images")
        return served

    # --- computing --------------------------------------------------------------------------------------
    async def compute(self, name: str, fn: Callable[..., Any], *args) -> Any:
        return await self.queue.run(name, fn, *args)

    async def translate_bytes(self, name: str | None, data: bytes, direction: str | None, roundtrip: bool,
                              *, encode: bool = False) -> Any:  # fmt: skip
        """Translate uploaded bytes: everything a client can get wrong is refused before the request
        takes a place in the queue (model, direction, not an image, too many pixels); decoding and the
        translation itself run in the model's slot. ``encode``: (PNG bytes, tile) instead of a
        :class:`~gankit.serve.work.Translation`; a round trip then returns the reconstruction."""
        served = self.translator(name)
        model = served.model
        direction = work.check_direction(model, direction or model.directions[0])
        if roundtrip and work.other_direction(direction) not in model.directions:
            raise Unprocessable(f"roundtrip: this {served.kind} model translates {direction} only (one-sided, "
                                "no inverse to go back with)")  # fmt: skip
        open_checked(data, self.options.max_pixels)
        channels, max_pixels, max_memory = model.channels(direction)[0], self.options.max_pixels, self.max_memory

        def run():
            image = read_upload(data, channels, max_pixels)
            t = work.translate(model, image, direction, roundtrip=roundtrip, max_memory=max_memory)
            if not encode:
                return t
            return png_bytes(t.roundtrip if roundtrip else t.image), t.tile

        return await self.queue.run(served.name, run)

    # --- the page's uploads ------------------------------------------------------------------------------
    def page_file(self, path: str | None) -> bytes:
        """The bytes of a file the page uploaded. Gradio hands the callback a path in its upload folder;
        a path anywhere else is refused, so no client can make the server open a file it names."""
        from gradio.utils import get_upload_folder, is_in_or_equal

        if not path:
            raise BadUpload("no image: upload one or click an example first")
        if not is_in_or_equal(os.path.realpath(path), os.path.realpath(get_upload_folder())):
            raise BadUpload("refused: only images uploaded to this server are read")
        size = os.path.getsize(path)
        if size > self.options.max_upload_bytes:
            raise TooLarge(f"image of {size:,} bytes is over the upload limit of {self.options.max_upload_bytes:,} "
                           "bytes (--max-upload-mb)")  # fmt: skip
        with open(path, "rb") as f:
            return f.read()

    async def translate_upload(self, name: str, path: str | None, direction: str, roundtrip: bool) -> work.Translation:
        return await self.translate_bytes(name, self.page_file(path), direction, roundtrip)

    async def compute_on_upload(self, name: str, path: str | None, channels: int,
                                fn: Callable[..., Any], *args) -> Any:  # fmt: skip
        data = self.page_file(path)
        open_checked(data, self.options.max_pixels)
        max_pixels = self.options.max_pixels
        return await self.queue.run(name, lambda: fn(*args, read_upload(data, channels, max_pixels)))

    def limits(self) -> str:
        o = self.options
        return (f"uploads up to {o.max_upload_mb:g} MB and {o.max_pixels / 1e6:.1f} megapixels (larger images are "
                f"tiled, not refused) · {o.concurrency} request(s) at a time per model, {o.queue_size} may "
                "wait")  # fmt: skip


def build_app(state: ServerState):
    """The web app: guard → HTTP API routes, then the Gradio page mounted at ``/``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    from fastapi import FastAPI

    from gankit.serve.http import FORM_OVERHEAD, Guard, router
    from gankit.serve.page import build_page, theme

    app = FastAPI(title="gankit serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router(state))
    page = build_page(state.models, state, state.limits())
    page.queue(default_concurrency_limit=None, max_size=None)  # the one queue is state.queue
    app = gr.mount_gradio_app(app, page, path="/", max_file_size=state.options.max_upload_bytes, ssr_mode=False,
                              theme=theme(), footer_links=["api"], show_error=True)  # fmt: skip
    # Gradio checks that a file named in a client's request lies in its upload folder only once the page
    # "has launched", which mount_gradio_app never marks (6.31: any server file named would be copied
    # into the cache and handed to the callback). Mark it, so Gradio refuses such paths before any
    # callback runs; ServerState.page_file checks again, and tests/serve checks both.
    page.has_launched = True
    return Guard(app, token=state.options.auth_token, body_limit=state.options.max_upload_bytes + FORM_OVERHEAD)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before any model is loaded, so a taken port fails in a second."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Server(uvicorn.Server):
    """uvicorn's server, except that SIGINT / SIGTERM end :meth:`run` normally (in-flight requests are
    finished first) rather than being raised again once it has stopped, which would kill the process
    before it removes its temporary files. ``stopped_by`` names the signal."""

    stopped_by: str | None = None

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig, frame) -> None:
        self.stopped_by = signal.Signals(sig).name
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


@dataclass
class Prepared:
    """A server ready to run: ``server.run(sockets=[sock])`` in the foreground, or in a thread."""

    server: Any
    sock: socket.socket
    state: ServerState
    url: str
    workdir: Path

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def prepare(options: ServeOptions, log: Callable[[str], None] = _log) -> Prepared:
    """Validate, bind, load the models and their examples, and build the app (no request served yet)."""
    options = options.with_token_from_env().validate()
    sock = bind(options.host, options.port)
    workdir = Path(tempfile.mkdtemp(prefix="gankit-serve-"))
    try:
        models = load_models(options.runs, options.device)
        for served in models:
            write_examples(served, options.examples, workdir / "examples", log)
        state = ServerState(options, models, log)
        app = build_app(state)
    except BaseException:
        sock.close()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, access_log=False)
    return Prepared(Server(config), sock, state, f"http://{shown}:{port}", workdir)


def exposure_warning(host: str) -> str | None:
    if is_wildcard(host):
        return (f"warning: --host {host} listens on every network interface: anyone who can reach this machine and "
                "has the token can use the models")  # fmt: skip
    return None


def serve(options: ServeOptions) -> int:
    """Run the server in the foreground (``gankit serve``) until Ctrl-C or SIGTERM."""
    prepared = prepare(options)
    o = prepared.state.options
    if (warning := exposure_warning(o.host)) is not None:
        _log(warning)
    names = ", ".join(f"{m.name} ({m.kind})" for m in prepared.state.models)
    print(f"gankit serve: {names} at {prepared.url}/  (Ctrl-C stops)", flush=True)
    if o.auth_token:
        print("gankit serve: access token required: open the page once as /?token=TOKEN; API clients send "
              "'Authorization: Bearer TOKEN'", flush=True)  # fmt: skip
    try:
        prepared.server.run(sockets=[prepared.sock])
    finally:
        prepared.close()
    print(f"gankit serve: stopped ({prepared.server.stopped_by or 'shut down'})", flush=True)
    return 0
