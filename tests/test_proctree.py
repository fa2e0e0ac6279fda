"""benchmarks/proctree.py: a process tree's members, CPU time and memory from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import benchmark_module

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _proctree():
    return benchmark_module("proctree")


def test_tree_cpu_and_memory_of_a_parent_with_a_child():
    pt = _proctree()
    # A parent that starts a child, then both burn a little CPU and wait.
    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', "
            "'import time; t = time.process_time(); [0 for _ in iter(lambda: time.process_time() - t > 0.3, True)]; "
            "time.sleep(30)']); print(c.pid, flush=True); time.sleep(30)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        pids = pt.tree(parent.pid)
        assert pids[0] == parent.pid and child in pids
        deadline = time.monotonic() + 20
        while pt.cpu_seconds(child) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pt.cpu_seconds(child) >= 0.3
        assert pt.rss_mb(pids) > pt.rss_mb([parent.pid]) > 1
        assert 1 < pt.pss_mb(pids) <= pt.rss_mb(pids) + 1
    finally:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()
    gone = parent.pid
    assert pt.cpu_seconds(gone) == 0.0 and pt.rss_mb([gone]) == 0.0 and pt.tree(gone) == [gone]
