"""tagger.threads: thread counts from the cores other processes leave free; cheaper dropout."""

from __future__ import annotations

import threading

import pytest
import torch

from tagger import threads as th
from tagger.nn.dropout import Dropout, dropout


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(th, "available_cores", lambda: 2)


@pytest.mark.parametrize("others,share,reserve,want", [
    (0.0, 1, 0, 2), (0.25, 1, 0, 2), (0.4, 1, 0, 1), (1.0, 1, 0, 1), (2.0, 1, 0, 1),
    (0.0, 2, 0, 1), (0.0, 1, 1, 1),
])
def test_threads_for(two_cores, others, share, reserve, want):
    assert th._threads_for(others, share, reserve) == want


class FakeMachine:
    """A /proc/stat stand-in: busy ticks of the other processes and of this one, and a clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ticks = 0
        self.own = 0.0
        self.running = 1

    def advance(self, seconds: float, others: float, own: float) -> None:
        """``seconds`` pass while other processes use ``others`` cores and this process ``own``."""
        self.now += seconds
        self.own += own * seconds
        self.ticks += round((others + own) * seconds * th._HZ)


@pytest.fixture
def machine(monkeypatch, two_cores):
    m = FakeMachine()
    monkeypatch.setattr(th, "_cpu_ticks", lambda: (m.ticks, m.running))
    monkeypatch.setattr(th.time, "monotonic", lambda: m.now)
    monkeypatch.setattr(th.time, "process_time", lambda: m.own)
    return m


def test_automatic_count_follows_the_load(machine):
    old = torch.get_num_threads()
    machine.running = 3  # two other processes running at the start: one thread
    with th.Threads(0, interval=2.0) as t:
        assert t.count == 1
        machine.advance(1.0, others=0.0, own=1.0)
        th.poll()
        assert t.count == 1  # not yet re-measured
        machine.advance(1.5, others=0.0, own=1.0)
        th.poll()
        assert t.count == 2  # the others stopped
        machine.advance(2.5, others=1.0, own=1.0)
        th.poll()
        assert t.count == 1  # a competing job took a core
        machine.advance(2.5, others=0.1, own=1.9)
        th.poll()
        assert t.count == 2
    assert torch.get_num_threads() == old


def test_fixed_count_and_other_threads_leave_it_alone(machine):
    with th.Threads(1) as t:
        machine.advance(5, others=0.0, own=1.0)
        th.poll()
        assert t.count == 1
    with th.Threads(0) as t:
        machine.advance(5, others=2.0, own=0.0)
        worker = threading.Thread(target=th.poll)  # OpenMP's count is per thread: only the owner polls
        worker.start()
        worker.join()
        assert t.count == 2
        th.poll()
        assert t.count == 1


def test_share_and_reserve(machine):
    with th.Threads(0, share=2) as t:
        assert t.count == 1
    with th.Threads(0, reserve=1) as t:
        assert t.count == 1
    with pytest.raises(ValueError):
        th.Threads(-1)


def test_real_machine_gives_a_sane_count():
    with th.Threads(0) as t:
        assert 1 <= t.count <= th.available_cores()
        th.poll()


def test_dropout_keeps_the_expected_share_and_scales():
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x, 0.3, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # the gradient is the mask
    layer = Dropout(0.3).eval()
    assert layer(x) is x and dropout(x, 0.0, True) is x
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_governed_defers_to_an_active_governor_of_the_same_thread(machine):
    machine.running = 1  # idle: two threads
    with th.governed():
        assert torch.get_num_threads() == 2
        with th.Threads(1), th.governed():
            assert torch.get_num_threads() == 1  # the caller's choice rules
            seen = []
            worker = threading.Thread(target=lambda: seen.append(th.active()))
            worker.start()
            worker.join()
            assert seen == [None]  # governors are per thread
        assert torch.get_num_threads() == 2
