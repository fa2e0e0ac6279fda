"""Forward-backward over sentences of any lengths at once, in packed time-major layout.

The decoding side of the CRF (marginals, entity probabilities) gets many sentences of very
different lengths: a padded ``(batch, seq_len, T)`` batch would spend most of its steps on
padding, or a caller would run one pass per batch of similar lengths, paying the per-step cost of
a few small kernels for each. Here the sentences are laid out as :class:`torch.nn.utils.rnn.PackedSequence`
lays them out: sorted by decreasing length, position 0 of every sentence, then position 1 of every
sentence that has one, and so on. Step ``t`` then works on a contiguous block of ``k_t`` rows
(the sentences longer than ``t``), and a whole block of input needs as many steps as its longest
sentence, with no padding.

The recursions are those of :mod:`tagger.nn.partition` (rescaled probability space: one
``(k_t, T) @ (T, T)`` product and a few element-wise operations a step), on scores ``x`` that
already hold the start scores at each sentence's first position and the end scores at its last::

    a_0 = e_0 / z_0,  a_t = (a_{t-1} @ E) * e_t / z_t,     e_t = exp(x_t - m_t), E = exp(A - max A)
    b_{n-1} = 1/T,    b_t proportional to E @ (b_{t+1} * e_{t+1})

and brought back to log space with ``S_t = sum_{u<=t} (log z_u + m_u) + t max A``::

    log alpha_t = log a_t + S_t,    log Z = S_{n-1},    log beta_t = log b_t + log Z - S_t - log(a_t . b_t)

Every result is returned "flat": the tokens of sentence 0, then those of sentence 1, ... (the
order of ``x``), which is also the order of ``emissions[mask]`` for a padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["PackedLayout", "flat_forward_backward", "flat_viterbi"]


class PackedLayout:
    """Where each token of sentences of ``lengths`` goes in packed time-major order.

    ``index[i]`` is the packed row of flat token ``i``; ``sentence[i]`` its sentence, ``position[i]``
    its position in it; ``first[s]`` / ``last[s]`` the flat rows of sentence ``s``'s first and last
    tokens, ``rank[s]`` its place in the packed (sorted) order;
    ``batch_sizes[t]`` / ``offsets[t]`` the number of sentences longer than ``t`` and the packed row
    where step ``t`` starts (Python ints: they drive the loop).
    """

    def __init__(self, lengths: Sequence[int] | Tensor, device: torch.device | str = "cpu") -> None:
        lens = torch.as_tensor(lengths, dtype=torch.long, device=device)  # (S,)
        if lens.dim() != 1 or not lens.numel() or bool((lens < 1).any()):
            raise ValueError("lengths must be a non-empty list of positive sentence lengths")
        self.lengths = lens
        sorted_lens, order = lens.sort(descending=True, stable=True)  # (S,) each
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=device)  # (S,) position in the sorted order
        steps = torch.arange(int(sorted_lens[0]), device=device)  # (L,)
        sizes = (sorted_lens[None, :] > steps[:, None]).sum(1)  # (L,)
        offsets = torch.cumsum(sizes, 0) - sizes  # (L,)
        self.sentence = torch.repeat_interleave(torch.arange(lens.numel(), device=device), lens)  # (N,)
        self.first = torch.cumsum(lens, 0) - lens  # (S,) flat index of each sentence's first token
        self.position = torch.arange(self.sentence.numel(), device=device) - self.first[self.sentence]  # (N,)
        self.index = offsets[self.position] + rank[self.sentence]  # (N,)
        self.rank = rank
        self.last = self.first + lens - 1  # (S,) flat index of each sentence's last token
        self.batch_sizes: list[int] = sizes.tolist()
        self.offsets: list[int] = offsets.tolist()

    def pack(self, flat: Tensor) -> Tensor:
        """``(N, ...)`` flat rows in packed order."""
        out = torch.empty_like(flat)
        out[self.index] = flat
        return out

    def unpack(self, packed: Tensor) -> Tensor:
        """``(N, ...)`` packed rows back in flat order."""
        return packed[self.index]

    def sentence_sums(self, flat: Tensor) -> Tensor:
        """Running sums ``(N,)`` of ``flat`` ``(N,)`` within each sentence (inclusive)."""
        total = torch.cumsum(flat, 0)  # (N,)
        before = total[self.first] - flat[self.first]  # (S,) the sum before each sentence
        return total - before[self.sentence]


def _forward(e: Tensor, big_e: Tensor, layout: PackedLayout) -> tuple[Tensor, Tensor]:
    """Rescaled alphas ``(N, T)`` and scales ``(N, 1)`` in packed order."""
    alphas = torch.empty_like(e)  # (N, T), each row sums to 1
    z = e.new_empty(e.size(0), 1)  # (N, 1)
    k = layout.batch_sizes[0]
    torch.sum(e[:k], 1, keepdim=True, out=z[:k])
    torch.div(e[:k], z[:k], out=alphas[:k])
    for t in range(1, len(layout.batch_sizes)):
        prev, here, k = layout.offsets[t - 1], layout.offsets[t], layout.batch_sizes[t]
        a = torch.mm(alphas[prev : prev + k], big_e).mul_(e[here : here + k])  # (k, T)
        torch.sum(a, 1, keepdim=True, out=z[here : here + k])
        torch.div(a, z[here : here + k], out=alphas[here : here + k])
    return alphas, z


def _backward(e: Tensor, big_e: Tensor, layout: PackedLayout) -> Tensor:
    """Rescaled betas ``(N, T)`` in packed order (each row sums to 1)."""
    n = e.size(1)
    betas = torch.empty_like(e)  # (N, T)
    sizes, offsets = layout.batch_sizes, layout.offsets
    last = len(sizes) - 1
    betas[offsets[last] : offsets[last] + sizes[last]] = 1.0 / n
    big_e_t = big_e.t()  # (to, from)
    for t in range(last - 1, -1, -1):
        here, nxt, k, k1 = offsets[t], offsets[t + 1], sizes[t], sizes[t + 1]
        b = torch.mm(betas[nxt : nxt + k1] * e[nxt : nxt + k1], big_e_t)  # (k1, T)
        torch.div(b, b.sum(1, keepdim=True), out=betas[here : here + k1])
        if k > k1:  # sentences whose last position is t
            betas[here + k1 : here + k].fill_(1.0 / n)
    return betas


def flat_forward_backward(
    x: Tensor, layout: PackedLayout, trans: Tensor, betas: bool = True, tiny: float = 1e-280,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """Log alphas, log betas ``(N, T)``, log Z ``(S,)`` and ``ok`` ``(S,)`` of flat scores ``x`` ``(N, T)``.

    ``x`` holds the start and end scores at each sentence's first and last token; ``trans`` is
    ``(T, T)`` [from, to] (exactly 0 probability where it is ``-inf`` or hugely negative). A
    sentence whose scaling factor falls below ``tiny`` (every path through a near-impossible
    transition) or turns NaN is not ``ok``: its values are meaningless and the caller recomputes
    it another way. ``betas=False`` skips the backward pass.
    """
    tmax = trans.max()
    big_e = (trans - tmax).exp()  # (T, T)
    m = x.amax(1, keepdim=True)  # (N, 1)
    e = layout.pack((x - m).exp_())  # (N, T) packed
    a, z = _forward(e, big_e, layout)  # (N, T), (N, 1) packed
    a, z = layout.unpack(a), layout.unpack(z).squeeze(1)  # flat
    scale = layout.sentence_sums(z.log() + m.squeeze(1)) + layout.position * tmax  # (N,)
    log_z = scale[layout.last]  # (S,)
    bad = ~(z > tiny)  # (N,); catches NaN too
    log_b = None
    if betas:
        b = layout.unpack(_backward(e, big_e, layout))  # (N, T) flat
        dot = (a * b).sum(1)  # (N,)
        bad |= ~(dot > 0)
        log_b = b.log() + (log_z[layout.sentence] - scale - dot.log()).unsqueeze(1)  # (N, T)
    bad_rows = torch.zeros(log_z.shape, dtype=torch.long, device=x.device).index_add_(0, layout.sentence, bad.long())
    ok = torch.isfinite(log_z) & (bad_rows == 0)  # (S,)
    return a.log() + scale.unsqueeze(1), log_b, log_z, ok


def flat_viterbi(x: Tensor, layout: PackedLayout, trans: Tensor, end: Tensor) -> tuple[Tensor, Tensor]:
    """Best tag of each flat token ``(N,)`` and best score per sentence ``(S,)`` for flat scores ``x``
    ``(N, T)`` (start scores already at each sentence's first token), transitions ``(T, T)`` and end
    scores ``(T,)``. Ties go to the lowest tag index, as ``max`` breaks them."""
    xp = layout.pack(x)  # (N, T)
    sizes, offsets = layout.batch_sizes, layout.offsets
    score = xp[: sizes[0]].clone()  # (S, T) in packed order: every sentence has position 0
    best = torch.empty_like(score)  # (S, T)
    backptr = torch.empty(xp.shape, dtype=torch.long, device=x.device)  # (N, T); rows of step 0 unused
    for t in range(1, len(sizes)):
        here, k = offsets[t], sizes[t]
        # Rows past k have ended: their scores stay as they are.
        torch.max(score[:k].unsqueeze(2) + trans, 1, out=(best[:k], backptr[here : here + k]))  # (k, T) each
        torch.add(best[:k], xp[here : here + k], out=score[:k])
    top, cur = (score + end).max(1)  # (S,) each, packed order
    path = torch.empty(xp.size(0), dtype=torch.long, device=x.device)  # (N,) packed
    for t in range(len(sizes) - 1, -1, -1):
        here, k = offsets[t], sizes[t]
        path[here : here + k] = cur[:k]
        if t:
            cur[:k] = backptr[here : here + k].gather(1, cur[:k, None]).squeeze(1)
    return layout.unpack(path), top[layout.rank]
