"""Micro-batching: concurrent requests are tagged together in one model call.

Requests wait in a bounded queue. One model call runs at a time, in a thread of its own (the
event loop keeps accepting requests meanwhile); when it ends, every request that arrived during
it goes into the next call, up to ``batch_tokens`` tokens. An idle batcher waits ``window``
seconds after the first request for others to join it. Under load the calls therefore grow to
batch-annotation size by themselves, and at low load a request waits at most ``window``.

Requests of different ``key`` (n-best size, tag scheme) are tagged in separate calls of the
same round. A request that times out is dropped from the queue if it has not started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """The queue is full: the caller should answer 503."""


@dataclass
class _Job:
    key: Hashable
    sentences: Sequence[Sequence[str]]
    tokens: int
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters a health check can show."""

    calls: int = 0
    requests: int = 0
    sentences: int = 0
    largest_call: int = 0  # requests in the largest call
    errors: int = 0
    sizes: list[int] = field(default_factory=list, repr=False)  # requests per call, the last 1,000


class MicroBatcher:
    """Runs ``run(key, sentences) -> predictions`` (one per sentence, in order) for many requests at once.

    Create it inside a running event loop, ``await start()`` it, then ``await submit(...)`` from
    request handlers; ``await close()`` at shutdown.
    """

    def __init__(self, run: Callable[[Any, list[Sequence[str]]], list], window: float = 0.005,
                 batch_tokens: int = 16384, max_queue: int = 256) -> None:
        self.run = run
        self.window = window
        self.batch_tokens = batch_tokens
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._queue: deque[_Job] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        # one model call at a time: torch already uses the cores, and calls of one model must not interleave
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tagger-model")

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="tagger-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(Overloaded("the server is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, sentences: Sequence[Sequence[str]], timeout: float) -> list:
        """Predictions of ``sentences``; :class:`Overloaded` if the queue is full, ``TimeoutError`` after
        ``timeout`` seconds, or the exception the model call raised."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        if not sentences:
            return []
        if len(self._queue) >= self.max_queue:
            raise Overloaded(f"{len(self._queue)} requests are waiting already")
        job = _Job(key, sentences, sum(len(s) for s in sentences), asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except TimeoutError:
            job.future.cancel()  # not started: skipped; running: its result is dropped
            raise

    def _take(self) -> list[_Job]:
        """The next call's jobs: at least one, then as many as fit in ``batch_tokens``."""
        jobs: list[_Job] = []
        tokens = 0
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # timed out while waiting
                self._queue.popleft()
                continue
            if jobs and tokens + job.tokens > self.batch_tokens:
                break
            jobs.append(self._queue.popleft())
            tokens += job.tokens
        return jobs

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.window > 0:
                await asyncio.sleep(self.window)  # idle until now: let concurrent requests join
            while self._queue:
                jobs = self._take()
                groups: dict[Hashable, list[_Job]] = {}
                for job in jobs:
                    groups.setdefault(job.key, []).append(job)
                for key, group in groups.items():
                    await self._call(loop, key, group)

    async def _call(self, loop: asyncio.AbstractEventLoop, key: Hashable, jobs: list[_Job]) -> None:
        sentences = [s for job in jobs for s in job.sentences]
        try:
            preds = await loop.run_in_executor(self._executor, self.run, key, sentences)
        except Exception as exc:  # the requests get the error; the server goes on
            self.stats.errors += 1
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        s = self.stats
        s.calls += 1
        s.requests += len(jobs)
        s.sentences += len(sentences)
        s.largest_call = max(s.largest_call, len(jobs))
        s.sizes = [*s.sizes[-999:], len(jobs)]
        at = 0
        for job in jobs:
            n = len(job.sentences)
            if not job.future.done():
                job.future.set_result(preds[at : at + n])
            at += n
