"""Torch CPU threads chosen from the cores that other processes leave free, re-checked as a run goes.

Our matrices are small, so how OpenMP threads wait for each other matters more than how many
there are. On an idle 2-core machine two threads that spin-wait briefly (OpenMP's default) train
~10% faster than one, and 2-3x faster than two threads that sleep at once (``OMP_WAIT_POLICY=
PASSIVE``); but two threads that share their cores with another busy process run up to 5x slower
than one. So nothing changes the wait policy; instead :class:`Threads` sets torch's thread count
to the free cores (cores this process may use, less the CPU time other processes took over the
last few seconds, from ``/proc/stat``) and re-measures every ``interval`` seconds while the run
polls it (:func:`poll`, called once per batch by the training loop and per block of sentences by
prediction). ``--threads N`` fixes the count instead.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from pathlib import Path

import torch

__all__ = ["Threads", "active", "available_cores", "free_cores", "governed", "poll"]

_STAT = Path("/proc/stat")
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_IDLE_OTHERS = 0.3  # other processes' CPU use (in cores) below which a core counts as free


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_ticks() -> tuple[int, int] | None:
    """Busy clock ticks of this process's CPUs, and the processes running now (None without /proc)."""
    try:
        lines = _STAT.read_text().splitlines()
        mine = {f"cpu{i}" for i in os.sched_getaffinity(0)}
    except (OSError, AttributeError):
        return None
    busy, running = 0, 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name in mine:
            ticks = [int(v) for v in rest.split()]
            busy += sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # all but idle and iowait
        elif name == "procs_running":
            running = int(rest)
    return busy, running


def _threads_for(others: float, share: int = 1, reserve: int = 0) -> int:
    """Threads for one of ``share`` processes when other processes keep ``others`` cores busy and
    ``reserve`` cores are left to this process's other work."""
    taken = max(0, math.ceil(others - _IDLE_OTHERS))  # cores other processes keep busy
    return max(1, (available_cores() - taken - reserve) // share)


def free_cores(share: int = 1, reserve: int = 0) -> int:
    """Threads for one of ``share`` processes from the processes running right now (no waiting).

    The instantaneous count is noisy; :class:`Threads` corrects it from measured CPU time.
    """
    sample = _cpu_ticks()
    if sample is not None:
        return _threads_for(max(0, sample[1] - 1), share, reserve)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average either
        load = 0.0
    return _threads_for(load, share, reserve)


class Threads:
    """Within ``with Threads(n):`` torch uses ``n`` threads, or with ``n == 0`` the free cores
    (shared by ``share`` processes, less ``reserve`` cores for this process's other threads).

    The count chosen automatically follows the machine: :func:`poll` re-measures other
    processes' CPU use every ``interval`` seconds. Torch's previous count is restored on exit.
    """

    _local = threading.local()  # the innermost active governor of each thread (OpenMP's count is per thread)

    def __init__(self, requested: int = 0, *, share: int = 1, reserve: int = 0, interval: float = 2.0) -> None:
        if requested < 0:
            raise ValueError("threads must be >= 0")
        self.requested = requested
        self.share = max(1, share)
        self.reserve = reserve
        self.interval = interval
        self._old = 0
        self._owner = 0
        self._last: tuple[float, float, int] | None = None  # (wall, own CPU seconds, busy ticks)
        self._outer: Threads | None = None

    def __enter__(self) -> Threads:
        self._old = torch.get_num_threads()
        self._owner = threading.get_ident()
        torch.set_num_threads(self.requested or free_cores(self.share, self.reserve))
        self._mark()
        self._outer, Threads._local.active = active(), self
        return self

    def __exit__(self, *exc) -> None:
        Threads._local.active = self._outer
        torch.set_num_threads(self._old)

    @property
    def count(self) -> int:
        return torch.get_num_threads()

    def _mark(self) -> None:
        sample = _cpu_ticks()
        self._last = None if sample is None else (time.monotonic(), time.process_time(), sample[0])

    def poll(self) -> None:
        """Re-measure and reset the thread count when ``interval`` has passed (automatic mode only)."""
        if self.requested or self._last is None or threading.get_ident() != self._owner:
            return  # the OpenMP thread count is per calling thread: only the owner may change it
        wall, own, ticks = self._last
        elapsed = time.monotonic() - wall
        if elapsed < self.interval:
            return
        sample = _cpu_ticks()
        if sample is None:
            return
        others = max(0.0, (sample[0] - ticks) / _HZ - (time.process_time() - own)) / elapsed
        threads = _threads_for(others, self.share, self.reserve)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self._mark()


def active() -> Threads | None:
    """The innermost :class:`Threads` this thread has entered, if any."""
    return getattr(Threads._local, "active", None)


def poll() -> None:
    """Let the innermost active :class:`Threads` re-measure the machine (cheap: mostly a clock read)."""
    governor = active()
    if governor is not None:
        governor.poll()


def governed(requested: int = 0) -> contextlib.AbstractContextManager:
    """``Threads(requested)``, or nothing when this thread is already inside one (which then rules)."""
    return contextlib.nullcontext() if active() is not None else Threads(requested)
