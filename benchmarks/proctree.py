"""A process and its descendants, from Linux's /proc: who they are, their CPU time and memory.

Shared by the benchmarks that measure a command with child processes (torchrun ranks, Ray
workers, uvicorn workers, annotate's forked workers). A process that ends between two reads
counts as nothing rather than an error.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "pss_mb", "rss_mb", "tree"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    """Parent pid → its children's pids, for every process now running."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read(f"/proc/{name}/stat")
            if ")" in stat:
                kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(name))
    return kids


def tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    kids = _children()
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(kids.get(pid, []))
    return seen


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by one process (0 once it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if ")" not in stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _field_kb(path: str, name: str) -> int:
    for line in _read(path).splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of these processes together (MB): shared pages counted once."""
    return sum(_field_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) / 1024


def rss_mb(pids: list[int]) -> float:
    """Resident set size of these processes, summed (MB): pages shared by forked workers count each time."""
    return sum(_field_kb(f"/proc/{p}/status", "VmRSS:") for p in pids) / 1024
