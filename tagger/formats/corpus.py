"""The corpus model: sentences with tokens, optional labels and feature columns, document index and first line.

The corpus readers (:mod:`~tagger.formats.conll`, :mod:`~tagger.formats.conllu`,
:mod:`~tagger.formats.hf`; by format: :mod:`~tagger.formats.read`) yield :class:`Sentence`
objects that remember their document index and the 1-based line number they started on, so
later stages can point at the source of a problem.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sentence:
    """One sentence: tokens, optional labels, its document index and first line number.

    ``features`` holds the values of the feature columns that were asked for (one list per
    column, each as long as ``tokens``), or ``None`` when none were.
    """

    tokens: list[str]
    labels: list[str] | None = None
    doc: int = 0
    line: int = 0
    features: list[list[str]] | None = None


@dataclass
class Corpus:
    """Sentences read from one source, plus what is needed to describe it."""

    sentences: list[Sentence]
    source: str
    format: str
    num_documents: int

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def num_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.sentences)
