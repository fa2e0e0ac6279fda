"""Kill a training command with SIGKILL mid-run, resume it, and compare with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import ROOT


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "tagger.cli", *map(str, args)]


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, env=_env(), timeout=300)


def strip_timing(rows: list[dict]) -> list[dict]:
    """metrics.jsonl rows without their timings and thread counts (they depend on the machine)."""
    return [{k: v for k, v in r.items() if "second" not in k and not k.endswith("_per_s") and k != "threads"}
            for r in rows]


def metrics(out: Path) -> list[dict]:
    """metrics.jsonl rows without their timings and thread counts."""
    return strip_timing([json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])


def metrics_lines(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def kill_after(args: list, out: Path, lines: int, timeout: float = 120) -> None:
    """Start the command, SIGKILL it once metrics.jsonl has ``lines`` rows (the next epoch is under way)."""
    proc = subprocess.Popen(cli(*args), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=_env())
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and metrics_lines(out) < lines:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def checkpoint_tensors(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "checkpoint.safetensors"))


def assert_same_run(a: Path, b: Path) -> None:
    """Same metrics (timings aside), same best weights, same final checkpoint tensors, bit for bit."""
    assert metrics(a) == metrics(b)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert not [p.name for p in a.iterdir() if ".tmp-" in p.name], "temporary files left behind"
