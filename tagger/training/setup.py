"""Device and seeding: the first thing every training run does (threads: :mod:`tagger.threads`)."""

from __future__ import annotations

import torch

from tagger.errors import TaggerError
from tagger.training import distributed

DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; a CUDA name without CUDA is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TaggerError("--device cuda: no CUDA device is available (use --device cpu)")
    return name


def setup(seed: int, device: str = "auto") -> str:
    """Seed torch; returns the resolved device.

    Call it before the model is built: the initial weights come from the seeded generator.
    In a process started by torchrun it also joins the process group
    (:func:`tagger.training.distributed.init`; a CUDA device becomes the local rank's GPU).
    """
    resolved = distributed.init(resolve_device(device))
    torch.manual_seed(seed)
    return resolved
