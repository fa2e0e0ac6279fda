"""Helpers of tests/test_distributed.py: one optimisation step in a rank of a 2-process gloo group.

``python tests/distributed_util.py PREPARED OUT.safetensors`` with RANK / WORLD_SIZE / MASTER_ADDR /
MASTER_PORT set (as torchrun sets them) takes one step over this rank's batch of :func:`step_batches`
and saves the parameters and averaged weights; without WORLD_SIZE it takes the step over the union.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: No dropout (the ranks and the single process must see the same model function); clipping,
#: momentum SGD (fused) and the weight average stay on: they must see the averaged gradient.
STEP_OPTIONS = dict(hidden=16, char_filters=8, dropout=0.0, word_dropout=0.0, seed=5, threads=1, clip=1.0,
                    ema=0.9)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_batches(task) -> tuple[list[int], list[int]]:
    """Batches A and B of different sizes (the weighting by items matters)."""
    plan = task.batches(1)
    return plan[0][:5], plan[1]


def one_step(prepared: str, out: str) -> None:
    import torch

    from tagger.commands.train import TaggerTask, TrainOptions
    from tagger.modeldir import save_tensors
    from tagger.prepared import load_prepared
    from tagger.training import distributed
    from tagger.training.loop import Trainer
    from tagger.training.setup import setup

    torch.set_num_threads(1)
    opts = TrainOptions(**STEP_OPTIONS)
    device = setup(opts.seed, "cpu")
    task = TaggerTask(load_prepared(prepared), prepared, opts, device)
    trainer = Trainer(task, opts.recipe())
    a, b = step_batches(task)
    group = distributed.current()
    task.model.train()
    if group is None:
        trainer.train_step(a + b)
    else:
        trainer.train_step([a, b][group.rank])
    tensors = {f"param.{n}": p.detach().clone() for n, p in task.model.named_parameters()}
    assert trainer.ema is not None
    tensors.update(trainer.ema.tensors())
    save_tensors(Path(out if group is None else f"{out}.rank{group.rank}"), tensors)
    distributed.shutdown()


if __name__ == "__main__":
    one_step(sys.argv[1], sys.argv[2])
