"""Device, threads and seeding: the first thing every training run does."""

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


def setup(seed: int, device: str = "auto", threads: int = 0) -> str:
    """Set torch's thread count (0 = its default) and seed; returns the resolved device.

    Call it before the model is built: the initial weights come from the seeded generator.
    """
    resolved = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return resolved
