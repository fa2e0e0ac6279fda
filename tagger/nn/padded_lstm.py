"""A bidirectional ``nn.LSTM`` over a padded batch, exact for every length, without packing.

A packed sequence makes PyTorch's CPU LSTM take its step-by-step path, 1.5-2.5x slower than
the fused (oneDNN) kernel it uses for a plain padded tensor; but on a padded tensor the backward
direction of a bidirectional LSTM reads a short sequence's padding before its words. Here each
direction runs as its own unidirectional LSTM on padded input: the forward one on the batch as
it is (padding comes after the words, so it cannot reach them), the backward one on each
sequence reversed within its own length (its padding again comes last). The module's own
weights are used, so a model trains and loads exactly as with ``lstm(pack_padded_sequence(...))``.
Outputs past a sequence's length are finite but meaningless.

The fused kernel caches a compiled primitive, with its own copy of the weights, for every input
shape it sees (~1.5 MB a shape at the default model size, ~4 MB for batches of 256), up to 1,024
of them: over a long annotation run that is gigabytes. So the padded length is rounded up to one
of 64 sizes below 1,024 (at most 1/8 more padding: :func:`padded_length`), a batch of over 16 rows
to a power of two (prediction has one such partial batch per chunk of input), and the cache is
capped at :data:`PRIMITIVE_CACHE` entries unless ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` is set
(oneDNN reads it on first use: this holds unless the process ran a oneDNN kernel before importing
tagger).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tagger.nn.dropout import dropout

#: oneDNN primitive-cache entries (shapes) kept: a CoNLL-2003 epoch with dev evaluation uses about
#: 90 shapes, and 32 entries hit the cache ~80% of the time (a miss costs well under a millisecond).
PRIMITIVE_CACHE = 32
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVE_CACHE))


def padded_length(n: int) -> int:
    """``n`` rounded up to a multiple of ``2 ** (bits(n) - 4)``: exact up to 16, then 8 sizes per octave."""
    step = 1 << max(0, n.bit_length() - 4)
    return -(-n // step) * step


def _reverse_index(lengths: Tensor, seq_len: int) -> Tensor:
    """``(batch, seq_len)`` positions that reverse each row within its length (padding stays put)."""
    steps = torch.arange(seq_len, device=lengths.device)  # (seq_len,)
    n = lengths[:, None]  # (batch, 1)
    return torch.where(steps < n, n - 1 - steps, steps)  # (batch, seq_len)


def _direction(lstm: nn.LSTM, x: Tensor, layer: int, suffix: str) -> Tensor:
    """One direction of one layer as a unidirectional LSTM: ``(batch, seq_len, hidden)``."""
    names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
    if lstm.bias:
        names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
    weights = [getattr(lstm, name) for name in names]
    h0 = x.new_zeros(1, x.size(0), lstm.hidden_size)  # (1, batch, hidden)
    # torch.lstm is the kernel nn.LSTM.forward calls (no packing: the fused path on a CPU).
    return torch.lstm(x, (h0, h0), weights, lstm.bias, 1, 0.0, lstm.training, False, True)[0]


def run_bilstm(lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> Tensor:
    """Outputs ``(batch, seq_len, 2 * hidden)`` of a batch-first bidirectional ``lstm`` on ``x``
    ``(batch, seq_len, input)`` whose rows have ``lengths`` ``(batch,)`` (each 1..seq_len)."""
    if not (lstm.bidirectional and lstm.batch_first) or lstm.proj_size:
        raise ValueError("run_bilstm needs a batch-first bidirectional LSTM without projections")
    seq_len = x.size(1)
    lengths = lengths.to(x.device)
    if bool((lengths == seq_len).all()):  # no padding: the module itself is exact
        return lstm(x)[0]
    padded, rows = padded_length(seq_len), x.size(0)
    if padded > seq_len:  # fewer distinct shapes for the kernel cache
        return run_bilstm(lstm, F.pad(x, (0, 0, 0, padded - seq_len)), lengths)[:, :seq_len]
    if rows > 16 and rows & (rows - 1):  # idem: dummy rows of length 1
        extra = (1 << rows.bit_length()) - rows
        lengths = torch.cat([lengths, lengths.new_ones(extra)])
        return run_bilstm(lstm, F.pad(x, (0, 0, 0, 0, 0, extra)), lengths)[:rows]
    rev = _reverse_index(lengths, seq_len).unsqueeze(2)  # (batch, seq_len, 1)
    for layer in range(lstm.num_layers):
        if layer:
            x = dropout(x, lstm.dropout, lstm.training)
        fwd = _direction(lstm, x, layer, "")  # (batch, seq_len, hidden)
        reversed_x = x.gather(1, rev.expand(-1, -1, x.size(2)))  # (batch, seq_len, input)
        bwd = _direction(lstm, reversed_x, layer, "_reverse")  # (batch, seq_len, hidden), reversed
        bwd = bwd.gather(1, rev.expand(-1, -1, bwd.size(2)))  # (batch, seq_len, hidden)
        x = torch.cat([fwd, bwd], dim=2)  # (batch, seq_len, 2*hidden)
    return x
