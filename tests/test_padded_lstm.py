"""run_bilstm: a padded bidirectional LSTM equals the packed one, outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tagger.nn.padded_lstm import run_bilstm


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lengths", [[6, 6, 6], [6, 1, 4, 2], [1], [3, 5], [17, 3, 9], [5] + [2] * 17])
def test_matches_packed(layers, lengths):
    torch.manual_seed(len(lengths) + layers)
    lstm = nn.LSTM(5, 4, num_layers=layers, bidirectional=True, batch_first=True, dropout=0.3).double()
    lstm.eval()  # no dropout between layers: the two must agree exactly
    lens = torch.tensor(lengths)
    x = torch.randn(len(lengths), max(lengths), 5, dtype=torch.float64)
    x = torch.where(torch.arange(max(lengths))[None, :, None] < lens[:, None, None], x, 7.0)  # junk padding
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    got = run_bilstm(lstm, x1, lens)
    packed = pack_padded_sequence(x2, lens, batch_first=True, enforce_sorted=False)
    want, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])
    mask = (torch.arange(x.shape[1])[None, :] < lens[:, None]).unsqueeze(2)
    torch.testing.assert_close(torch.where(mask, got, 0.0), want)
    weight = torch.randn(want.shape, dtype=torch.float64)
    (torch.where(mask, got, 0.0) * weight).sum().backward()
    grads = [p.grad.clone() for p in lstm.parameters()]
    lstm.zero_grad()
    (want * weight).sum().backward()
    for a, p in zip(grads, lstm.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)
    torch.testing.assert_close(x1.grad, x2.grad)
    assert (x1.grad[~mask.expand_as(x1)] == 0).all()  # padding does not reach the words


def test_training_mode_runs_and_rejects_other_lstms():
    lstm = nn.LSTM(3, 2, num_layers=2, bidirectional=True, batch_first=True, dropout=0.5)
    out = run_bilstm(lstm, torch.randn(2, 4, 3), torch.tensor([4, 2]))
    assert out.shape == (2, 4, 4) and torch.isfinite(out).all()
    with pytest.raises(ValueError):
        run_bilstm(nn.LSTM(3, 2, batch_first=True), torch.randn(2, 4, 3), torch.tensor([4, 2]))
