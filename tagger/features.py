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
    _chars_t: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.words)

    def chars_tensor(self) -> torch.Tensor:
        """Character ids as a (seq_len, max_chars) tensor, built once and cached."""
        if self._chars_t is None:
            width = max(1, max(len(c) for c in self.chars))
            t = torch.zeros(len(self.chars), width, dtype=torch.long)
            for j, c in enumerate(self.chars):
                if c:
                    t[j, : len(c)] = torch.tensor(c)
            self._chars_t = t
        return self._chars_t


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
    """Padded tensors for a batch of sentences."""

    words: torch.Tensor  # (batch, seq_len) long
    chars: torch.Tensor  # (batch, seq_len, max_chars) long
    casing: torch.Tensor  # (batch, seq_len) long
    mask: torch.Tensor  # (batch, seq_len) bool
    tags: torch.Tensor | None  # (batch, seq_len) long, 0 at padding
    index: list[int]  # positions of these sentences in the original list

    def to(self, device: torch.device | str) -> Batch:
        if str(device) == "cpu":
            return self
        return Batch(
            self.words.to(device), self.chars.to(device), self.casing.to(device),
            self.mask.to(device), None if self.tags is None else self.tags.to(device), self.index,
        )


def collate(items: Sequence[Encoded], index: Sequence[int]) -> Batch:
    """Pad encoded sentences into one :class:`Batch`."""
    b = len(items)
    seq_len = max(len(x) for x in items)
    max_chars = max(1, max(len(c) for x in items for c in x.chars))
    words = torch.zeros(b, seq_len, dtype=torch.long)
    cas = torch.zeros(b, seq_len, dtype=torch.long)
    chars = torch.zeros(b, seq_len, max_chars, dtype=torch.long)
    mask = torch.zeros(b, seq_len, dtype=torch.bool)
    has_tags = all(x.tags is not None for x in items)
    tags = torch.zeros(b, seq_len, dtype=torch.long) if has_tags else None
    for i, x in enumerate(items):
        n = len(x)
        words[i, :n] = torch.tensor(x.words)
        cas[i, :n] = torch.tensor(x.casing)
        mask[i, :n] = True
        ct = x.chars_tensor()
        chars[i, :n, : ct.shape[1]] = ct
        if tags is not None:
            tags[i, :n] = torch.tensor(x.tags)
    return Batch(words, chars, cas, mask, tags, list(index))


def length_batches(lengths: Sequence[int], batch_size: int, order: Sequence[int] | None = None) -> list[list[int]]:
    """Group sentence indices into batches of similar length (little padding).

    ``order`` (default: by length) is the order sentences are taken in before chunking.
    """
    if order is None:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
