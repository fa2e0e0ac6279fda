"""Seeded, length-bucketed mini-batches (the same for an epoch however often it is rerun)."""

from __future__ import annotations

import random

from tagger.features import length_batches


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Index batches of similar lengths, shuffled per epoch from ``(seed, epoch)`` alone (resume-safe)."""
    rng = random.Random(seed * 100_003 + epoch)
    noise = [rng.random() for _ in lengths]
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], noise[i]))
    batches = length_batches(lengths, batch_size, order)
    rng.shuffle(batches)
    return batches
