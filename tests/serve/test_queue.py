"""The one request queue: a slot per model at a time, a bounded wait shared by all models, and an
immediate refusal (never a hang) when it is full."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

pytest.importorskip("anyio", reason='the request queue comes with the serve extra: pip install "gankit[serve]"')

from gankit.serve.errors import Busy
from gankit.serve.queue import RequestQueue


def test_one_at_a_time_per_model_and_a_bounded_shared_queue():
    async def scenario():
        queue = RequestQueue(concurrency=1, queue_size=2)
        running, peak, gate = 0, 0, asyncio.Event()

        async def request(model):
            nonlocal running, peak
            async with queue.slot(model):
                running += 1
                peak = max(peak, running)
                await gate.wait()
                running -= 1
            return model

        first = asyncio.create_task(request("a"))
        other = asyncio.create_task(request("b"))  # another model runs at once
        await asyncio.sleep(0.01)
        assert queue.running == 2 and queue.waiting == 0
        queued = [asyncio.create_task(request("a")), asyncio.create_task(request("b"))]
        await asyncio.sleep(0.01)
        assert queue.waiting == 2
        with pytest.raises(Busy, match="--queue-size"):
            await request("a")  # full: refused at once
        with pytest.raises(Busy):
            await request("b")  # the queue is shared by every model
        gate.set()
        assert await asyncio.gather(first, other, *queued) == ["a", "b", "a", "b"]
        assert peak == 2 and queue.stats() == {"running": 0, "waiting": 0, "refused": 2, "served": 4,
                                               "queue_size": 2, "concurrency": 1}  # fmt: skip

    asyncio.run(scenario())


def test_work_runs_in_a_thread_and_a_failure_frees_the_slot():
    async def scenario():
        queue = RequestQueue(concurrency=1, queue_size=0)
        main = threading.get_ident()
        assert await queue.run("m", threading.get_ident) != main

        def boom():
            raise ValueError("bad input")

        with pytest.raises(ValueError):
            await queue.run("m", boom)
        assert queue.running == 0 and await queue.run("m", lambda: 7) == 7

    asyncio.run(scenario())


def test_concurrency_two_runs_two_at_once():
    async def scenario():
        queue = RequestQueue(concurrency=2, queue_size=0)
        started = time.monotonic()
        await asyncio.gather(queue.run("m", time.sleep, 0.3), queue.run("m", time.sleep, 0.3))
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.55
