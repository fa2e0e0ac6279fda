"""The word-level LSTM language model: embedding → dropout → LSTM → dropout → softmax.

Trained on a token stream with truncated back-propagation through time; the output layer is a
full softmax tied to the input embeddings, untied, or an adaptive softmax.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tagger.modeldir import JsonConfig
from tagger.nn.dropout import Dropout
from tagger.options import option


@dataclass
class LMConfig(JsonConfig):
    """Architecture hyper-parameters (saved in ``config.json``; bounds checked on loading)."""

    vocab_size: int = option(help="vocabulary size, <unk> and <eos> included", min=2, max=5_000_000)
    embed_dim: int = option(256, help="input embedding size", min=1, max=4096)
    hidden: int = option(256, help="LSTM hidden size", min=1, max=8192)
    layers: int = option(1, help="LSTM layers", min=1, max=8)
    dropout: float = option(0.5, help="dropout rate", min=0.0, below=1.0)
    tie: bool = option(True, help="decoder shares the embedding matrix (through a projection if sizes differ)")
    cutoffs: list[int] = option(help="adaptive softmax clusters ([] = full softmax)", default_factory=list)

    @property
    def adaptive(self) -> bool:
        return bool(self.cutoffs)

    @property
    def projection(self) -> bool:
        return self.tie and not self.adaptive and self.hidden != self.embed_dim



def default_cutoffs(vocab_size: int, cutoffs: Sequence[int] = (2000, 6000)) -> list[int]:
    """Adaptive-softmax cluster bounds that fit the vocabulary ([] when it is small)."""
    out = [c for c in cutoffs if 0 < c < vocab_size - 1]
    return out if vocab_size > 4000 else []


State = tuple[Tensor, Tensor]


class LSTMLanguageModel(nn.Module):
    """Embedding → dropout → LSTM → dropout → softmax over the vocabulary.

    The output layer is a full softmax tied to the input embeddings (through a projection
    when the sizes differ), untied, or an adaptive softmax (Grave et al. 2017), which is
    several times faster for large vocabularies and still an exact distribution.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.drop = Dropout(c.dropout)
        self.lstm = nn.LSTM(c.embed_dim, c.hidden, num_layers=c.layers, batch_first=True,
                            dropout=c.dropout if c.layers > 1 else 0.0)
        self.asm = None
        self.proj = None
        self.decoder = None
        self.bias = None
        if c.adaptive:
            self.asm = nn.AdaptiveLogSoftmaxWithLoss(c.hidden, c.vocab_size, list(c.cutoffs), div_value=4.0)
        elif c.tie:
            # logits = h @ embed.weight.T + bias (no second copy of the matrix to save).
            self.proj = nn.Linear(c.hidden, c.embed_dim) if c.projection else None
            self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        else:
            self.decoder = nn.Linear(c.hidden, c.vocab_size)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def features(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Output states ``(batch, seq_len, hidden)`` (after dropout) and the final LSTM state."""
        h, state = self.lstm(self.drop(self.embed(x)), state)
        return self.drop(h), state

    def log_probs(self, h: Tensor) -> Tensor:
        """Log-probabilities over the vocabulary, ``(..., vocab)``."""
        shape = h.shape[:-1]
        h = h.reshape(-1, h.shape[-1])
        if self.asm is not None:
            out = self.asm.log_prob(h)
        elif self.decoder is not None:
            out = torch.log_softmax(self.decoder(h), dim=-1)
        else:
            hp = self.proj(h) if self.proj is not None else h
            out = torch.log_softmax(nn.functional.linear(hp, self.embed.weight, self.bias), dim=-1)
        return out.view(*shape, -1)

    def target_log_probs(self, h: Tensor, targets: Tensor) -> Tensor:
        """Log-probability of each target, ``h (n, hidden)``, ``targets (n,)`` → ``(n,)``."""
        if self.asm is not None:
            return self.asm(h, targets).output
        return self.log_probs(h).gather(1, targets.unsqueeze(1)).squeeze(1)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Log-probabilities ``(batch, seq_len, vocab)`` and the final LSTM state."""
        h, state = self.features(x, state)
        return self.log_probs(h), state


def detach(state: State | None) -> State | None:
    return None if state is None else (state[0].detach(), state[1].detach())


@torch.no_grad()
def stream_log_likelihood(model: LSTMLanguageModel, ids: Sequence[int], batch_size: int = 1, bptt: int = 70,
                          device: str = "cpu") -> tuple[float, int]:
    """Total natural-log probability of ``ids[1:]`` given all preceding tokens, and its count.

    With ``batch_size`` 1 every token sees the whole preceding stream; larger batches split the
    stream into that many contiguous parts (each part starts from a zero state), which is
    faster and changes the figure only at the few part boundaries.
    """
    model.eval()
    n = len(ids) - 1
    if n <= 0:
        return 0.0, 0
    b = max(1, min(batch_size, n))
    length = math.ceil(n / b)
    inputs = torch.zeros(b * length, dtype=torch.long)
    targets = torch.full((b * length,), -1, dtype=torch.long)
    t = torch.as_tensor(ids, dtype=torch.long)
    inputs[:n] = t[:-1]
    targets[:n] = t[1:]
    inputs = inputs.view(b, length).to(device)
    targets = targets.view(b, length).to(device)
    state = None
    total = 0.0
    for s in range(0, length, bptt):
        h, state = model.features(inputs[:, s : s + bptt], state)
        tgt = targets[:, s : s + bptt].reshape(-1)
        keep = tgt >= 0
        h = h.reshape(-1, h.shape[-1])[keep]
        total += model.target_log_probs(h, tgt[keep]).double().sum().item()
    return total, n
