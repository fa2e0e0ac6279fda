"""Encoded sentences as flat tensors (tagger.features.EncodedCorpus) and their batches."""

from __future__ import annotations

import random

import pytest
import torch

from tagger.features import Encoded, EncodedCorpus, collate, length_batches


def _sentences() -> list[Encoded]:
    return [
        Encoded(words=[5, 6, 7], chars=[[3, 4], [5], [3, 4]], casing=[1, 2, 1], tags=[1, 2, 1]),
        Encoded(words=[8], chars=[[9, 9, 9, 9]], casing=[3], tags=[0]),
        Encoded(words=[5, 9], chars=[[3, 4], [6, 1]], casing=[1, 4], tags=[2, 2]),
    ]


def test_batch_pads_and_points_each_token_to_its_characters():
    items = _sentences()
    corpus = EncodedCorpus(items)
    b = corpus.batch([2, 0])
    assert b.index == [2, 0]
    assert b.words.tolist() == [[5, 9, 0], [5, 6, 7]]
    assert b.casing.tolist() == [[1, 4, 0], [1, 2, 1]]
    assert b.tags.tolist() == [[2, 2, 0], [1, 2, 1]]
    assert b.mask.tolist() == [[True, True, False], [True, True, True]]
    assert b.lengths.tolist() == [2, 3]
    for row, i in enumerate([2, 0]):
        for j, chars in enumerate(items[i].chars):
            got = b.chars[b.char_rows[row, j]].tolist()
            assert got[: len(chars)] == chars and not any(got[len(chars):])
    distinct = {tuple(c) for i in (2, 0) for c in items[i].chars}
    assert len(distinct) <= b.chars.shape[0] <= len(distinct) + 1  # once per distinct token (+ padding's row)
    assert b.chars.shape[1] == 2  # as wide as the batch's longest token, not the corpus's


def test_collate_and_untagged_sentences():
    items = [Encoded(words=[4], chars=[[2]], casing=[1]), Encoded(words=[5, 6], chars=[[3], [2]], casing=[1, 1])]
    b = collate(items, [7, 9])
    assert b.tags is None and b.index == [7, 9] and b.words.tolist() == [[4, 0], [5, 6]]
    with pytest.raises(ValueError):
        EncodedCorpus([Encoded(words=[], chars=[], casing=[])])
    assert torch.equal(EncodedCorpus(items).batch([1]).words, torch.tensor([[5, 6]]))


@pytest.mark.parametrize("seed", range(20))
def test_length_batches_keep_order_and_bounds(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 130) for _ in range(rng.randint(1, 400))]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if seed % 2 else None
    batch_size, max_tokens = rng.choice([1, 7, 100, 256]), rng.choice([None, 50, 300, 4096])
    batches = length_batches(lengths, batch_size, order, max_tokens)
    assert [i for b in batches for i in b] == list(order or sorted(range(len(lengths)), key=lambda i: lengths[i]))
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert len(b) * max(lengths[i] for i in b) <= max_tokens  # a longer sentence: alone
        if max_tokens is not None and len(b) > 16:
            assert len(b) & (len(b) - 1) == 0  # a power of two: no dummy rows in the BiLSTM


def test_length_batches_by_tokens():
    lengths = [100, 50, 50, 10, 10, 10, 10, 200]
    assert length_batches(lengths, 256, [7, 0, 1, 2, 3, 4, 5, 6], max_tokens=100) == [[7], [0], [1, 2], [3, 4, 5, 6]]
    assert length_batches(lengths, 3) == [[3, 4, 5], [6, 1, 2], [0, 7]]
