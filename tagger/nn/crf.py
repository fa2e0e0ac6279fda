"""Linear-chain conditional random field (CRF) layer.

All tensors are batch-first. ``emissions`` is ``(batch, seq_len, num_tags)``, ``tags`` is
``(batch, seq_len)`` long and ``mask`` is a bool ``(batch, seq_len)`` tensor whose True
entries form a prefix of each row (every sequence has length >= 1).

Scores follow the usual convention::

    score(y) = start[y_0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_{n-1}]

Optional hard constraints (e.g. from an IOB2/BIOES label set) mark start tags, transitions and
end tags as disallowed; a disallowed item gets :data:`PENALTY` added to its score (a large finite
number rather than ``-inf`` so that everything stays finite and differentiable). Constraints are
always applied by the decoding-side methods (:meth:`CRF.decode`, :meth:`CRF.nbest`,
:meth:`CRF.marginals`, :meth:`CRF.span_log_prob`) and, when set with ``in_training=True``, by the
negative log-likelihood as well.

Probabilities on the decoding side (:meth:`CRF.marginals`, :meth:`CRF.span_log_prob`,
``CRF.nbest(normalize=True)``) are computed in float64 whatever the emissions' dtype, by a
forward-backward pass in rescaled probability space (see :meth:`CRF._flat_forward_backward`).
Decoding works on all sentences of a batch, or of many batches (the ``*_flat`` methods), at once in
packed time-major layout (:mod:`tagger.nn.packed`): as many steps as the longest sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tagger.nn.packed import PackedLayout, flat_forward_backward, flat_viterbi
from tagger.nn.partition import log_partition

__all__ = ["CRF", "PENALTY"]

#: Score added to a disallowed start tag, transition or end tag.
PENALTY = -1e4

_REDUCTIONS = ("none", "sum", "mean", "token_mean")

#: A float64 scaling factor below this is about to underflow: the row is recomputed in log space.
_TINY64 = 1e-280

BoolLike = Tensor | Sequence[bool] | Sequence[Sequence[bool]]


class CRF(nn.Module):
    """Linear-chain CRF with learned start, transition (``[from, to]``) and end scores."""

    # constraint buffers (registered in __init__)
    start_allowed: Tensor
    trans_allowed: Tensor
    end_allowed: Tensor
    constrain_in_training: Tensor

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))  # (from, to)
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        # Constraint buffers (persistent: saved in state_dict). All True = unconstrained.
        self.register_buffer("start_allowed", torch.ones(num_tags, dtype=torch.bool))
        self.register_buffer("trans_allowed", torch.ones(num_tags, num_tags, dtype=torch.bool))
        self.register_buffer("end_allowed", torch.ones(num_tags, dtype=torch.bool))
        self.register_buffer("constrain_in_training", torch.tensor(False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the scores uniformly in (-0.1, 0.1)."""
        nn.init.uniform_(self.transitions, -0.1, 0.1)
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    # ------------------------------------------------------------------ constraints

    def set_constraints(
        self,
        start_allowed: BoolLike,
        trans_allowed: BoolLike,
        end_allowed: BoolLike,
        *,
        in_training: bool = False,
    ) -> None:
        """Set which start tags ``(T,)``, transitions ``(T, T)`` [from, to] and end tags ``(T,)`` are allowed.

        Disallowed items get :data:`PENALTY` added at decode time, and also in the NLL when
        ``in_training`` is True.
        """
        n = self.num_tags
        values = (
            ("start_allowed", start_allowed, (n,)),
            ("trans_allowed", trans_allowed, (n, n)),
            ("end_allowed", end_allowed, (n,)),
        )
        converted = []
        for name, value, shape in values:
            buf: Tensor = getattr(self, name)
            t = torch.as_tensor(value, device=buf.device)
            if t.dtype != torch.bool:
                t = t != 0
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
            converted.append((buf, t))
        for buf, t in converted:
            buf.copy_(t)
        self.constrain_in_training.fill_(bool(in_training))

    @property
    def has_constraints(self) -> bool:
        """Whether any start tag, transition or end tag is disallowed."""
        return not bool(
            self.start_allowed.all() & self.trans_allowed.all() & self.end_allowed.all()
        )

    def _potentials(self, constrained: bool, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """Start ``(T,)``, transition ``(T, T)`` and end ``(T,)`` scores, with penalties if constrained."""
        start = self.start_transitions.to(dtype)  # (T,)
        trans = self.transitions.to(dtype)  # (T, T)
        end = self.end_transitions.to(dtype)  # (T,)
        if constrained:
            start = start + (~self.start_allowed).to(dtype) * PENALTY
            trans = trans + (~self.trans_allowed).to(dtype) * PENALTY
            end = end + (~self.end_allowed).to(dtype) * PENALTY
        return start, trans, end

    # ------------------------------------------------------------------ validation

    def _check(self, emissions: Tensor, mask: Tensor, tags: Tensor | None = None) -> Tensor:
        """Validate shapes and the mask; return the mask as a bool tensor."""
        if emissions.dim() != 3:
            raise ValueError(f"emissions must be (batch, seq_len, num_tags), got {tuple(emissions.shape)}")
        if emissions.size(2) != self.num_tags:
            raise ValueError(f"emissions has {emissions.size(2)} tags, expected {self.num_tags}")
        if emissions.size(1) < 1:
            raise ValueError("seq_len must be >= 1")
        if tuple(mask.shape) != tuple(emissions.shape[:2]):
            raise ValueError(f"mask shape {tuple(mask.shape)} != emissions batch/seq shape "
                             f"{tuple(emissions.shape[:2])}")
        if tags is not None and tuple(tags.shape) != tuple(emissions.shape[:2]):
            raise ValueError(f"tags shape {tuple(tags.shape)} != emissions batch/seq shape "
                             f"{tuple(emissions.shape[:2])}")
        if mask.dtype != torch.bool:
            mask = mask != 0
        if mask.device != emissions.device:
            mask = mask.to(emissions.device)
        if not bool(mask[:, 0].all()):
            raise ValueError("every sequence must have length >= 1 (mask[:, 0] must be all True)")
        if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("mask must be a contiguous prefix of True in every row")
        return mask

    # ------------------------------------------------------------------ training side

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
        """Negative log-likelihood of ``tags``; reduction is none | sum | mean (over batch) | token_mean."""
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        mask = self._check(emissions, mask, tags)
        start, trans, end = self._potentials(bool(self.constrain_in_training), emissions.dtype)
        log_z = self._log_z(emissions, mask, start, trans, end)  # (batch,)
        gold = self._path_score(emissions, tags, mask, start, trans, end)  # (batch,)
        nll = log_z - gold  # (batch,)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        return nll.sum() / mask.sum().to(nll.dtype)

    def log_partition(self, emissions: Tensor, mask: Tensor, constrained: bool | None = None) -> Tensor:
        """``(batch,)`` log Z by the forward algorithm; ``constrained=None`` follows the in-training flag."""
        mask = self._check(emissions, mask)
        if constrained is None:
            constrained = bool(self.constrain_in_training)
        start, trans, end = self._potentials(constrained, emissions.dtype)
        return self._log_z(emissions, mask, start, trans, end)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``(batch,)`` unnormalised, unconstrained score of ``tags``; padding is ignored."""
        mask = self._check(emissions, mask, tags)
        start, trans, end = self._potentials(False, emissions.dtype)
        return self._path_score(emissions, tags, mask, start, trans, end)

    @staticmethod
    def _path_score(
        emissions: Tensor, tags: Tensor, mask: Tensor, start: Tensor, trans: Tensor, end: Tensor
    ) -> Tensor:
        tags = tags.to(device=emissions.device, dtype=torch.long).masked_fill(~mask, 0)  # (batch, seq_len)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (batch, seq_len)
        total = start[tags[:, 0]] + torch.where(mask, emit, 0.0).sum(1)  # (batch,)
        if tags.size(1) > 1:
            pair = trans[tags[:, :-1], tags[:, 1:]]  # (batch, seq_len - 1)
            total = total + torch.where(mask[:, 1:], pair, 0.0).sum(1)
        last = (mask.sum(1) - 1).unsqueeze(1)  # (batch, 1)
        last_tags = tags.gather(1, last).squeeze(1)  # (batch,)
        return total + end[last_tags]

    @staticmethod
    def _alphas(
        emissions: Tensor, mask: Tensor, start: Tensor, trans: Tensor, keep: bool
    ) -> tuple[Tensor, list[Tensor]]:
        """Forward recursion; returns the final alpha ``(batch, T)`` and, if ``keep``, every step's alpha."""
        alpha = start + emissions[:, 0]  # (batch, T)
        history = [alpha] if keep else []
        trans_b = trans.unsqueeze(0)  # (1, from, to)
        for t in range(1, emissions.size(1)):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans_b, dim=1) + emissions[:, t]  # (batch, T)
            alpha = torch.where(mask[:, t, None], nxt, alpha)
            if keep:
                history.append(alpha)
        return alpha, history

    @staticmethod
    def _betas(emissions: Tensor, mask: Tensor, trans: Tensor, end: Tensor) -> Tensor:
        """Backward recursion: ``(batch, seq_len, T)`` log-sum of everything after each position."""
        batch, seq_len, n = emissions.shape
        beta = end.expand(batch, n)  # (batch, T); = end at each sequence's own last position
        betas = [beta] * seq_len
        trans_b = trans.unsqueeze(0)  # (1, from, to)
        for t in range(seq_len - 2, -1, -1):
            nxt = torch.logsumexp(trans_b + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)  # (batch, T)
            beta = torch.where(mask[:, t + 1, None], nxt, beta)
            betas[t] = beta
        return torch.stack(betas, dim=1)  # (batch, seq_len, T)

    def _log_z(self, emissions: Tensor, mask: Tensor, start: Tensor, trans: Tensor, end: Tensor) -> Tensor:
        """``(batch,)`` log Z by the rescaled forward algorithm (:mod:`tagger.nn.partition`), whose
        gradient is computed by the backward algorithm; rows it cannot represent fall back to log space."""
        lengths = mask.sum(1)  # (batch,)
        steps = torch.arange(emissions.size(1), device=emissions.device)  # (seq_len,)
        first = (steps == 0).to(emissions.dtype)[None, :, None]  # (1, seq_len, 1)
        last = (steps[None, :] == (lengths - 1)[:, None]).to(emissions.dtype).unsqueeze(2)  # (batch, seq_len, 1)
        x = emissions + first * start + last * end  # (batch, seq_len, T)
        log_z, ok = log_partition(x, lengths, trans)  # (batch,) each
        if not bool(ok.all()):
            bad = (~ok).nonzero().squeeze(1)  # (B',)
            log_z = log_z.index_put((bad,), self._log_z_log_space(emissions[bad], mask[bad], start, trans, end))
        return log_z

    def _log_z_log_space(self, emissions: Tensor, mask: Tensor, start: Tensor, trans: Tensor, end: Tensor) -> Tensor:
        """``(batch,)`` log Z by the log-space forward algorithm (autograd gradient)."""
        alpha, _ = self._alphas(emissions, mask, start, trans, keep=False)  # (batch, T)
        return torch.logsumexp(alpha + end, dim=1)  # (batch,)

    @torch.no_grad()
    def _flat_forward_backward(
        self, flat: Tensor, layout: PackedLayout, betas: bool = True
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        """Constrained log alphas, log betas ``(N, T)``, log Z ``(S,)`` and transitions ``(T, T)`` of the
        float64 emissions ``flat`` ``(N, T)`` of sentences laid out by ``layout`` (tokens of sentence 0,
        then sentence 1, ...).

        For the decoding side (:meth:`marginals`, :meth:`span_log_prob`, :meth:`nbest`): float64
        (float32 sums over long sentences lose ~1e-3 of probability), every sentence at once in packed
        layout (:mod:`tagger.nn.packed`: the rescaled recursions of training, one ``(k, T) @ (T, T)``
        product and a few element-wise operations a step, over 20x faster in float64 than a
        ``(batch, T, T)`` log-sum-exp). Alphas exclude the end scores, betas include them.

        A disallowed transition has probability ``exp(PENALTY) == 0`` here, so a tag reachable
        only through disallowed transitions (e.g. ``<pad>``) gets alpha/beta ``-inf`` where the
        log-space recursions give about ``PENALTY``: the same probabilities, but the log
        probability of an item that only such paths carry is ``-inf``. Sentences where the scaling
        underflows (every path uses a disallowed transition) are recomputed by the log-space
        recursions. ``betas=False`` skips the backward pass (betas are then None). No gradient
        flows through it (decoding only; training's log Z is :meth:`log_partition`).
        """
        start, trans, end = self._potentials(True, torch.float64)
        x = flat.clone()  # (N, T)
        x[layout.first] += start
        x[layout.last] += end
        alphas, beta_all, log_z, ok = flat_forward_backward(x, layout, trans, betas, _TINY64)
        alphas[layout.last] -= end
        if beta_all is not None:
            beta_all[layout.last] += end
        if not bool(ok.all()):
            self._log_space_rows((~ok).nonzero().squeeze(1), flat, layout, (start, trans, end), alphas, beta_all,
                                 log_z)
        return alphas, beta_all, log_z, trans

    def _log_space_rows(self, rows: Tensor, flat: Tensor, layout: PackedLayout,
                        potentials: tuple[Tensor, Tensor, Tensor], alphas: Tensor, beta_all: Tensor | None,
                        log_z: Tensor) -> None:
        """Recompute sentences ``rows`` of :meth:`_flat_forward_backward` by the log-space recursions, in place."""
        start, trans, end = potentials
        lens = layout.lengths[rows]  # (R,)
        steps = torch.arange(int(lens.max()), device=flat.device)  # (L,)
        mask = steps[None, :] < lens[:, None]  # (R, L)
        where = layout.first[rows][:, None] + steps[None, :]  # (R, L) flat token indices
        em = torch.where(mask[..., None], flat[where.clamp(max=flat.size(0) - 1)], 0.0)  # (R, L, T)
        last, history = self._alphas(em, mask, start, trans, keep=True)
        alphas[where[mask]] = torch.stack(history, dim=1)[mask]
        log_z[rows] = torch.logsumexp(last + end, dim=1)
        if beta_all is not None:
            beta_all[where[mask]] = self._betas(em, mask, trans, end)[mask]

    # ------------------------------------------------------------------ decoding side

    def decode(self, emissions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Viterbi: best paths ``(batch, seq_len)`` (0 past each length) and their scores ``(batch,)``.

        If a sequence has no allowed path, its best penalised path is returned.
        """
        mask = self._check(emissions, mask)
        paths, scores = self.decode_flat(emissions[mask], PackedLayout(mask.sum(1), emissions.device))
        return torch.zeros(mask.shape, dtype=torch.long, device=mask.device).masked_scatter_(mask, paths), scores

    @torch.no_grad()
    def decode_flat(self, flat: Tensor, layout: PackedLayout) -> tuple[Tensor, Tensor]:
        """:meth:`decode` of sentences given as emissions ``flat`` ``(tokens, T)`` (those of sentence 0,
        then sentence 1, ...; ``layout`` from their lengths): best tags ``(tokens,)`` and scores ``(S,)``.

        All sentences at once in packed layout (:func:`tagger.nn.packed.flat_viterbi`): as many steps
        as the longest sentence, each on the sentences that are that long.
        """
        start, trans, end = self._potentials(True, flat.dtype)
        x = flat.clone()  # (tokens, T)
        x[layout.first] += start
        return flat_viterbi(x, layout, trans, end)

    def nbest(self, emissions: Tensor, mask: Tensor, k: int, *, normalize: bool = False) -> tuple[Tensor, Tensor]:
        """The ``k`` best paths ``(batch, k, seq_len)`` and scores ``(batch, k)``, best first.

        Rows beyond the number of distinct (allowed, when constraints are set) paths have score
        ``-inf`` and an all-zero path. ``normalize=True`` returns log probabilities instead of
        scores: each score minus the constrained log Z (computed in float64 by the forward pass
        of :meth:`_flat_forward_backward`).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        mask = self._check(emissions, mask)
        start, trans, end = self._potentials(True, emissions.dtype)
        batch, seq_len, n = emissions.shape
        neg_inf = float("-inf")
        # score[b, j, r]: r-th best score of a prefix ending in tag j.
        first = (start + emissions[:, 0]).unsqueeze(2)  # (batch, T, 1)
        score = torch.cat([first, first.new_full((batch, n, k - 1), neg_inf)], dim=2)  # (batch, T, k)
        trans_t = trans.t().reshape(1, n, n, 1)  # (1, to, from, 1)
        backptrs: list[Tensor] = []
        for t in range(1, seq_len):
            cand = (score.unsqueeze(1) + trans_t).reshape(batch, n, n * k)  # (batch, to, from * k)
            vals, idx = cand.topk(k, dim=2)  # (batch, T, k) each; idx = from * k + rank
            score = torch.where(mask[:, t, None, None], vals + emissions[:, t, :, None], score)
            backptrs.append(idx)
        final = (score + end[None, :, None]).reshape(batch, n * k)  # (batch, T * k)
        best, idx = final.topk(k, dim=1)  # (batch, k) each
        cur_tag, cur_rank = idx // k, idx % k  # (batch, k) each
        cols = []
        for t in range(seq_len - 1, 0, -1):
            valid = mask[:, t, None]  # (batch, 1)
            cols.append(torch.where(valid, cur_tag, 0))
            prev = backptrs[t - 1].reshape(batch, n * k).gather(1, cur_tag * k + cur_rank)  # (batch, k)
            cur_tag = torch.where(valid, prev // k, cur_tag)
            cur_rank = torch.where(valid, prev % k, cur_rank)
        cols.append(cur_tag)
        paths = torch.stack(cols[::-1], dim=2)  # (batch, k, seq_len)

        if self.has_constraints:
            # Paths using a disallowed item are not real candidates: drop them to -inf.
            ok = self._allowed_paths(paths, mask)  # (batch, k)
            best = best.masked_fill(~ok, neg_inf)
            best, order = best.sort(dim=1, descending=True, stable=True)
            paths = paths.gather(1, order.unsqueeze(2).expand_as(paths))
        paths = paths.masked_fill(torch.isneginf(best).unsqueeze(2), 0)
        if normalize:
            layout = PackedLayout(mask.sum(1), emissions.device)
            _, _, log_z, _ = self._flat_forward_backward(emissions.double()[mask], layout, betas=False)
            best = (best.double() - log_z.unsqueeze(1)).to(best.dtype)
        return paths, best

    def _allowed_paths(self, paths: Tensor, mask: Tensor) -> Tensor:
        """Whether each path ``(batch, k, seq_len)`` uses only allowed items: ``(batch, k)`` bool."""
        batch, k, seq_len = paths.shape
        last = (mask.sum(1) - 1).view(batch, 1, 1).expand(batch, k, 1)  # (batch, k, 1)
        ok = self.start_allowed[paths[:, :, 0]] & self.end_allowed[paths.gather(2, last).squeeze(2)]
        if seq_len > 1:
            pair_ok = self.trans_allowed[paths[:, :, :-1], paths[:, :, 1:]]  # (batch, k, seq_len - 1)
            ok = ok & (pair_ok | ~mask[:, None, 1:]).all(dim=2)
        return ok

    def marginals(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Per-token posteriors ``(batch, seq_len, T)`` by forward-backward; padded rows are 0.

        Computed in float64, returned in the emissions' dtype.
        """
        mask = self._check(emissions, mask)
        flat = self.marginals_flat(emissions.double()[mask], PackedLayout(mask.sum(1), emissions.device))
        probs = torch.zeros(emissions.shape, dtype=emissions.dtype, device=emissions.device)  # (batch, seq_len, T)
        return probs.masked_scatter_(mask.unsqueeze(2).expand_as(probs), flat.to(emissions.dtype))

    def marginals_flat(self, flat: Tensor, layout: PackedLayout) -> Tensor:
        """:meth:`marginals` ``(tokens, T)`` float64 of sentences given as float64 emissions ``flat``
        ``(tokens, T)`` (those of sentence 0, then sentence 1, ...; ``layout`` from their lengths)."""
        alphas, betas, log_z, _ = self._flat_forward_backward(flat, layout)  # float64
        assert betas is not None
        return torch.exp(alphas + betas - log_z[layout.sentence, None])  # (tokens, T)

    def span_log_prob(
        self,
        emissions: Tensor,
        mask: Tensor,
        batch_index: Tensor,
        start: Tensor,
        end: Tensor,
        tags: Tensor,
    ) -> Tensor:
        """Log posterior ``(N,)`` that positions ``start..end-1`` of sentence ``batch_index`` carry ``tags``.

        ``batch_index``, ``start``, ``end`` (exclusive) are ``(N,)``; ``tags`` is ``(N, max_seg_len)``
        with any padding value past each segment's length. Computed in float64 (one forward-backward
        pass for the whole batch), returned in the emissions' dtype.
        """
        mask = self._check(emissions, mask)
        batch, seq_len, n = emissions.shape
        dev = emissions.device
        batch_index = torch.as_tensor(batch_index, dtype=torch.long, device=dev)  # (N,)
        start = torch.as_tensor(start, dtype=torch.long, device=dev)  # (N,)
        end = torch.as_tensor(end, dtype=torch.long, device=dev)  # (N,)
        tags = torch.as_tensor(tags, dtype=torch.long, device=dev)  # (N, M)
        if tags.dim() != 2 or not (batch_index.shape == start.shape == end.shape == tags.shape[:1]):
            raise ValueError("batch_index, start, end must be (N,) and tags (N, max_seg_len)")
        seg_len = end - start  # (N,)
        if batch_index.numel():
            lengths = mask.sum(1)  # (batch,)
            if bool(((batch_index < 0) | (batch_index >= batch)).any()):
                raise ValueError("batch_index out of range")
            bad = (start < 0) | (seg_len < 1) | (end > lengths[batch_index]) | (seg_len > tags.size(1))
            if bool(bad.any()):
                raise ValueError("segments must satisfy 0 <= start < end <= length and end - start <= tags.size(1)")
            if bool(((tags < 0) | (tags >= n))[torch.arange(tags.size(1), device=dev) < seg_len[:, None]].any()):
                raise ValueError("segment tags out of range")

        layout = PackedLayout(mask.sum(1), dev)
        flat = emissions.double()[mask]  # (tokens, T)
        return self.span_log_prob_flat(flat, layout, batch_index, start, end, tags).to(emissions.dtype)

    def span_log_prob_flat(
        self, flat: Tensor, layout: PackedLayout, sentence: Tensor, start: Tensor, end: Tensor, tags: Tensor,
    ) -> Tensor:
        """:meth:`span_log_prob` of sentences given as float64 emissions ``flat`` ``(tokens, T)`` (those of
        sentence 0, then sentence 1, ...; ``layout`` from their lengths): float64 ``(N,)``.

        ``sentence``, ``start``, ``end`` ``(N,)`` and ``tags`` ``(N, max_seg_len)`` as there, unchecked:
        prediction scores the entities of many batches at once this way.
        """
        alphas, betas, log_z, trans = self._flat_forward_backward(flat, layout)  # float64
        assert betas is not None
        base = layout.first[sentence]  # (N,) flat index of each segment's sentence
        seg_len = end - start  # (N,)
        steps = torch.arange(tags.size(1), device=flat.device)  # (M,)
        inside = steps < seg_len.unsqueeze(1)  # (N, M)
        tags = tags.masked_fill(~inside, 0)
        pos = base[:, None] + torch.minimum(start[:, None] + steps, (end - 1)[:, None])  # (N, M) flat indices
        emit = flat[pos, tags]  # (N, M)
        inner = torch.where(inside[:, 1:], emit[:, 1:] + trans[tags[:, :-1], tags[:, 1:]], 0.0).sum(1)  # (N,)
        first = alphas[base + start, tags[:, 0]]  # (N,)
        last_tags = tags.gather(1, (seg_len - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (N,)
        last = betas[base + end - 1, last_tags]  # (N,)
        return first + inner + last - log_z[sentence]
