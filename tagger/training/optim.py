"""Optimisers and per-epoch learning-rate schedules."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "adamw")

#: ``schedule(epoch, lr, improved)``: the learning rate of ``epoch`` (1-based), given the rate of
#: the epoch before and whether that epoch improved the dev score (True for the first epoch).
Schedule = Callable[[int, float, bool], float]


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``sgd`` (with momentum) | ``adam`` | ``adamw`` over the trainable parameters.

    The fused kernels are used where torch has them (the same update, one kernel per
    parameter group): on CPU they are 2x (SGD) to 10x (Adam) faster on a dense embedding
    update, which otherwise dominates a step of a small model.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
    params = [p for p in model.parameters() if p.requires_grad]
    def build(fused: bool | None) -> torch.optim.Optimizer:
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, weight_decay=weight_decay, fused=fused)

    try:
        return build(fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or dtype
        return build(fused=None)


def constant(base: float) -> Schedule:
    """The same rate every epoch."""
    return lambda epoch, lr, improved: base


def inverse_decay(base: float, decay: float) -> Schedule:
    """``base / (1 + decay * (epoch - 1))`` (Ma & Hovy 2016)."""
    return lambda epoch, lr, improved: base / (1.0 + decay * (epoch - 1))


def decay_on_plateau(base: float, factor: float) -> Schedule:
    """Multiply the rate by ``factor`` after every epoch that did not improve the dev score."""
    return lambda epoch, lr, improved: base if epoch == 1 else (lr if improved else lr * factor)
