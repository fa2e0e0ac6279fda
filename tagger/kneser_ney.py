"""An interpolated Kneser-Ney trigram language model: the n-gram baseline of ``tagger generate``.

Estimated from plain count dictionaries over word ids of the same vocabulary (and ``<unk>``
mapping) as the LSTM language model, and evaluated on the same tokens, so the two
perplexities are directly comparable.

For a trigram ``u v w`` (Chen & Goodman 1999, interpolated, one discount per order)::

    P3(w | u v) = max(c(u v w) - D3, 0) / c(u v ·) + D3 · N1+(u v ·) / c(u v ·) · P2(w | v)
    P2(w | v)   = max(N1+(· v w) - D2, 0) / N1+(· v ·) + D2 · N1+(v ·)' / N1+(· v ·) · P1(w)
    P1(w)       = max(N1+(· w) - D1, 0) / N1+(· ·) + D1 · |{w: N1+(· w) > 0}| / N1+(· ·) · 1/|V|

where ``N1+(· v w)`` counts the distinct words seen before ``v w`` (continuation counts),
``N1+(v ·)'`` the distinct words following ``v`` with a non-zero continuation count, and an
unseen context falls back to the next lower order. The last level interpolates with the
uniform distribution, so every vocabulary item, ``<unk>`` included, has non-zero probability
and each conditional distribution sums to one. Discounts are ``D = n1 / (n1 + 2 n2)``.

Each sentence is predicted token by token and then its end ``<eos>``; the context of the
first word is ``<eos> <eos>`` (the end of the previous sentence acts as the start symbol).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence


def _discount(counts: Iterable[int]) -> float:
    hist = Counter(c for c in counts if c <= 2)
    n1, n2 = hist.get(1, 0), hist.get(2, 0)
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


class KneserNeyTrigram:
    """Interpolated Kneser-Ney trigram model over integer ids ``0 .. vocab_size-1``.

    ``bos`` is the id used as the (two-token) context of a sentence's first word and
    ``eos`` the id predicted at its end; they may be the same id (``<eos>``).
    """

    def __init__(self, vocab_size: int, bos: int, eos: int) -> None:
        if vocab_size < 1:
            raise ValueError("vocab_size must be positive")
        self.V = vocab_size
        self.bos = bos
        self.eos = eos
        self.tri: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)  # c(u v w)
        self.fitted = False

    # ------------------------------------------------------------------ estimation

    def events(self, sentence: Sequence[int]) -> Iterable[tuple[int, int, int]]:
        """``(u, v, w)`` for every predicted token of one sentence (its words, then eos)."""
        u, v = self.bos, self.bos
        for w in [*sentence, self.eos]:
            yield u, v, w
            u, v = v, w

    def fit(self, sentences: Iterable[Sequence[int]]) -> KneserNeyTrigram:
        tri = self.tri
        for s in sentences:
            for u, v, w in self.events(s):
                if not 0 <= w < self.V:
                    raise ValueError(f"token id {w} outside the vocabulary of {self.V}")
                d = tri[(u, v)]
                d[w] = d.get(w, 0) + 1
        # Trigram context totals and types.
        self.ctx_total = {ctx: sum(d.values()) for ctx, d in tri.items()}
        self.ctx_types = {ctx: len(d) for ctx, d in tri.items()}
        # Bigram continuation counts N1+(· v w).
        bi: dict[int, dict[int, int]] = defaultdict(dict)
        for (_, v), d in tri.items():
            bv = bi[v]
            for w in d:
                bv[w] = bv.get(w, 0) + 1
        self.bi = dict(bi)
        self.bi_total = {v: sum(d.values()) for v, d in bi.items()}
        self.bi_types = {v: len(d) for v, d in bi.items()}
        # Unigram continuation counts N1+(· w).
        uni: dict[int, int] = {}
        for d in bi.values():
            for w in d:
                uni[w] = uni.get(w, 0) + 1
        self.uni = uni
        self.uni_total = sum(uni.values())
        self.D3 = _discount(c for d in tri.values() for c in d.values())
        self.D2 = _discount(c for d in bi.values() for c in d.values())
        self.D1 = _discount(uni.values())
        self.fitted = True
        return self

    # ------------------------------------------------------------------ probabilities

    def p_uni(self, w: int) -> float:
        uniform = 1.0 / self.V
        if self.uni_total == 0:
            return uniform
        c = self.uni.get(w, 0)
        return (max(c - self.D1, 0.0) + self.D1 * len(self.uni) * uniform) / self.uni_total

    def p_bi(self, w: int, v: int) -> float:
        total = self.bi_total.get(v)
        if not total:
            return self.p_uni(w)
        c = self.bi[v].get(w, 0)
        return (max(c - self.D2, 0.0) + self.D2 * self.bi_types[v] * self.p_uni(w)) / total

    def prob(self, w: int, u: int, v: int) -> float:
        """``P(w | u v)``."""
        if not self.fitted:
            raise RuntimeError("fit the model first")
        d = self.tri.get((u, v))
        if not d:
            return self.p_bi(w, v)
        total = self.ctx_total[(u, v)]
        c = d.get(w, 0)
        return (max(c - self.D3, 0.0) + self.D3 * self.ctx_types[(u, v)] * self.p_bi(w, v)) / total

    def distribution(self, u: int, v: int) -> list[float]:
        """``P(· | u v)`` over the whole vocabulary (sums to 1)."""
        return [self.prob(w, u, v) for w in range(self.V)]

    # ------------------------------------------------------------------ evaluation

    def log_likelihood(self, sentences: Iterable[Sequence[int]]) -> tuple[float, int]:
        """Total natural-log probability and number of predicted tokens (words + eos)."""
        total, n = 0.0, 0
        for s in sentences:
            for u, v, w in self.events(s):
                total += math.log(self.prob(w, u, v))
                n += 1
        return total, n

    def perplexity(self, sentences: Iterable[Sequence[int]]) -> float:
        ll, n = self.log_likelihood(sentences)
        if n == 0:
            raise ValueError("no tokens to evaluate")
        return math.exp(-ll / n)
