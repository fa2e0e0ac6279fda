"""Vocabularies for words, characters and labels, saved as plain JSON."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1

_DIGITS = re.compile(r"[0-9]")


def normalize_digits(word: str) -> str:
    """Map every ASCII digit to 0 (``1996-08-22`` → ``0000-00-00``)."""
    return _DIGITS.sub("0", word)


class Vocab:
    """A string ↔ id mapping. Ids 0 and 1 are ``<pad>`` and ``<unk>`` when ``specials``."""

    def __init__(self, items: Iterable[str] = (), specials: bool = True) -> None:
        self.itos: list[str] = [PAD, UNK] if specials else []
        self.specials = specials
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        for item in items:
            self.add(item)

    def add(self, item: str) -> int:
        idx = self.stoi.get(item)
        if idx is None:
            idx = self.stoi[item] = len(self.itos)
            self.itos.append(item)
        return idx

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: str) -> bool:
        return item in self.stoi

    def __getitem__(self, item: str) -> int:
        return self.stoi.get(item, UNK_ID if self.specials else -1)

    def lookup(self, items: Sequence[str]) -> list[int]:
        unk = UNK_ID if self.specials else -1
        get = self.stoi.get
        return [get(x, unk) for x in items]

    def to_json(self) -> dict:
        return {"itos": self.itos, "specials": self.specials}

    @classmethod
    def from_json(cls, data: dict) -> Vocab:
        v = cls(specials=False)
        v.specials = bool(data.get("specials", True))
        for s in data["itos"]:
            v.add(str(s))
        return v

    @classmethod
    def build(
        cls, counts: Counter, min_count: int = 1, specials: bool = True, max_size: int | None = None
    ) -> Vocab:
        """Items sorted by frequency (ties alphabetically) with at least ``min_count`` uses."""
        items = sorted((x for x, c in counts.items() if c >= min_count), key=lambda x: (-counts[x], x))
        if max_size is not None:
            items = items[:max_size]
        return cls(items, specials=specials)


class WordLookup:
    """Maps tokens to word ids over the training vocabulary plus pretrained-only words.

    Ids ``[0, num_trained)`` index the trainable vocabulary built from the training split;
    ids ``[num_trained, num_trained + len(extra))`` index pretrained vectors of words never
    seen in training, so they keep their pretrained meaning at prediction time.
    Lookup tries the normalised token, then its lowercase form.
    """

    def __init__(
        self, words: Vocab, extra: Sequence[str] = (), lowercase: bool = False, digits: bool = True
    ) -> None:
        self.words = words
        self.lowercase = lowercase
        self.digits = digits
        self.num_trained = len(words)
        self.extra = list(extra)
        table = {w: i + self.num_trained for i, w in enumerate(self.extra)}
        table.update(words.stoi)  # the trained vocabulary wins on collisions
        self._table = table
        self._cache: dict[str, int] = {}

    def __len__(self) -> int:
        return self.num_trained + len(self.extra)

    def key(self, token: str) -> str:
        if self.digits:
            token = normalize_digits(token)
        if self.lowercase:
            token = token.lower()
        return token

    def __call__(self, token: str) -> int:
        idx = self._cache.get(token)
        if idx is not None:
            return idx
        k = self.key(token)
        idx = self._table.get(k)
        if idx is None:
            idx = self._table.get(k.lower(), UNK_ID)
        if len(self._cache) < 1_000_000:
            self._cache[token] = idx
        return idx

    def lookup(self, tokens: Sequence[str]) -> list[int]:
        return [self(t) for t in tokens]


def char_counts(sentences: Iterable[Sequence[str]]) -> Counter:
    counts: Counter = Counter()
    for tokens in sentences:
        for t in tokens:
            counts.update(t)
    return counts
