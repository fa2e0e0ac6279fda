"""Exponential moving average of the weights (Polyak averaging)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightEMA:
    """An average of the trainable weights, updated after every optimiser step.

    Dev evaluation and the saved model use the averaged weights; training continues on the raw
    ones. The decay warms up as min(decay, (1 + n) / (10 + n)) so early averages are not
    dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Temporarily load the averaged weights into the model."""
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
        return {f"ema.{n}": s for n, s in zip(self.names, self.shadow, strict=True)}

    def load(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        """Restore from :meth:`tensors` output; ``ValueError`` when one is missing or misshapen."""
        for i, n in enumerate(self.names):
            t = tensors.get(f"ema.{n}")
            if t is None or t.shape != self.shadow[i].shape or t.dtype != self.shadow[i].dtype:
                raise ValueError(f"checkpoint has no usable averaged weights for {n}")
            self.shadow[i] = t.to(self.shadow[i].device).clone()
        self.updates = updates


def averaged(ema: WeightEMA | None) -> contextlib.AbstractContextManager:
    """``ema.applied()``, or nothing without an average."""
    return ema.applied() if ema is not None else contextlib.nullcontext()
