"""Exponential moving average of the weights (Polyak averaging)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightEMA:
    """An average of the trainable weights, counting every optimiser step.

    Dev evaluation and the saved model use the averaged weights; training continues on the raw
    ones. The decay of step n warms up as min(decay, (1 + n) / (10 + n)) so early averages are
    not dominated by the random initialisation. The average takes in the weights every
    ``every`` steps with the product of those steps' decays (and whenever it is read): a pass
    over every weight, the word embeddings included, is a sizeable part of a small step, and
    with a horizon of ~1,000 steps sampling every 4th changes the average by a rounding error.
    """

    def __init__(self, model: nn.Module, decay: float, every: int = 4) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.decay = decay
        self.every = every
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0  # optimiser steps counted
        self._keep = 1.0  # product of the decays of the steps not yet taken in

    def update(self) -> None:
        """Count one optimiser step (taken in at every ``every``-th)."""
        self.updates += 1
        self._keep *= min(self.decay, (1 + self.updates) / (10 + self.updates))
        if self.updates % self.every == 0:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Take in the current weights for the steps counted since the last time."""
        if self._keep < 1.0:
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - self._keep)
            self._keep = 1.0

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Temporarily load the averaged weights into the model."""
        self.flush()
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, b in zip(self.params, backup, strict=True):
                    p.copy_(b)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The averages, named ``ema.<parameter name>`` (for the checkpoint)."""
        self.flush()
        return {f"ema.{n}": s for n, s in zip(self.names, self.shadow, strict=True)}

    def load(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        """Restore from :meth:`tensors` output; ``ValueError`` when one is missing or misshapen."""
        for i, n in enumerate(self.names):
            t = tensors.get(f"ema.{n}")
            if t is None or t.shape != self.shadow[i].shape or t.dtype != self.shadow[i].dtype:
                raise ValueError(f"checkpoint has no usable averaged weights for {n}")
            self.shadow[i] = t.to(self.shadow[i].device).clone()
        self.updates = updates
        self._keep = 1.0


def averaged(ema: WeightEMA | None) -> contextlib.AbstractContextManager:
    """``ema.applied()``, or nothing without an average."""
    return ema.applied() if ema is not None else contextlib.nullcontext()
