"""Data-parallel training under torchrun (gloo, 2 processes on this machine).

* one optimisation step of 2 ranks over batches A and B equals one process's step over A∪B
  (the mean loss over the union: clipping, fused momentum SGD and the weight average included);
* ``tagger train --nproc 2`` on the sample corpus: rank 0 alone writes the model directory, a run
  whose rank 1 is killed mid-run resumes with ``--resume`` and ends within noise of the dev score
  of one process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SAMPLE
from distributed_util import STEP_OPTIONS, free_port, one_step

from tagger.commands.prepare import PrepareOptions, prepare
from tagger.commands.train import TrainOptions

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

UTIL = Path(__file__).with_name("distributed_util.py")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    return {**env, **extra}


@pytest.fixture(scope="module")
def tiny_prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("prep")
    vec = d / "vectors.txt"
    vec.write_text("the 0.1 0.2 0.3 0.4\nberlin 0.5 0.1 0.1 0.1\n")
    prepare(PrepareOptions(train=str(SAMPLE / "train.conll"), dev=str(SAMPLE / "dev.conll"), embeddings=str(vec)),
            d / "P")
    return d / "P"


def test_one_step_of_two_ranks_equals_one_process_over_the_union(tiny_prepared, tmp_path):
    from safetensors.torch import load_file

    port = str(free_port())
    ranks = [subprocess.Popen([sys.executable, str(UTIL), str(tiny_prepared), str(tmp_path / "two")],
                              env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
             for r in range(2)]
    one_step(str(tiny_prepared), str(tmp_path / "one"))  # this process: no process group
    assert [p.wait(timeout=120) for p in ranks] == [0, 0]
    one = load_file(tmp_path / "one")
    rank0, rank1 = load_file(tmp_path / "two.rank0"), load_file(tmp_path / "two.rank1")
    assert set(one) == set(rank0) and any(k.startswith("ema.") for k in one)
    for k in one:
        assert torch.equal(rank0[k], rank1[k]), k  # the replicas stay identical
        torch.testing.assert_close(rank0[k], one[k], rtol=1e-5, atol=1e-6, msg=k)
    # and the step did something: the parameters moved from their seeded initial values
    from tagger.commands.train import TaggerTask
    from tagger.prepared import load_prepared

    torch.manual_seed(STEP_OPTIONS["seed"])
    init = TaggerTask(load_prepared(tiny_prepared), tiny_prepared, TrainOptions(**STEP_OPTIONS), "cpu").model
    assert not torch.equal(init.crf.transitions.detach(), one["param.crf.transitions"])


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.slow
def test_two_processes_train_the_sample_kill_a_rank_and_resume(learned, tmp_path):
    model, summary = learned  # one process, the same options (conftest.py)
    epochs = 15
    prepared = json.loads((model / "config.json").read_text())["training"]["prepared"]
    args = [sys.executable, "-m", "tagger", "train", prepared, "--out", str(tmp_path / "M2"),
            "--epochs", str(epochs), "--seed", "1", "--threads", "1", "--nproc", "2"]
    # kill rank 1 (a grandchild: tagger --nproc -> torchrun -> ranks) once epoch 2 is written
    launcher = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, killed = time.time() + 120, False
    while time.time() < deadline and launcher.poll() is None:
        out = tmp_path / "M2" / "metrics.jsonl"
        if out.exists() and len(out.read_text().splitlines()) >= 2:
            for agent in _children(launcher.pid):
                for rank in _children(agent):
                    cmdline = Path(f"/proc/{rank}/cmdline").read_bytes().split(b"\0")
                    environ = Path(f"/proc/{rank}/environ").read_bytes().split(b"\0")
                    if b"tagger" in cmdline and b"RANK=1" in environ:
                        os.kill(rank, signal.SIGKILL)
                        killed = True
            if killed:
                break
        time.sleep(0.05)
    assert killed, "rank 1 was not found"
    assert launcher.wait(timeout=120) != 0  # torchrun stops the other rank and fails
    assert 2 <= len(_metrics(tmp_path / "M2")) < epochs
    done = subprocess.run([*args, "--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 15 epochs") == 1  # only rank 0 reports
    rows = _metrics(tmp_path / "M2")
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))  # one row per epoch: rank 0 alone writes
    two = json.loads((tmp_path / "M2" / "train_summary.json").read_text())["best_dev"]
    one = summary["best_dev"]
    # two ranks take half the steps per epoch (each over two batches): the same score within noise
    assert one > 0.9 and two > 0.9 and abs(one - two) < 0.04, (one, two)
