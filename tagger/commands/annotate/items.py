"""Inputs of ``tagger annotate``: each format's reader (:mod:`tagger.formats`) as a stream of items.

An item is one output record: the sentences to tag and what the renderer needs to write it.
Nothing is lost: every input record gives one item, a bad record an item with an ``error``.

* ``text``   raw text, one item per sentence (``data``: a :class:`~tagger.formats.text.TextSentence`);
* ``tokens`` one item per line (``data``: the tokens);
* ``conll`` / ``conllu`` one item per sentence block, every byte kept (``data``: a
  :class:`~tagger.formats.conll.Block`); CoNLL tokens come from the model's token column;
* ``jsonl``  one item per non-blank line (``data``: a :class:`~tagger.formats.jsonl.JsonRecord`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from tagger.formats.conll import read_conll
from tagger.formats.conllu import read_conllu
from tagger.formats.jsonl import read_records
from tagger.formats.text import read_text, read_token_lines


class Item:
    """One input record: the sentences to tag and what its renderer needs."""

    __slots__ = ("sents", "data", "line", "error")

    def __init__(self, sents: list, data=None, line: int = 0, error: str | None = None) -> None:
        self.sents = sents
        self.data = data
        self.line = line
        self.error = error


def read_items(fmt: str, fh: IO[bytes], path: str, encoding: str = "utf-8", token_column: int = 0,
               max_chars: int = 100_000) -> Iterator[Item]:
    """The items of an input stream in format ``fmt`` (``path`` names it in errors)."""
    if fmt == "text":
        for s in read_text(fh, path, encoding, max_chars):
            yield Item([s.tokens], s, s.line)
    elif fmt == "tokens":
        for t in read_token_lines(fh, path, encoding, strict=False):
            if t.error:
                yield Item([], t.text, t.line, t.error)
            else:
                yield Item([t.tokens] if t.tokens else [], t.tokens, t.line)
    elif fmt in ("conll", "conllu"):
        blocks = (read_conll(fh, path, encoding, token_column, strict=False) if fmt == "conll"
                  else read_conllu(fh, path, encoding, strict=False))
        for b in blocks:
            yield Item([b.tokens] if b.tokens else [], b, b.line)
    elif fmt == "jsonl":
        for r in read_records(fh, path, encoding):
            yield Item([], r.source, r.line, r.error) if r.error else Item(r.sentences, r, r.line)
    else:
        raise ValueError(f"unknown input format {fmt!r}")
