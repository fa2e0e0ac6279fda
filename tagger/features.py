"""Turning token lists into padded tensors: word ids, character ids, casing classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Re-exported: these moved to the torch-free tagger.tokens.
from tagger.tokens import (  # noqa: F401
    BATCH_TOKENS,
    CASINGS,
    MAX_CHARS,
    Encoded,
    Featurizer,
    casing,
    length_batches,
)


@dataclass
class Batch:
    """Padded tensors for a batch of sentences; characters once per distinct token."""

    words: torch.Tensor  # (batch, seq_len) long
    chars: torch.Tensor  # (distinct tokens, max_chars) long: character ids of the batch's distinct tokens
    char_rows: torch.Tensor  # (batch, seq_len) long: the row of ``chars`` of each position
    casing: torch.Tensor  # (batch, seq_len) long
    mask: torch.Tensor  # (batch, seq_len) bool
    tags: torch.Tensor | None  # (batch, seq_len) long, 0 at padding
    index: list[int]  # positions of these sentences in the original list
    features: torch.Tensor | None = None  # (batch, seq_len, feature columns) long value ids, 0 at padding
    #: (batch, 2) long with document context: where each sentence starts in its row and the row's
    #: length. The token tensors then hold whole windows (context, sentence, context); ``mask`` and
    #: ``tags`` the sentences alone (batch, sentence length).
    context: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """``(batch,)`` sentence lengths."""
        return self.mask.sum(1)

    def to(self, device: torch.device | str) -> Batch:
        if str(device) == "cpu":
            return self
        return Batch(
            self.words.to(device), self.chars.to(device), self.char_rows.to(device), self.casing.to(device),
            self.mask.to(device), None if self.tags is None else self.tags.to(device), self.index,
            None if self.features is None else self.features.to(device),
            None if self.context is None else self.context.to(device),
        )


class EncodedCorpus:
    """Encoded sentences held as flat tensors, so that a batch is built by indexing alone.

    Every token points to its distinct character sequence (a row of a padded table), so a
    batch carries each distinct token's characters once and the character encoder runs once
    per distinct token of the batch.
    """

    def __init__(self, items: Sequence[Encoded]) -> None:
        if any(len(x) == 0 for x in items):
            raise ValueError("every sentence needs at least one token")
        self.lengths = torch.tensor([len(x) for x in items], dtype=torch.long)  # (sentences,)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths  # (sentences,) first token of each
        self.words = torch.tensor([w for x in items for w in x.words], dtype=torch.long)  # (tokens,)
        self.casing = torch.tensor([c for x in items for c in x.casing], dtype=torch.long)  # (tokens,)
        self.tags = None
        if items and all(x.tags is not None for x in items):
            self.tags = torch.tensor([t for x in items for t in x.tags or []], dtype=torch.long)  # (tokens,)
        self.features = None
        if items and items[0].features is not None:
            n = len(items[0].features)
            if any(x.features is None or len(x.features) != n for x in items):
                raise ValueError("every sentence needs the same feature columns")
            self.features = torch.tensor([[col[i] for col in x.features or []] for x in items for i in range(len(x))],
                                         dtype=torch.long).reshape(-1, n)  # (tokens, feature columns)
        self.left: torch.Tensor | None = None  # (sentences,) tokens of context before each (set_context)
        self.right: torch.Tensor | None = None  # (sentences,) and after it
        forms: dict[tuple[int, ...], int] = {}
        self.forms = torch.tensor([forms.setdefault(tuple(c), len(forms)) for x in items for c in x.chars],
                                  dtype=torch.long)  # (tokens,) row of form_chars
        width = max([1, *map(len, forms)])
        self.form_chars = torch.zeros(max(1, len(forms)), width, dtype=torch.long)  # (forms, max_chars)
        self.form_lengths = torch.zeros(max(1, len(forms)), dtype=torch.long)  # (forms,)
        for chars, row in forms.items():
            self.form_chars[row, : len(chars)] = torch.tensor(chars, dtype=torch.long)
            self.form_lengths[row] = len(chars)

    def __len__(self) -> int:
        return len(self.lengths)

    def set_context(self, docs: Sequence[int], n: int) -> None:
        """Give each sentence up to ``n`` tokens of context on each side from its document (``docs``:
        the sentences' document ids; the sentences are in document order, as a corpus reads them)."""
        from tagger.context import window_sizes

        sizes = window_sizes(self.lengths.tolist(), docs, n)
        self.left = torch.tensor([a for a, _ in sizes], dtype=torch.long)  # (sentences,)
        self.right = torch.tensor([b for _, b in sizes], dtype=torch.long)  # (sentences,)

    def row_lengths(self) -> torch.Tensor:
        """``(sentences,)`` tokens of each sentence's row: the sentence, and its context if set."""
        if self.left is None or self.right is None:
            return self.lengths
        return self.left + self.lengths + self.right

    def batch(self, index: Sequence[int]) -> Batch:
        """The sentences ``index`` as one padded :class:`Batch` (windows with their context, if set)."""
        idx = torch.as_tensor(index, dtype=torch.long)  # (batch,)
        lengths = self.lengths[idx]  # (batch,)
        context = None
        first = self.offsets[idx]  # (batch,) first token of each row
        row_lengths = lengths  # (batch,) tokens of each row
        if self.left is not None and self.right is not None:
            left = self.left[idx]  # (batch,)
            first, row_lengths = first - left, left + lengths + self.right[idx]
            context = torch.stack([left, row_lengths], 1)  # (batch, 2)
        steps = torch.arange(int(row_lengths.max()))  # (row_len,)
        real = steps[None, :] < row_lengths[:, None]  # (batch, row_len)
        pos = torch.where(real, first[:, None] + steps[None, :], 0)  # (batch, row_len) token positions
        forms, char_rows = torch.unique(self.forms[pos], return_inverse=True)  # (distinct,), (batch, row_len)
        chars = self.form_chars[forms, : int(self.form_lengths[forms].max())]  # (distinct, max_chars)
        words = self.words[pos].masked_fill_(~real, 0)  # (batch, row_len)
        cas = self.casing[pos].masked_fill_(~real, 0)  # (batch, row_len)
        features = None  # (batch, row_len, feature columns)
        if self.features is not None:
            features = self.features[pos].masked_fill_(~real[:, :, None], 0)
        mask, at = real, pos  # (batch, seq_len) the sentences themselves, and their token positions
        if context is not None:
            own = torch.arange(int(lengths.max()))  # (seq_len,)
            mask = own[None, :] < lengths[:, None]
            at = torch.where(mask, self.offsets[idx, None] + own[None, :], 0)
        tags = None if self.tags is None else self.tags[at].masked_fill_(~mask, 0)  # (batch, seq_len)
        return Batch(words, chars, char_rows, cas, mask, tags, list(index), features, context)


def collate(items: Sequence[Encoded], index: Sequence[int]) -> Batch:
    """Pad encoded sentences into one :class:`Batch` (``index``: their positions in the original list)."""
    batch = EncodedCorpus(items).batch(range(len(items)))
    batch.index = list(index)
    return batch
