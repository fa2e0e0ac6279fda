"""Inputs of ``tagger annotate``: each format's reader (:mod:`tagger.formats`) as a stream of items.

An item is one output record: the sentences to tag and what the renderer needs to write it.
Nothing is lost: every input record gives one item, a bad record an item with an ``error``.

* ``text``   raw text, one item per sentence (``data``: a :class:`~tagger.formats.text.TextSentence`);
* ``tokens`` one item per line (``data``: the tokens);
* ``conll`` / ``conllu`` one item per sentence block, every byte kept (``data``: a
  :class:`~tagger.formats.conll.Block`); CoNLL tokens come from the model's token column, and a
  model with feature columns gets their values with the tokens
  (:class:`~tagger.prediction.SentenceTokens`);
* ``jsonl``  one item per non-blank line (``data``: a :class:`~tagger.formats.jsonl.JsonRecord`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import IO

from tagger.errors import TaggerError
from tagger.formats.conll import read_conll
from tagger.formats.conllu import read_conllu
from tagger.formats.jsonl import read_records
from tagger.formats.read import conll_feature_columns
from tagger.formats.text import read_text, read_token_lines
from tagger.prediction import SentenceTokens


class Item:
    """One input record: the sentences to tag and what its renderer needs."""

    __slots__ = ("sents", "data", "line", "error")

    def __init__(self, sents: list, data=None, line: int = 0, error: str | None = None) -> None:
        self.sents = sents
        self.data = data
        self.line = line
        self.error = error


def read_items(fmt: str, fh: IO[bytes], path: str, encoding: str = "utf-8", token_column: int = 0,
               max_chars: int = 100_000, features: Sequence[str] = ()) -> Iterator[Item]:
    """The items of an input stream in format ``fmt`` (``path`` names it in errors); ``features``:
    the feature columns the model reads (CoNLL column numbers or CoNLL-U fields, as it names them)."""
    if features and fmt not in ("conll", "conllu", "jsonl"):
        raise TaggerError(f"{path}: the model reads the feature column(s) {', '.join(features)} beside the "
                          f"words: give CoNLL or CoNLL-U input that has them, or JSON lines of tokens with "
                          f"their features (read as {fmt}; a CoNLL file without a .conll name needs "
                          "--input-format conll)")
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
        blocks = (read_conll(fh, path, encoding, token_column, strict=False,
                             feature_columns=conll_feature_columns(features, path)) if fmt == "conll"
                  else read_conllu(fh, path, encoding, strict=False, feature_fields=features))
        for b in blocks:
            sentence = b.tokens if b.features is None else SentenceTokens(b.tokens, b.features)
            yield Item([sentence] if b.tokens else [], b, b.line)
    elif fmt == "jsonl":
        for r in read_records(fh, path, encoding, features):
            yield Item([], r.source, r.line, r.error) if r.error else Item(r.sentences, r, r.line)
    else:
        raise ValueError(f"unknown input format {fmt!r}")


def document_key(fmt: str) -> Callable[[Item], object]:
    """The document of an item of format ``fmt``, for document context (``None``: it continues the
    current one): CoNLL ``-DOCSTART-`` and CoNLL-U ``# newdoc`` start documents; a raw-text or
    tokens file is one document; a JSON line is its own document unless consecutive lines share a
    ``doc`` field."""
    def key(item: Item) -> object:
        if not item.sents:
            return None
        if fmt in ("conll", "conllu"):
            return item.data.doc
        if fmt == "jsonl":
            obj = item.data.obj
            return ("doc", obj["doc"]) if "doc" in obj else object()
        return 0

    return key
