"""Document context: the tokens around a sentence in its document.

A model trained with ``train --context N`` reads, for each sentence, up to ``N`` tokens of the
sentences before it and ``N`` of those after it in the same document (the BiLSTM runs over the
whole window), and tags the sentence alone: a name is easier to type when the document mentions it
elsewhere (Ratinov & Roth 2009; Luoma & Pyysalo 2020 for the same idea with BERT). Documents are
what the readers say they are: CoNLL ``-DOCSTART-``, CoNLL-U ``# newdoc``, the ``doc`` column of a
prepared directory.

Torch-free: shared by training (window bounds over the flat token arrays of a corpus) and
prediction (the context tokens of each sentence).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

from tagger.prediction import SentenceTokens, join


def window_sizes(lengths: Sequence[int], docs: Sequence[int], n: int) -> list[tuple[int, int]]:
    """For sentences in document order (``lengths`` tokens, document ids ``docs``): how many tokens
    of left and right context each gets, up to ``n`` each and within its own document."""
    if len(lengths) != len(docs):
        raise ValueError("one document id per sentence")
    if n < 0:
        raise ValueError("context must be at least 0")
    out: list[tuple[int, int]] = []
    start = 0  # first sentence of the current document
    while start < len(lengths):
        end = start
        while end < len(lengths) and docs[end] == docs[start]:
            end += 1
        before = 0
        total = sum(lengths[start:end])
        for i in range(start, end):
            after = total - before - lengths[i]
            out.append((min(n, before), min(n, after)))
            before += lengths[i]
        start = end
    return out


def with_context(sentences: Sequence[Sequence[str]], docs: Sequence[int], n: int) -> list[SentenceTokens]:
    """Each sentence with up to ``n`` tokens of context on each side from its document (sentences in
    document order, ``docs`` their document ids); feature values, where the sentences have them,
    come along (:class:`~tagger.prediction.SentenceTokens`)."""
    sizes = window_sizes([len(s) for s in sentences], docs, n)
    out: list[SentenceTokens] = []
    for i, (left, right) in enumerate(sizes):
        before: list[Sequence[str]] = []
        j, need = i - 1, left
        while need:
            part = sentences[j][max(0, len(sentences[j]) - need):]
            before.insert(0, part)
            need -= len(part)
            j -= 1
        after: list[Sequence[str]] = []
        j, need = i + 1, right
        while need:
            part = sentences[j][:need]
            after.append(part)
            need -= len(part)
            j += 1
        s = sentences[i]
        out.append(SentenceTokens(s, getattr(s, "features", None), join(before), join(after), n))
    return out


class ContextStream:
    """Items of a stream (anything with a ``sents`` list) whose sentences get their document context
    as they pass: an item is held until ``n`` tokens of its document follow it (or the document or
    stream ends), so memory stays bounded by ``n`` tokens and one document's few items.

    ``doc_of(item)`` is the item's document key (``None``: the item continues the current document,
    as an item without sentences does).
    """

    def __init__(self, n: int, doc_of: Callable[[Any], object]) -> None:
        self.n = n
        self.doc_of = doc_of

    def __call__(self, items: Iterable[Any]) -> Iterator[Any]:
        held: list[Any] = []  # items not yet passed on, all of the current document
        before: Sequence[str] = []  # the last n tokens of the document before held[0]
        doc = object()
        for item in items:
            key = self.doc_of(item)
            if key is not None and key != doc and item.sents:
                while held:
                    before = yield from self._release(held, before)
                before, doc = [], key
            held.append(item)
            while held and self._following(held) >= self.n:
                before = yield from self._release(held, before)
        while held:
            before = yield from self._release(held, before)

    @staticmethod
    def _following(held: list[Any]) -> int:
        """Tokens of the held items after the first one."""
        return sum(len(s) for item in held[1:] for s in item.sents)

    def _release(self, held: list[Any], before: Sequence[str]) -> Generator[Any, None, Sequence[str]]:
        """Give held[0]'s sentences their context, pass it on; returns the new ``before``."""
        first = held.pop(0)
        if first.sents:
            later = [s for item in held for s in item.sents]
            sents = [before, *first.sents, *later]
            done = with_context(sents, [0] * len(sents), self.n)[1 : 1 + len(first.sents)]
            first.sents = done
            whole = join([before, *first.sents])
            before = whole[max(0, len(whole) - self.n):]
        yield first
        return before
