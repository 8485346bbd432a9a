"""One request queue for the whole server: the page, the Gradio client API and the HTTP API all wait
here, so a limit set once holds whoever asks.

Each model computes at most ``concurrency`` requests at once (one by default: on a CPU a second
translation in parallel only halves the speed of both and doubles the memory). Requests that find
their model busy wait in one queue of at most ``queue_size`` places shared by all models; a request
that finds the queue full is refused at once with :class:`~gankit.serve.errors.Busy` (HTTP 503), so
an overloaded server answers quickly instead of piling up connections until something times out.

The queue lives in the server's event loop: a waiting request holds no thread, and the work itself
runs in a worker thread (:meth:`RequestQueue.run`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import anyio.to_thread

from gankit.serve.errors import Busy

T = TypeVar("T")


class RequestQueue:
    def __init__(self, *, concurrency: int = 1, queue_size: int = 8):
        self.concurrency, self.queue_size = concurrency, queue_size
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.waiting = 0
        self.running = 0
        self.refused = 0
        self.served = 0

    @contextlib.asynccontextmanager
    async def slot(self, model: str) -> AsyncIterator[None]:
        """Hold one of ``model``'s compute slots, after waiting in the queue if they are all taken."""
        sem = self._slots.setdefault(model, asyncio.Semaphore(self.concurrency))
        if sem.locked():
            if self.waiting >= self.queue_size:
                self.refused += 1
                raise Busy(f"server busy: {self.running} request(s) running and the queue of {self.queue_size} is "
                           "full (--queue-size); try again shortly")  # fmt: skip
            self.waiting += 1
            try:
                await sem.acquire()
            finally:
                self.waiting -= 1
        else:
            await sem.acquire()
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self.served += 1
            sem.release()

    async def run(self, model: str, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` in a worker thread once ``model`` has a free slot."""
        async with self.slot(model):
            return await anyio.to_thread.run_sync(fn, *args)

    def stats(self) -> dict[str, int]:
        return {"running": self.running, "waiting": self.waiting, "refused": self.refused, "served": self.served,
                "queue_size": self.queue_size, "concurrency": self.concurrency}  # fmt: skip
