"""The sentence classifier: word embeddings → (Bi)LSTM → masked pooling → dropout → linear.

Two classes use one logit with sigmoid + binary cross-entropy (as the classic Keras IMDB
example); more classes use softmax + cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tagger.modeldir import JsonConfig
from tagger.nn.dropout import Dropout
from tagger.nn.embedding import WordEmbedding
from tagger.options import option

POOLINGS = ("last", "max", "mean")


@dataclass
class ClassifierConfig(JsonConfig):
    """Architecture hyper-parameters (saved in ``config.json``; bounds checked on loading)."""

    num_words: int = option(help="trainable vocabulary size", min=1, max=5_000_000)
    num_extra: int = option(help="frozen pretrained-only words", min=0, max=5_000_000)
    word_dim: int = option(help="word vector size", min=1, max=2048)
    num_labels: int = option(help="number of classes", min=2, max=100_000)
    hidden: int = option(100, help="LSTM hidden size (per direction)", min=1, max=4096)
    layers: int = option(1, help="LSTM layers", min=1, max=8)
    bidirectional: bool = option(True, help="BiLSTM (else a forward LSTM)")
    pooling: str = option("max", help="last | max | mean (masked)", choices=POOLINGS)
    dropout: float = option(0.5, help="dropout before the output layer", min=0.0, below=1.0)
    embed_dropout: float = option(0.25, help="dropout on the word vectors", min=0.0, below=1.0)
    word_dropout: float = option(0.0, help="share of training words replaced by <unk>", min=0.0, below=1.0)
    freeze_words: bool = option(False, help="keep the pretrained vectors fixed")

    @property
    def binary(self) -> bool:
        return self.num_labels == 2

    @property
    def num_outputs(self) -> int:
        return 1 if self.binary else self.num_labels


class LSTMClassifier(nn.Module):
    """Embeddings → (Bi)LSTM → masked pooling → dropout → linear."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        c = config
        if c.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        self.config = c
        self.word_embed = WordEmbedding(c.num_words, c.num_extra, c.word_dim, c.word_dropout, c.freeze_words)
        self.embed_dropout = Dropout(c.embed_dropout)
        self.lstm = nn.LSTM(c.word_dim, c.hidden, num_layers=c.layers, bidirectional=c.bidirectional,
                            batch_first=True, dropout=c.dropout if c.layers > 1 else 0.0)
        self.dropout = Dropout(c.dropout)
        self.out = nn.Linear(c.hidden * (2 if c.bidirectional else 1), c.num_outputs)

    def forward(self, words: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(batch, num_outputs)`` for padded word ids ``(batch, seq_len)``."""
        x = self.embed_dropout(self.word_embed(words))  # (batch, seq_len, word_dim)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        pooling = self.config.pooling
        if pooling == "last":
            # h: (layers * directions, batch, hidden); the last layer's forward (and backward) state.
            return self.out(self.dropout(torch.cat([h[-2], h[-1]], dim=-1) if self.config.bidirectional else h[-1]))
        seq, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        mask = (torch.arange(words.shape[1], device=words.device)[None, :] < lengths.to(words.device)[:, None])
        mask = mask.unsqueeze(-1)  # (batch, seq_len, 1)
        if pooling == "max":
            pooled = seq.masked_fill(~mask, float("-inf")).amax(dim=1)
        else:
            pooled = (seq * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.out(self.dropout(pooled))

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities ``(batch, num_labels)``."""
        if self.config.binary:
            p = torch.sigmoid(logits.squeeze(-1))
            return torch.stack([1 - p, p], dim=-1)
        return torch.softmax(logits, dim=-1)

    def loss(self, logits: Tensor, gold: Tensor) -> Tensor:
        """Mean cross-entropy of the logits against gold class ids."""
        if self.config.binary:
            return nn.functional.binary_cross_entropy_with_logits(logits.squeeze(-1), gold.float())
        return nn.functional.cross_entropy(logits, gold)

    @torch.inference_mode()
    def predict_proba(self, encoded: Sequence[Sequence[int]], batch_size: int, device: str = "cpu") -> np.ndarray:
        """``(len(encoded), num_labels)`` probabilities of word-id sequences, in input order."""
        self.eval()
        out = np.zeros((len(encoded), self.config.num_labels), dtype=np.float64)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            words, lengths = pad_batch(encoded, idx)
            out[idx] = self.probabilities(self(words.to(device), lengths)).double().cpu().numpy()
        return out


def pad_batch(encoded: Sequence[Sequence[int]], idx: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Word ids of the sequences ``idx`` padded with 0 ``(batch, longest)``, and their lengths."""
    lengths = [len(encoded[i]) for i in idx]
    words = torch.zeros(len(idx), max(lengths), dtype=torch.long)
    for b, i in enumerate(idx):
        words[b, : lengths[b]] = torch.as_tensor(encoded[i], dtype=torch.long)
    return words, torch.as_tensor(lengths, dtype=torch.long)
