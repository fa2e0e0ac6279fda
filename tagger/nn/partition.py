"""Log partition function of a linear-chain CRF with its exact gradient, for training.

For emissions ``x`` ``(batch, seq_len, T)`` (start scores already added at position 0 and end
scores at each sequence's last position) and transitions ``A`` ``(T, T)`` [from, to]::

    log Z = log sum_y exp(sum_t x[t, y_t] + sum_{t>0} A[y_{t-1}, y_t])

The forward algorithm runs in probability space, rescaled at every step::

    a_0 = exp(x_0 - m_0) / z_0                     m_t = max_j x[t, j]
    a_t = (a_{t-1} @ E) * exp(x_t - m_t) / z_t     E = exp(A - max A),  z_t = sum of the unscaled a_t
    log Z = sum_{t<n} (log z_t + m_t) + (n - 1) * max A

so a step is one ``(batch, T) @ (T, T)`` product and three element-wise operations, where the
log-space recursion needs a ``(batch, T, T)`` log-sum-exp and autograd records a dozen
operations per step. The gradient comes from the backward recursion instead of autograd, run in
the same loop as the forward one (step ``s`` advances ``a_s`` and ``g_{L-1-s}`` together: one
``(2, batch, T) @ (2, T, T)`` product), on ``g_t = b_t * e_t`` rescaled the same way::

    g_t = (g_{t+1} @ E^T) * e_t,  and g_t = e_t at each sequence's last position
    d log Z / d x[t, j]  = (a_{t-1} @ E)[j] g_t[j] / sum_k (a_{t-1} @ E)[k] g_t[k]     (tag marginals; 1 for a_{-1} @ E)
    d log Z / d A[i, j]  = sum_t a_{t-1}[i] E[i, j] g_t[j] / ((a_{t-1} @ E) . g_t)     (pair marginals)

with ``e_t = exp(x_t - m_t)``. Both are normalised per position, so no ``log Z`` enters them and
they stay accurate in float32; the backward pass is a few whole-tensor operations. A row whose
scaling factor underflows (possible only when disallowed transitions carry the constraint
penalty and the emissions favour them by ~90 nats) is reported as not ``ok``; its gradient here
is 0 and the caller recomputes it in log space.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

__all__ = ["log_partition"]

_TINY = 1e-30  # a scaling factor below this has lost float32 precision: recompute the row in log space


class _LogPartition(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, lengths: Tensor, trans: Tensor) -> tuple[Tensor, Tensor]:
        seq_len = x.shape[1]
        xt = x.detach().transpose(0, 1)  # (seq_len, batch, T) time-major
        m = x.detach().amax(2, keepdim=True).transpose(0, 1)  # (seq_len, batch, 1)
        e = (xt - m).exp_()  # (seq_len, batch, T)
        tmax = trans.detach().max()
        big_e = (trans.detach() - tmax).exp()  # (T, T)
        steps = torch.arange(seq_len, device=x.device)  # (seq_len,)
        valid = steps[:, None] < lengths[None, :]  # (seq_len, batch)
        is_last = (steps[:, None] == (lengths - 1)[None, :]).unsqueeze(2)  # (seq_len, batch, 1)
        # Both recursions in one loop, step s running alpha_s (side 0) and gamma_{L-1-s} (side 1): one
        # (2, batch, T) @ (2, T, T) product a step.
        both = torch.stack([big_e, big_e.t()])  # (2, T, T): from->to for alphas, to->from for gammas
        factors = torch.stack([e, e.flip(0)], 1)  # (seq_len, 2, batch, T)
        resets = is_last.flip(0)  # (seq_len, batch, 1): step s's gamma position is its row's last
        pre = torch.empty_like(factors)  # (seq_len, 2, batch, T): before the emission factor
        out = torch.empty_like(factors)  # (seq_len, 2, batch, T): normalised alphas / gammas
        z = torch.empty(seq_len, 2, x.shape[0], 1, dtype=x.dtype, device=x.device)  # (seq_len, 2, batch, 1)
        pre[0].fill_(1.0)
        # Views of every step made at once (indexing in the loop would cost more than the arithmetic).
        pre_s, out_s, z_s, fac_s = pre.unbind(0), out.unbind(0), z.unbind(0), factors.unbind(0)
        pre_g, reset_s = pre[:, 1].unbind(0), resets.unbind(0)
        for s in range(seq_len):
            if s:
                torch.bmm(out_s[s - 1], both, out=pre_s[s])  # (2, batch, T)
                pre_g[s].masked_fill_(reset_s[s], 1.0)  # b = 1 at each row's last position
            torch.mul(pre_s[s], fac_s[s], out=out_s[s])
            torch.sum(out_s[s], 2, keepdim=True, out=z_s[s])
            out_s[s].div_(z_s[s])
        za, zg = z[:, 0, :, 0], z[:, 1, :, 0].flip(0)  # (seq_len, batch) each: alphas' and gammas' scales
        log_z = torch.where(valid, za.log() + m.squeeze(2), 0.0).sum(0) + (lengths - 1).to(x.dtype) * tmax  # (batch,)
        smallest = torch.minimum(torch.where(valid, za, 1.0), torch.where(valid, zg, 1.0)).amin(0)  # (batch,)
        ok = torch.isfinite(log_z) & (smallest > _TINY)  # (batch,)
        ctx.save_for_backward(pre, out, big_e, valid, ok)
        ctx.mark_non_differentiable(ok)
        return log_z, ok

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor, _grad_ok: Tensor) -> tuple[Tensor, None, Tensor]:
        pre, out, big_e, valid, ok = ctx.saved_tensors  # type: ignore[attr-defined]
        n = big_e.shape[0]
        alphas = out[:, 0]  # (seq_len, batch, T)
        gammas = out[:, 1].flip(0)  # (seq_len, batch, T): b_t * e_t, rescaled
        weight = torch.where(ok, grad, 0.0)  # (batch,)
        mask = (valid & ok[None, :]).unsqueeze(2)  # (seq_len, batch, 1); rows not ok may hold NaN
        tag = pre[:, 0] * gammas  # (seq_len, batch, T): (a_{t-1} @ E) e_t b_t up to a factor per position
        tag = torch.where(mask, tag / tag.sum(2, keepdim=True), 0.0) * weight[None, :, None]
        grad_x = tag.transpose(0, 1)  # (batch, seq_len, T)
        # Pair marginals of positions t-1, t (empty when seq_len is 1: a zero gradient).
        prev = alphas[:-1]  # (seq_len-1, batch, T)
        nxt = gammas[1:]  # (seq_len-1, batch, T)
        norm = (pre[1:, 0] * nxt).sum(2, keepdim=True)  # (seq_len-1, batch, 1): pre[t, 0] = a_{t-1} @ E
        scale = torch.where(mask[1:], weight[None, :, None] / norm, 0.0)  # (seq_len-1, batch, 1)
        prev = torch.where(mask[1:], prev * scale, 0.0).reshape(-1, n)  # (steps, T)
        nxt = torch.where(mask[1:], nxt, 0.0).reshape(-1, n)  # (steps, T)
        grad_trans = big_e * (prev.t() @ nxt)  # (T, T)
        return grad_x, None, grad_trans


def log_partition(x: Tensor, lengths: Tensor, trans: Tensor) -> tuple[Tensor, Tensor]:
    """``log Z`` ``(batch,)`` of emissions ``x`` ``(batch, seq_len, T)`` and transitions ``(T, T)``.

    ``lengths`` ``(batch,)`` long, each in ``1..seq_len``; positions past a length are ignored
    (they must hold finite numbers). ``x`` must already include the start scores at position 0
    and the end scores at each sequence's last position. Also returns ``ok`` ``(batch,)`` bool:
    False for a row whose rescaling underflowed; its ``log Z`` is then meaningless and its
    gradient 0, and it must be recomputed in log space.
    """
    return _LogPartition.apply(x, lengths, trans)
