"""Tests for the micro-batcher of ``tagger serve`` (tagger.serve.batcher) with a fake model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tagger.serve.batcher import MicroBatcher, Overloaded


class FakeModel:
    """Tags each token with its key and length; records every call; can be slowed or made to fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[object, int]] = []
        self.delay = delay
        self.fail_on: str | None = None
        self.thread_ids: set[int] = set()

    def __call__(self, key, sentences):
        self.thread_ids.add(threading.get_ident())
        self.calls.append((key, len(sentences)))
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in s for s in sentences):
            raise ValueError("model failure")
        return [[f"{key}:{t}" for t in s] for s in sentences]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_one_model_call_and_get_their_own_answers():
    model = FakeModel()

    async def main():
        b = MicroBatcher(model, window=0.05)
        await b.start()
        try:
            reqs = [[["a", str(i)], ["b"]] for i in range(20)]
            outs = await asyncio.gather(*(b.submit("k", r, timeout=5) for r in reqs))
        finally:
            await b.close()
        return reqs, outs, b.stats

    reqs, outs, stats = run(main())
    for r, o in zip(reqs, outs):
        assert o == [[f"k:{t}" for t in s] for s in r]
    assert model.calls == [("k", 40)]  # all 20 requests in one call
    assert stats.calls == 1 and stats.requests == 20 and stats.largest_call == 20


def test_requests_arriving_during_a_call_form_the_next_call():
    model = FakeModel(delay=0.2)

    async def main():
        b = MicroBatcher(model, window=0.0)
        await b.start()
        try:
            first = asyncio.ensure_future(b.submit("k", [["x"]], timeout=5))
            await asyncio.sleep(0.05)  # the first call is running now
            rest = [b.submit("k", [["y"]], timeout=5) for _ in range(10)]
            await asyncio.gather(first, *rest)
        finally:
            await b.close()

    run(main())
    assert model.calls == [("k", 1), ("k", 10)]


def test_keys_are_called_separately_and_token_budget_splits_calls():
    model = FakeModel()

    async def main():
        b = MicroBatcher(model, window=0.05, batch_tokens=4)
        await b.start()
        try:
            outs = await asyncio.gather(b.submit(1, [["a", "b"]], 5), b.submit(2, [["c"]], 5),
                                        b.submit(1, [["d", "e"]], 5), b.submit(1, [["f", "g", "h", "i", "j"]], 5))
        finally:
            await b.close()
        return outs

    outs = run(main())
    assert outs[1] == [["2:c"]] and outs[3] == [[f"1:{t}" for t in "fghij"]]
    # first round (4 tokens at most): keys 1 and 2 separately; then the 2-token one; the 5-token one alone
    assert model.calls == [(1, 1), (2, 1), (1, 1), (1, 1)]


def test_model_errors_go_to_the_requests_of_that_call_and_the_batcher_goes_on():
    model = FakeModel()
    model.fail_on = "boom"

    async def main():
        b = MicroBatcher(model, window=0.0)
        await b.start()
        try:
            with pytest.raises(ValueError, match="model failure"):
                await b.submit("k", [["boom"]], 5)
            return await b.submit("k", [["fine"]], 5), b.stats.errors
        finally:
            await b.close()

    assert run(main()) == ([["k:fine"]], 1)


def test_full_queue_is_refused():
    model = FakeModel(delay=0.3)

    async def main():
        b = MicroBatcher(model, window=0.0, max_queue=2)
        await b.start()
        try:
            running = asyncio.ensure_future(b.submit("k", [["a"]], 5))
            await asyncio.sleep(0.05)  # running, the queue is empty again
            waiting = [asyncio.ensure_future(b.submit("k", [["b"]], 5)) for _ in range(2)]
            await asyncio.sleep(0)
            assert b.waiting == 2
            with pytest.raises(Overloaded):
                await b.submit("k", [["c"]], 5)
            assert await asyncio.gather(running, *waiting) == [[["k:a"]], [["k:b"]], [["k:b"]]]
        finally:
            await b.close()

    run(main())


def test_a_timed_out_request_that_has_not_started_is_not_computed():
    model = FakeModel(delay=0.2)

    async def main():
        b = MicroBatcher(model, window=0.0)
        await b.start()
        try:
            running = asyncio.ensure_future(b.submit("k", [["a"]], 5))
            await asyncio.sleep(0.05)
            with pytest.raises(TimeoutError):
                await b.submit("k", [["late"], ["late"]], 0.01)
            await running
            await asyncio.sleep(0.3)
        finally:
            await b.close()

    run(main())
    assert model.calls == [("k", 1)]  # the timed-out request was dropped before its call


def test_one_model_thread_and_empty_requests():
    model = FakeModel()

    async def main():
        b = MicroBatcher(model, window=0.0)
        with pytest.raises(RuntimeError, match="not running"):
            await b.submit("k", [["a"]], 1)
        await b.start()
        try:
            assert await b.submit("k", [], 1) == []
            for _ in range(3):
                await b.submit("k", [["a"]], 1)
        finally:
            await b.close()

    run(main())
    assert len(model.thread_ids) == 1 and threading.get_ident() not in model.thread_ids
