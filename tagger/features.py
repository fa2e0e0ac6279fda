"""Turning token lists into padded tensors: word ids, character ids, casing classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tagger.vocab import UNK_ID, Vocab, WordLookup

#: Casing classes (index 0 is padding).
CASINGS = ("<pad>", "lower", "upper", "title", "mixed", "numeric", "has_digit", "punct", "other")
MAX_CHARS = 64  # longer tokens keep their first and last 32 characters for the char encoder


def casing(token: str) -> int:
    """A coarse shape class of a token (Reimers & Gurevych style casing feature)."""
    if token.isdigit():
        return 5
    if any(c.isdigit() for c in token):
        digits = sum(c.isdigit() for c in token)
        return 5 if digits / len(token) > 0.5 else 6
    if token.islower():
        return 1
    if token.isupper():
        return 2
    if token[:1].isupper() and token[1:].islower():
        return 3
    if any(c.isalpha() for c in token):
        return 4
    if all(not c.isalnum() for c in token):
        return 7
    return 8


@dataclass
class Encoded:
    """One sentence as id lists."""

    words: list[int]
    chars: list[list[int]]
    casing: list[int]
    tags: list[int] | None = None

    def __len__(self) -> int:
        return len(self.words)


class Featurizer:
    """Encodes token lists with the vocabularies of a prepared dataset or a model."""

    def __init__(self, lookup: WordLookup, chars: Vocab, labels: Vocab | None = None) -> None:
        self.lookup = lookup
        self.chars = chars
        self.labels = labels
        self._char_cache: dict[str, list[int]] = {}

    def char_ids(self, token: str) -> list[int]:
        ids = self._char_cache.get(token)
        if ids is None:
            if len(token) > MAX_CHARS:
                token_c = token[: MAX_CHARS // 2] + token[-MAX_CHARS // 2 :]
            else:
                token_c = token
            get = self.chars.stoi.get
            ids = [get(c, UNK_ID) for c in token_c]
            if len(self._char_cache) < 500_000:
                self._char_cache[token] = ids
        return ids

    def encode(self, tokens: Sequence[str], labels: Sequence[str] | None = None) -> Encoded:
        tags = None
        if labels is not None and self.labels is not None:
            stoi = self.labels.stoi
            tags = [stoi.get(label, -1) for label in labels]
        return Encoded(
            words=self.lookup.lookup(tokens),
            chars=[self.char_ids(t) for t in tokens],
            casing=[casing(t) for t in tokens],
            tags=tags,
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

    def batch(self, index: Sequence[int]) -> Batch:
        """The sentences ``index`` as one padded :class:`Batch`."""
        idx = torch.as_tensor(index, dtype=torch.long)  # (batch,)
        lengths = self.lengths[idx]  # (batch,)
        steps = torch.arange(int(lengths.max()))  # (seq_len,)
        mask = steps[None, :] < lengths[:, None]  # (batch, seq_len)
        pos = torch.where(mask, self.offsets[idx, None] + steps[None, :], 0)  # (batch, seq_len) token positions
        forms, rows = torch.unique(self.forms[pos], return_inverse=True)  # (distinct,), (batch, seq_len)
        chars = self.form_chars[forms, : int(self.form_lengths[forms].max())]  # (distinct, max_chars)
        words = self.words[pos].masked_fill_(~mask, 0)  # (batch, seq_len)
        cas = self.casing[pos].masked_fill_(~mask, 0)  # (batch, seq_len)
        tags = None if self.tags is None else self.tags[pos].masked_fill_(~mask, 0)  # (batch, seq_len)
        return Batch(words, chars, rows, cas, mask, tags, list(index))


def collate(items: Sequence[Encoded], index: Sequence[int]) -> Batch:
    """Pad encoded sentences into one :class:`Batch` (``index``: their positions in the original list)."""
    batch = EncodedCorpus(items).batch(range(len(items)))
    batch.index = list(index)
    return batch


#: Default padded-token budget of a prediction batch (see :func:`length_batches`).
BATCH_TOKENS = 4096


def length_batches(lengths: Sequence[int], batch_size: int, order: Sequence[int] | None = None,
                   max_tokens: int | None = None) -> list[list[int]]:
    """Group sentence indices into batches of similar length (little padding).

    ``order`` (default: by length) is the order sentences are taken in before chunking. Each
    batch holds at most ``batch_size`` sentences and, with ``max_tokens``, at most that many padded
    token slots (sentences x the longest; a longer sentence is a batch of its own): memory stays
    bounded whatever the lengths, and the BiLSTM ran 1.3-1.5x faster on batches of ~4k slots than
    on 256 sentences. A token-bounded batch of over 16 sentences holds a power of two of them
    (:func:`tagger.nn.padded_lstm.run_bilstm` would pad it to one with dummy rows).
    """
    if order is None:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    k = 0
    while k < len(order):
        end, longest = k, 0
        while end < len(order) and end - k < batch_size:
            n = lengths[order[end]]
            if max_tokens is not None and end > k and (end - k + 1) * max(longest, n) > max_tokens:
                break
            longest = max(longest, n)
            end += 1
        size = end - k
        if max_tokens is not None and size > 16:
            size = 1 << (size.bit_length() - 1)  # the rest starts the next batch
        out.append(list(order[k : k + size]))
        k += size
    return out
