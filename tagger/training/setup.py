"""Device and seeding: the first thing every training run does (threads: :mod:`tagger.threads`)."""

from __future__ import annotations

import torch

from tagger.errors import TaggerError

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
    """
    resolved = resolve_device(device)
    torch.manual_seed(seed)
    return resolved
