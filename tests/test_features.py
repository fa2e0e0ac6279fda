"""Encoded sentences as flat tensors (tagger.features.EncodedCorpus) and their batches."""

from __future__ import annotations

import pytest
import torch

from tagger.features import Encoded, EncodedCorpus, collate


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
