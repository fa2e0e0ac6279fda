"""Data-parallel training with :mod:`torch.distributed` (``torchrun``), for every model kind.

``torchrun --standalone --nproc_per_node 2 -m tagger train P --out M`` (or ``tagger train ...
--nproc 2``, which launches exactly that) runs the same command in every process. torchrun sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init` (called by :func:`tagger.training.setup.setup`) joins the process group from them:
gloo on CPU, NCCL on CUDA (each process on the GPU of its local rank).

What a process does (see :class:`tagger.training.loop.Trainer`):

* every rank builds the same model from the same seed and reads the same prepared directory;
  rank 0's parameters are broadcast once at the start (a safety net: they are equal already);
* each epoch's seeded batch plan is the single-process one; optimisation step ``k`` takes the
  plan's batches ``k*W .. k*W+W-1``, one per rank (:meth:`Task.rank_batches`; the language model
  splits the rows of its streams instead, so its steps are exactly those of one process);
* every rank back-propagates its *summed* loss; one all-reduce adds the gradients together with
  the item counts and losses, and the sum is divided by the global item count: the gradient of
  the mean loss over the union of the ranks' batches, exactly as one process computes it over
  that union. Clipping, the (fused) optimiser step and the weight average then run identically
  on every rank, so the replicas stay equal without further communication;
* rank 0 alone scores dev, keeps the best weights, writes ``metrics.jsonl``, the checkpoint and
  the model directory; it broadcasts the epoch's outcome (scores, improvement, stop decision) so
  that every rank follows the same schedule and stops together;
* dropout draws from a generator reseeded per (seed, epoch, rank): a resumed run repeats an
  uninterrupted one, whichever rank was killed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from tagger.errors import TaggerError

#: How long a rank waits at a collective (rank 0 scoring a large dev set, writing a checkpoint).
TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class Group:
    """This process's place in the job."""

    rank: int
    world: int
    local_world: int = 1  # ranks on this host (they share its cores)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise TaggerError(f"environment variable {name}={value!r} is not an integer") from None


def launched() -> bool:
    """True in a process that torchrun (or an equivalent launcher) started as one of several."""
    return _env_int("WORLD_SIZE", 1) > 1


def env_rank() -> int:
    """This process's rank as the launcher set it (0 outside a distributed launch)."""
    return _env_int("RANK", 0)


def init(device: str) -> str:
    """Join the process group when launched by torchrun; returns the device this rank trains on.

    gloo for CPU training, NCCL for CUDA (``cuda`` becomes ``cuda:LOCAL_RANK``). Outside a
    distributed launch nothing happens and ``device`` is returned unchanged.
    """
    if not launched():
        return device
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = device.startswith("cuda")
    if cuda:
        if device == "cuda":
            device = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
            if name not in os.environ:
                raise TaggerError(f"WORLD_SIZE is set but {name} is not: start distributed training with torchrun")
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return device


def current() -> Group | None:
    """The process group this process trains in, or ``None`` for single-process training."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Group(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_WORLD_SIZE", dist.get_world_size()))


def is_main() -> bool:
    """True in rank 0, and in single-process training (the process that writes files and logs)."""
    group = current()
    return group.main if group is not None else env_rank() == 0


def main_log(log: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """``log`` in the process that logs (rank 0 or the only one), ``None`` in the other ranks."""
    return log if env_rank() == 0 else None


def shutdown() -> None:
    """Leave the process group (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(obj: Any, group: Group) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; small objects only)."""
    box = [obj if group.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The torch seed of ``rank`` in ``epoch`` (dropout, word dropout) of a distributed run."""
    return (seed * 1_000_003 + epoch * 10_007 + rank * 7919 + 17) % (2**63 - 1)


class GradientSync:
    """Averages gradients over the ranks, weighted by the items each rank's batch held.

    Each rank back-propagates its summed loss (``Step.loss * Step.items``); :meth:`reduce` adds
    the gradients and the per-step counters of all ranks in one all-reduce and divides the
    gradients by the global item count. A rank without a batch in a step (the plan's last,
    incomplete round) takes part with zero gradients and zero items.
    """

    def __init__(self, model: nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self.dtype = self.params[0].dtype if self.params else torch.float32

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Rank 0's parameters on every rank."""
        with torch.no_grad():
            for p in model.parameters():
                dist.broadcast(p.data, src=0)

    def reduce(self, items: float, total: float, stop: bool, clock: float = 0.0) -> tuple[float, float, bool, float]:
        """All-reduce gradients and counters; returns the global (items, summed loss, stop, clock).

        ``clock`` is summed like the counters: given by rank 0 alone (0 elsewhere), every rank gets its value.
        """
        parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params]
        counters = torch.tensor([items, total, 1.0 if stop else 0.0, clock], dtype=self.dtype, device=self.device)
        flat = torch.cat([*parts, counters])
        dist.all_reduce(flat)
        n_items, n_total, n_stop, n_clock = flat[-4:].tolist()
        if n_items > 0:
            flat.div_(n_items)
        offset = 0
        for p in self.params:  # the gradients become views of the reduced buffer (no copy back)
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n
        return n_items, n_total, n_stop > 0, n_clock
