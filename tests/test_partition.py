"""The rescaled forward-backward log partition (tagger.nn.partition) against the log-space recursion."""

from __future__ import annotations

import pytest
import torch

from tagger.nn.crf import CRF
from tagger.nn.partition import log_partition


def _problem(seed: int, batch: int, seq_len: int, tags: int, scale: float, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    em = scale * torch.randn(batch, seq_len, tags, generator=g, dtype=dtype)
    lengths = torch.randint(1, seq_len + 1, (batch,), generator=g)
    lengths[0] = seq_len
    lengths[-1] = 1
    mask = torch.arange(seq_len)[None, :] < lengths[:, None]
    crf = CRF(tags).to(dtype)
    with torch.no_grad():
        crf.transitions.copy_(3 * torch.randn(tags, tags, generator=g, dtype=dtype))
        crf.start_transitions.copy_(torch.randn(tags, generator=g, dtype=dtype))
        crf.end_transitions.copy_(torch.randn(tags, generator=g, dtype=dtype))
    return crf, em, mask


def _log_space(crf: CRF, em, mask, constrained: bool = False):
    start, trans, end = crf._potentials(constrained, em.dtype)
    return crf._log_z_log_space(em, mask, start, trans, end)


@pytest.mark.parametrize("seq_len,tags,scale", [(1, 3, 1.0), (7, 5, 1.0), (150, 17, 10.0), (60, 40, 30.0)])
def test_float32_matches_float64_log_space(seq_len, tags, scale):
    """Log Z and every gradient in float32 equal the float64 log-space recursion's (autograd)."""
    crf, em, mask = _problem(seq_len, 6, seq_len, tags, scale)
    em32 = em.clone().requires_grad_(True)
    got = crf.log_partition(em32, mask)
    got.sum().backward()
    ref_crf = CRF(tags).double()
    ref_crf.load_state_dict(crf.state_dict())
    em64 = em.double().requires_grad_(True)
    want = _log_space(ref_crf, em64, mask)
    want.sum().backward()
    torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=1e-4)
    torch.testing.assert_close(em32.grad.double(), em64.grad, rtol=0, atol=2e-5)
    for name, p in crf.named_parameters():
        q = dict(ref_crf.named_parameters())[name]
        want_grad = torch.zeros_like(q) if q.grad is None else q.grad  # length 1: no transition is used
        torch.testing.assert_close(p.grad.double(), want_grad, rtol=1e-4, atol=5e-5 * seq_len)


def test_gradcheck_with_junk_in_padding():
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([5, 3, 1, 4])
    x = torch.randn(4, 5, 4, generator=g, dtype=torch.float64)
    x = torch.where(torch.arange(5)[None, :, None] < lengths[:, None, None], x, 50.0)  # junk past each length
    x.requires_grad_(True)
    trans = torch.randn(4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: log_partition(a, lengths, b)[0], (x, trans))
    log_partition(x, lengths, trans)[0].sum().backward()
    assert (x.grad[torch.arange(5)[None, :] >= lengths[:, None]] == 0).all()


def test_underflow_falls_back_to_log_space():
    """Emissions that favour only disallowed transitions by ~200 nats: the row is recomputed in log space."""
    crf = CRF(3)
    trans_ok = torch.tensor([[True, False, True], [True, True, True], [True, True, True]])
    crf.set_constraints([True] * 3, trans_ok, [True] * 3, in_training=True)
    em = torch.zeros(2, 3, 3)
    em[0, 0, 0] = 200.0  # tag 0 first ...
    em[0, 1, 1] = 200.0  # ... then tag 1, but 0 -> 1 is disallowed
    em[0, 2, 1] = 200.0
    mask = torch.ones(2, 3, dtype=torch.bool)
    start, trans, end = crf._potentials(True, em.dtype)
    lengths = mask.sum(1)
    steps = torch.arange(3)
    last = (steps[None] == (lengths - 1)[:, None]).float()[..., None]
    x = em + (steps == 0).float()[None, :, None] * start + last * end
    _, ok = log_partition(x, lengths, trans)
    assert ok.tolist() == [False, True]
    em_fast = em.clone().requires_grad_(True)
    got = crf.log_partition(em_fast, mask)
    got.sum().backward()
    em_ref = em.double().requires_grad_(True)
    ref_crf = CRF(3).double()
    ref_crf.load_state_dict(crf.state_dict())
    want = _log_space(ref_crf, em_ref, mask, constrained=True)
    want.sum().backward()
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(em_fast.grad.double(), em_ref.grad, rtol=0, atol=1e-5)
    assert torch.isfinite(crf.transitions.grad).all()


def test_single_position_and_equal_lengths():
    crf, em, _ = _problem(5, 3, 1, 4, 1.0, torch.float64)
    mask = torch.ones(3, 1, dtype=torch.bool)
    want = torch.logsumexp(em[:, 0] + crf.start_transitions + crf.end_transitions, dim=1)
    torch.testing.assert_close(crf.log_partition(em, mask), want)
