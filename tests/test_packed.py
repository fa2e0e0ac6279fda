"""The packed time-major layout (tagger.nn.packed) and the CRF's flat entry points built on it.

The CRF's padded methods (decode, marginals, span_log_prob) go through the packed code and are
checked against brute-force enumeration in test_crf.py; here: the layout itself, and that a
flat pass over many sentences of any lengths equals one pass per sentence.
"""

from __future__ import annotations

import pytest
import torch
from test_crf import LABELS, scheme_constraints

from tagger.nn.crf import CRF
from tagger.nn.packed import PackedLayout


def test_layout_orders_tokens_like_a_packed_sequence():
    lengths = [2, 4, 1, 4, 3]
    layout = PackedLayout(lengths)
    assert layout.batch_sizes == [5, 4, 3, 2]  # sentences longer than t
    assert layout.offsets == [0, 5, 9, 12]
    flat = torch.arange(sum(lengths))
    # Sorted by decreasing length (stable): sentences 1, 3, 4, 0, 2.
    seqs = [flat[a : a + n] for a, n in zip([0, 2, 6, 7, 11], lengths, strict=True)]
    want = torch.nn.utils.rnn.pack_sequence([seqs[i] for i in (1, 3, 4, 0, 2)]).data
    assert torch.equal(layout.pack(flat), want)
    assert torch.equal(layout.unpack(layout.pack(flat)), flat)
    assert layout.first.tolist() == [0, 2, 6, 7, 11] and layout.last.tolist() == [1, 5, 6, 10, 13]
    assert layout.position.tolist() == [0, 1, 0, 1, 2, 3, 0, 0, 1, 2, 3, 0, 1, 2]
    assert layout.sentence_sums(torch.ones(14)).tolist() == layout.position.add(1).tolist()


@pytest.mark.parametrize("bad", [[], [3, 0], [[1, 2]]])
def test_layout_rejects_bad_lengths(bad):
    with pytest.raises(ValueError, match="positive sentence lengths"):
        PackedLayout(bad)


def _crf(kind: str | None, seed: int) -> CRF:
    g = torch.Generator().manual_seed(seed)
    n = len(LABELS[kind]) if kind else 4
    crf = CRF(n).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    if kind:
        crf.set_constraints(*scheme_constraints(LABELS[kind], "bioes" if kind == "bioes" else "iob2"))
    return crf


@pytest.mark.parametrize("kind", [None, "iob2-2", "bioes"])
@pytest.mark.parametrize("seed", range(3))
def test_flat_passes_equal_one_pass_per_sentence(kind, seed):
    crf = _crf(kind, seed)
    g = torch.Generator().manual_seed(100 + seed)
    lengths = torch.randint(1, 9, (7,), generator=g).tolist()
    flat = 3 * torch.randn(sum(lengths), crf.num_tags, generator=g, dtype=torch.float64)
    layout = PackedLayout(lengths)
    paths, scores = crf.decode_flat(flat, layout)
    marg = crf.marginals_flat(flat, layout)
    at = 0
    for s, n in enumerate(lengths):
        em, mask = flat[at : at + n].unsqueeze(0), torch.ones(1, n, dtype=torch.bool)
        one_path, one_score = crf.decode(em, mask)
        assert torch.equal(paths[at : at + n], one_path[0])
        torch.testing.assert_close(scores[s], one_score[0], rtol=0, atol=1e-9)
        torch.testing.assert_close(marg[at : at + n], crf.marginals(em, mask)[0], rtol=0, atol=1e-9)
        # Each span of the best path, scored flat and alone.
        for a in range(n):
            b = min(n, a + 2)
            tags = paths[at + a : at + b].unsqueeze(0)
            lp = crf.span_log_prob_flat(flat, layout, torch.tensor([s]), torch.tensor([a]), torch.tensor([b]), tags)
            alone = crf.span_log_prob(em, mask, torch.tensor([0]), torch.tensor([a]), torch.tensor([b]), tags)
            torch.testing.assert_close(lp, alone, rtol=0, atol=1e-9)
        at += n
