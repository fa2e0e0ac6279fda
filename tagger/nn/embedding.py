"""Word embeddings with trainable rows, frozen pretrained-only rows and word dropout."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tagger.vocab import PAD_ID, UNK_ID


class WordEmbedding(nn.Module):
    """Ids ``0..num_words-1`` index a trainable matrix; ids ``num_words..`` a frozen one.

    The frozen rows hold the pretrained vectors of words never seen in training (a
    non-persistent buffer: saved in its own file, so ``model.safetensors`` holds only what was
    trained). In training, a share ``word_dropout`` of the real words is replaced by ``<unk>``.
    The state-dict key is ``weight``, and the initialisation is that of ``nn.Embedding`` with
    padding id 0, so models built with either read the same weights.
    """

    def __init__(self, num_words: int, num_extra: int, dim: int, word_dropout: float = 0.0,
                 freeze: bool = False) -> None:
        super().__init__()
        self.num_words = num_words
        self.word_dropout = word_dropout
        self.weight = nn.Parameter(torch.empty(num_words, dim), requires_grad=not freeze)
        nn.init.normal_(self.weight)
        with torch.no_grad():
            self.weight[PAD_ID].fill_(0)
        self.register_buffer("extra", torch.zeros(num_extra, dim), persistent=False)

    def set_pretrained(self, words, extra=None) -> None:
        """Copy the initial trainable matrix and (if any) the frozen rows (numpy or tensors)."""
        with torch.no_grad():
            self.weight.copy_(torch.as_tensor(words))
        if extra is not None and self.extra.shape[0]:
            self.set_extra(torch.as_tensor(extra, dtype=torch.float32))

    def set_extra(self, extra: Tensor) -> None:
        """Replace the frozen pretrained-only rows ``(num_extra, dim)``."""
        self.extra = extra.to(self.weight.device)

    def forward(self, words: Tensor) -> Tensor:
        """Vectors ``(..., dim)`` of word ids ``(...)``."""
        if self.training and self.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.word_dropout
            words = words.masked_fill(drop & (words > PAD_ID), UNK_ID)
        if self.extra.shape[0] == 0:
            return nn.functional.embedding(words, self.weight, PAD_ID)
        is_extra = words >= self.num_words
        w = nn.functional.embedding(words.masked_fill(is_extra, UNK_ID), self.weight, PAD_ID)
        e = nn.functional.embedding((words - self.num_words).clamp(min=0), self.extra)
        return torch.where(is_extra.unsqueeze(-1), e, w)
