"""SpanReader (vectorised conlleval chunking) against schemes.to_spans on random tag sequences."""

from __future__ import annotations

import random

import pytest
import torch

from tagger.schemes import to_spans
from tagger.spans import SpanReader

LABELS = {
    "bioes": ["<pad>", "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "L-ORG", "U-ORG"],
    "iob2": ["<pad>", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-X-Y", "I-X-Y"],
}


@pytest.mark.parametrize("scheme", ["bioes", "iob2", "iob1"])
def test_matches_to_spans_on_random_sequences(scheme):
    itos = LABELS["bioes" if scheme == "bioes" else "iob2"]
    reader = SpanReader(itos)
    rng = random.Random(scheme)
    for _ in range(200):
        lengths = [rng.randint(1, 9) for _ in range(rng.randint(1, 6))]
        paths = torch.tensor([[rng.randrange(1, len(itos)) for _ in range(max(lengths))] for _ in lengths])
        got = reader(paths, lengths)
        for b, n in enumerate(lengths):
            tags = [itos[i] for i in paths[b, :n].tolist()]
            assert got[b] == to_spans(tags, scheme), tags


def test_padding_label_and_empty_rows():
    reader = SpanReader(LABELS["iob2"])
    paths = torch.tensor([[0, 2, 3], [1, 1, 1]])
    assert reader(paths, [3, 2]) == [[("PER", 1, 3)], []]
