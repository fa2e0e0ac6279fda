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
operations per step. The gradient comes from the backward recursion (rescaled the same way,
``b_t`` proportional to ``E @ (b_{t+1} * exp(x_{t+1} - m_{t+1}))``) instead of autograd:

    d log Z / d x[t, j]  = a_t[j] b_t[j] / sum_k a_t[k] b_t[k]                  (tag marginals)
    d log Z / d A[i, j]  = sum_t a_{t-1}[i] E[i, j] e_t[j] b_t[j] / (a_{t-1} @ E . e_t b_t)   (pair marginals)

with ``e_t = exp(x_t - m_t)``. Both are normalised per position, so no ``log Z`` enters them and
they stay accurate in float32. A row whose scaling factor ``z_t`` underflows (possible only when
disallowed transitions carry the constraint penalty and the emissions favour them by ~90 nats)
is reported as not ``ok``; its gradient here is 0 and the caller recomputes it in log space.
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
        batch, seq_len, n = x.shape
        xt = x.detach().transpose(0, 1)  # (seq_len, batch, T) time-major: each step's rows are contiguous
        m = xt.amax(2, keepdim=True)  # (seq_len, batch, 1)
        e = (xt - m).exp_()  # (seq_len, batch, T)
        tmax = trans.detach().max()
        big_e = (trans.detach() - tmax).exp()  # (T, T)
        alphas = torch.empty_like(e)  # (seq_len, batch, T), each row sums to 1
        z = torch.empty(seq_len, batch, 1, dtype=x.dtype, device=x.device)  # (seq_len, batch, 1)
        torch.sum(e[0], 1, keepdim=True, out=z[0])
        torch.div(e[0], z[0], out=alphas[0])
        for t in range(1, seq_len):
            a = torch.mm(alphas[t - 1], big_e).mul_(e[t])  # (batch, T)
            torch.sum(a, 1, keepdim=True, out=z[t])
            torch.div(a, z[t], out=alphas[t])
        steps = torch.arange(seq_len, device=x.device)  # (seq_len,)
        valid = steps[:, None] < lengths[None, :]  # (seq_len, batch)
        z, m = z.squeeze(2), m.squeeze(2)  # (seq_len, batch) each
        log_z = torch.where(valid, z.log() + m, 0.0).sum(0) + (lengths - 1).to(x.dtype) * tmax  # (batch,)
        ok = torch.isfinite(log_z) & (torch.where(valid, z, 1.0).amin(0) > _TINY)  # (batch,)
        ctx.save_for_backward(alphas, e, big_e, lengths, valid, ok)
        ctx.mark_non_differentiable(ok)
        return log_z, ok

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor, _grad_ok: Tensor) -> tuple[Tensor, None, Tensor]:
        alphas, e, big_e, lengths, valid, ok = ctx.saved_tensors  # type: ignore[attr-defined]
        seq_len, batch, n = alphas.shape
        steps = torch.arange(seq_len, device=alphas.device)  # (seq_len,)
        is_last = (steps[:, None] == (lengths - 1)[None, :]).unsqueeze(2)  # (seq_len, batch, 1)
        betas = torch.empty_like(alphas)  # (seq_len, batch, T), each row sums to 1
        uniform = alphas.new_full((batch, n), 1.0 / n)  # (batch, T): b at each sequence's last position
        betas[seq_len - 1] = uniform
        big_e_t = big_e.t()  # (to, from)
        for t in range(seq_len - 2, -1, -1):
            b = torch.mm(betas[t + 1] * e[t + 1], big_e_t)  # (batch, T)
            b = b / b.sum(1, keepdim=True)
            torch.where(is_last[t], uniform, b, out=betas[t])
        weight = torch.where(ok, grad, 0.0)  # (batch,)
        mask = (valid & ok[None, :]).unsqueeze(2)  # (seq_len, batch, 1); rows not ok may hold NaN
        tag = alphas * betas  # (seq_len, batch, T)
        tag = torch.where(mask, tag / tag.sum(2, keepdim=True), 0.0) * weight[None, :, None]
        grad_x = tag.transpose(0, 1)  # (batch, seq_len, T)
        # Pair marginals of positions t-1, t (empty when seq_len is 1: a zero gradient).
        prev = alphas[:-1]  # (seq_len-1, batch, T)
        nxt = e[1:] * betas[1:]  # (seq_len-1, batch, T)
        norm = (torch.matmul(prev, big_e) * nxt).sum(2, keepdim=True)  # (seq_len-1, batch, 1)
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
