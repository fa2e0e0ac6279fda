"""The CRF's decoding side in numpy, without torch: what :mod:`tagger.nn.crf` computes for prediction.

Emissions come as a padded batch ``em`` ``(B, L, T)`` with ``lengths`` ``(B,)`` (each 1..L); values
past a sentence's length are ignored. The potentials are those of :class:`Potentials` (start
``(T,)``, transitions ``(T, T)`` [from, to], end ``(T,)``), with :data:`PENALTY` added to every
disallowed item, as :meth:`tagger.nn.crf.CRF._potentials` does when constrained::

    score(y) = start[y_0] + sum_t em[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_{n-1}]

* :func:`viterbi` runs in the emissions' dtype (float32 from the network, as the torch path does,
  so both break near-ties alike); ties go to the lowest tag index, as torch's ``max`` does.
* :func:`forward_backward` (marginals, span probabilities, n-best normalisation) runs in float64
  in rescaled probability space, as the torch path does (:mod:`tagger.nn.packed`), falling back to
  the log-space recursions (:func:`forward_backward_log`) for sentences whose scaling underflows;
  a disallowed item has probability ``exp(PENALTY) == 0`` in float64 either way.
* :func:`span_log_prob`: ``log P(y_s..y_{e-1} = tags)`` = alpha at the first position + the
  emissions and transitions inside + beta at the last - log Z (alphas exclude the end scores,
  betas include them, as in :meth:`tagger.nn.crf.CRF.span_log_prob_flat`).
* :func:`nbest`: the k best paths (the top-k Viterbi of :meth:`tagger.nn.crf.CRF.nbest`).

:class:`SpanReader` reads entity spans from tag ids with conlleval's rules (those of
:func:`tagger.schemes.to_spans` and :class:`tagger.spans.SpanReader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tagger.schemes import SchemeError, Span, chunk_spans, split_tag

#: Score added to a disallowed start tag, transition or end tag (:data:`tagger.nn.crf.PENALTY`).
PENALTY = -1e4


@dataclass
class Potentials:
    """A CRF's learned scores and which items are allowed (all True: unconstrained)."""

    start: np.ndarray  # (T,)
    trans: np.ndarray  # (T, T) [from, to]
    end: np.ndarray  # (T,)
    start_allowed: np.ndarray  # (T,) bool
    trans_allowed: np.ndarray  # (T, T) bool
    end_allowed: np.ndarray  # (T,) bool

    @property
    def has_constraints(self) -> bool:
        return not (self.start_allowed.all() and self.trans_allowed.all() and self.end_allowed.all())

    def constrained(self, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start, transition and end scores in ``dtype`` with :data:`PENALTY` on disallowed items."""
        dt = np.dtype(dtype)
        start = self.start.astype(dt) + (~self.start_allowed).astype(dt) * dt.type(PENALTY)
        trans = self.trans.astype(dt) + (~self.trans_allowed).astype(dt) * dt.type(PENALTY)
        end = self.end.astype(dt) + (~self.end_allowed).astype(dt) * dt.type(PENALTY)
        return start, trans, end


def _mask(lengths: np.ndarray, seq_len: int) -> np.ndarray:
    return np.arange(seq_len)[None, :] < np.asarray(lengths)[:, None]  # (B, L)


def viterbi(em: np.ndarray, lengths: np.ndarray, pot: Potentials) -> tuple[np.ndarray, np.ndarray]:
    """Best paths ``(B, L)`` (0 past each length) and their scores ``(B,)``, in ``em``'s dtype."""
    b, n, t = em.shape
    start, trans, end = pot.constrained(em.dtype)
    lengths = np.asarray(lengths)
    score = em[:, 0] + start  # (B, T)
    back = np.zeros((b, n, t), dtype=np.int64)  # (B, L, T) best previous tag; row 0 unused
    for i in range(1, n):
        cand = score[:, :, None] + trans  # (B, from, to)
        best = cand.argmax(1)  # (B, T): the first maximum, as torch.max
        nxt = np.take_along_axis(cand, best[:, None, :], 1)[:, 0] + em[:, i]  # (B, T)
        live = (i < lengths)[:, None]  # (B, 1)
        score = np.where(live, nxt, score)
        back[:, i] = best
    final = score + end  # (B, T)
    cur = final.argmax(1)  # (B,)
    top = final[np.arange(b), cur]
    paths = np.zeros((b, n), dtype=np.int64)
    for i in range(n - 1, -1, -1):
        live = i < lengths  # (B,)
        paths[:, i] = np.where(live, cur, 0)
        if i:
            prev = back[np.arange(b), i, cur]
            cur = np.where(live, prev, cur)
    return paths, top


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m).squeeze(axis)


#: A float64 scaling factor below this is about to underflow: the row is recomputed in log space.
_TINY64 = 1e-280


def forward_backward(em: np.ndarray, lengths: np.ndarray, pot: Potentials,
                     betas: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Constrained log alphas ``(B, L, T)`` (without the end scores), log betas ``(B, L, T)`` (with
    them; None if not ``betas``) and log Z ``(B,)``, in float64; meaningless past each length.

    In rescaled probability space (the recursions of :mod:`tagger.nn.packed`: one ``(B, T) @ (T, T)``
    product a step); sentences whose scaling underflows (every path through a disallowed item) are
    recomputed by the log-space recursions (:func:`forward_backward_log`).
    """
    em = np.asarray(em, dtype=np.float64)
    b, n, t = em.shape
    lengths = np.asarray(lengths)
    start, trans, end = pot.constrained(np.float64)
    mask = _mask(lengths, n)  # (B, L)
    last = np.arange(n)[None, :] == (lengths - 1)[:, None]  # (B, L)
    x = em.copy()
    x[:, 0] += start
    x += last[:, :, None] * end  # end scores at each sentence's last position
    tmax = trans.max()
    big_e = np.exp(trans - tmax)  # (T, T)
    m = x.max(2)  # (B, L)
    e = np.exp(x - m[:, :, None])  # (B, L, T)
    a = np.empty((b, n, t))
    z = np.ones((b, n))
    z[:, 0] = e[:, 0].sum(1)
    a[:, 0] = e[:, 0] / z[:, 0, None]
    for i in range(1, n):
        nxt = (a[:, i - 1] @ big_e) * e[:, i]  # (B, T)
        zi = nxt.sum(1)
        live = mask[:, i]
        z[:, i] = np.where(live, zi, 1.0)
        a[:, i] = np.where(live[:, None], nxt / np.where(live, zi, 1.0)[:, None], a[:, i - 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.where(mask, np.log(z) + m + np.where(np.arange(n) > 0, tmax, 0.0), 0.0)  # (B, L)
        scale = np.cumsum(steps, 1)  # (B, L) S_t
        log_z = scale[np.arange(b), lengths - 1]  # (B,)
        bad = ~((z > _TINY64) | ~mask).all(1)  # (B,); catches NaN too
        alphas = np.log(a) + scale[:, :, None]
        alphas -= last[:, :, None] * end
        log_b = None
        if betas:
            bb = np.empty((b, n, t))
            bb[:] = 1.0 / t
            for i in range(n - 2, -1, -1):
                nxt = (bb[:, i + 1] * e[:, i + 1]) @ big_e.T  # (B, T)
                live = mask[:, i + 1]
                bb[:, i] = np.where(live[:, None], nxt / np.where(live, nxt.sum(1), 1.0)[:, None], 1.0 / t)
            dot = (a * bb).sum(2)  # (B, L)
            bad |= ~((dot > 0) | ~mask).all(1)
            log_b = np.log(bb) + (log_z[:, None] - scale - np.log(dot))[:, :, None]
            log_b += last[:, :, None] * end
    bad |= ~np.isfinite(log_z)
    if bad.any():
        rows = np.nonzero(bad)[0]
        sub = forward_backward_log(em[rows], lengths[rows], pot, betas)
        alphas[rows] = sub[0]
        log_z[rows] = sub[2]
        if log_b is not None and sub[1] is not None:
            log_b[rows] = sub[1]
    return alphas, log_b, log_z


def forward_backward_log(em: np.ndarray, lengths: np.ndarray, pot: Potentials,
                         betas: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """:func:`forward_backward` by the log-space recursions (slower; never underflows)."""
    em = np.asarray(em, dtype=np.float64)
    b, n, t = em.shape
    lengths = np.asarray(lengths)
    start, trans, end = pot.constrained(np.float64)
    alphas = np.empty((b, n, t))
    alpha = start + em[:, 0]  # (B, T)
    alphas[:, 0] = alpha
    for i in range(1, n):
        nxt = _logsumexp(alpha[:, :, None] + trans, 1) + em[:, i]  # (B, T)
        alpha = np.where((i < lengths)[:, None], nxt, alpha)
        alphas[:, i] = alpha
    log_z = _logsumexp(alpha + end, 1)  # (B,)
    if not betas:
        return alphas, None, log_z
    out = np.empty((b, n, t))
    beta = np.broadcast_to(end, (b, t)).copy()  # (B, T): end at each sentence's last position
    out[:, n - 1] = beta
    for i in range(n - 2, -1, -1):
        nxt = _logsumexp(trans[None] + (em[:, i + 1] + beta)[:, None, :], 2)  # (B, T)
        beta = np.where((i + 1 < lengths)[:, None], nxt, end)
        out[:, i] = beta
    return alphas, out, log_z


def marginals(em: np.ndarray, lengths: np.ndarray, pot: Potentials) -> np.ndarray:
    """Per-token posteriors ``(B, L, T)`` float64; 0 past each length."""
    alphas, betas, log_z = forward_backward(em, lengths, pot)
    assert betas is not None
    probs = np.exp(alphas + betas - log_z[:, None, None])
    return np.where(_mask(lengths, em.shape[1])[:, :, None], probs, 0.0)


def span_log_prob(em: np.ndarray, fb: tuple[np.ndarray, np.ndarray | None, np.ndarray], pot: Potentials,
                  sentence: np.ndarray, start: np.ndarray, end: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """Log posterior ``(N,)`` float64 that positions ``start..end-1`` of sentence ``sentence`` carry
    ``tags`` ``(N, M)`` (any value past each span's length), from ``fb`` = :func:`forward_backward`."""
    alphas, betas, log_z = fb
    assert betas is not None
    em = np.asarray(em, dtype=np.float64)
    _, trans, _ = pot.constrained(np.float64)
    sentence, start, end = (np.asarray(a, dtype=np.int64) for a in (sentence, start, end))
    tags = np.asarray(tags, dtype=np.int64)
    seg = end - start  # (N,)
    steps = np.arange(tags.shape[1])  # (M,)
    inside = steps[None, :] < seg[:, None]  # (N, M)
    tags = np.where(inside, tags, 0)
    pos = np.minimum(start[:, None] + steps, (end - 1)[:, None])  # (N, M)
    emit = em[sentence[:, None], pos, tags]  # (N, M)
    inner = np.where(inside[:, 1:], emit[:, 1:] + trans[tags[:, :-1], tags[:, 1:]], 0.0).sum(1)  # (N,)
    first = alphas[sentence, start, tags[:, 0]]
    last_tags = tags[np.arange(len(seg)), np.maximum(seg - 1, 0)]
    last = betas[sentence, end - 1, last_tags]
    return first + inner + last - log_z[sentence]


def _allowed_paths(paths: np.ndarray, lengths: np.ndarray, pot: Potentials) -> np.ndarray:
    """Whether each path ``(B, k, L)`` uses only allowed items: ``(B, k)`` bool."""
    b, k, n = paths.shape
    last = np.broadcast_to((np.asarray(lengths) - 1)[:, None, None], (b, k, 1))
    ok = pot.start_allowed[paths[:, :, 0]] & pot.end_allowed[np.take_along_axis(paths, last, 2)[:, :, 0]]
    if n > 1:
        pair = pot.trans_allowed[paths[:, :, :-1], paths[:, :, 1:]]  # (B, k, L-1)
        ok &= (pair | ~_mask(lengths, n)[:, None, 1:]).all(2)
    return ok


def nbest(em: np.ndarray, lengths: np.ndarray, pot: Potentials, k: int,
          log_z: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best paths ``(B, k, L)`` and scores ``(B, k)``, best first, in ``em``'s dtype.

    Rows beyond the number of distinct allowed paths have score ``-inf`` and an all-zero path.
    With ``log_z`` ``(B,)`` the scores are log probabilities (score - log Z).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    b, n, t = em.shape
    lengths = np.asarray(lengths)
    start, trans, end = pot.constrained(em.dtype)
    first = (start + em[:, 0])[:, :, None]  # (B, T, 1)
    score = np.concatenate([first, np.full((b, t, k - 1), -np.inf, dtype=em.dtype)], 2)  # (B, T, k)
    trans_t = trans.T.reshape(1, t, t, 1)  # (1, to, from, 1)
    backptrs = []
    for i in range(1, n):
        cand = (score[:, None, :, :] + trans_t).reshape(b, t, t * k)  # (B, to, from * k)
        idx = np.argsort(-cand, axis=2, kind="stable")[:, :, :k]  # (B, T, k): from * k + rank
        vals = np.take_along_axis(cand, idx, 2)
        score = np.where((i < lengths)[:, None, None], vals + em[:, i, :, None], score)
        backptrs.append(idx)
    final = (score + end[None, :, None]).reshape(b, t * k)  # (B, T * k)
    idx = np.argsort(-final, axis=1, kind="stable")[:, :k]  # (B, k)
    best = np.take_along_axis(final, idx, 1)
    cur_tag, cur_rank = idx // k, idx % k
    cols = []
    rows = np.arange(b)[:, None]
    for i in range(n - 1, 0, -1):
        live = (i < lengths)[:, None]  # (B, 1)
        cols.append(np.where(live, cur_tag, 0))
        prev = backptrs[i - 1].reshape(b, t * k)[rows, cur_tag * k + cur_rank]  # (B, k)
        cur_tag = np.where(live, prev // k, cur_tag)
        cur_rank = np.where(live, prev % k, cur_rank)
    cols.append(cur_tag)
    paths = np.stack(cols[::-1], axis=2)  # (B, k, L)
    if pot.has_constraints:
        best = np.where(_allowed_paths(paths, lengths, pot), best, -np.inf)
        order = np.argsort(-best, axis=1, kind="stable")
        best = np.take_along_axis(best, order, 1)
        paths = np.take_along_axis(paths, order[:, :, None], 1)
    paths = np.where(np.isneginf(best)[:, :, None], 0, paths)
    if log_z is not None:
        best = (best.astype(np.float64) - log_z[:, None]).astype(em.dtype)
    return paths, best


def softmax(em: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in ``em``'s dtype."""
    x = np.exp(em - em.max(-1, keepdims=True))
    return x / x.sum(-1, keepdims=True)


class SpanReader:
    """Entity spans from tag ids of the label list ``itos``, by conlleval's rules (labels that are not
    entity tags, such as ``<pad>``, count as ``O``): :class:`tagger.spans.SpanReader` without torch."""

    def __init__(self, itos: Sequence[str]) -> None:
        parsed: list[tuple[str, str | None]] = []
        for label in itos:
            try:
                parsed.append(split_tag(label))
            except SchemeError:
                parsed.append(("O", None))
        self.parsed = parsed

    def spans(self, ids: Sequence[int]) -> list[Span]:
        """The spans of one sentence's tag ids."""
        return chunk_spans(self.parsed[j] for j in ids)
