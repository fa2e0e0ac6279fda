"""JSON lines: one JSON object per line.

:func:`parse_object` is the one JSON-line parser (labelled examples use it too); it turns
every way the ``json`` module fails (syntax, integers of more than 4300 digits, deep nesting)
into one message. :func:`read_records` reads the records ``annotate`` tags: a ``text`` (raw,
split into sentences with character offsets) or ``tokens`` (a list: one sentence; for a model
with feature columns, with a ``features`` object holding each column's values, e.g.
``{"tokens": ["He", "left"], "features": {"1": ["PRP", "VBD"]}}``). Bad lines are records with
an ``error``, never dropped; blank lines are not records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import IO

from tagger.formats.lines import decoded_lines
from tagger.formats.text import split_sentences
from tagger.prediction import SentenceTokens

_JSON_TYPES = {"list": "array", "str": "string", "NoneType": "null", "int": "number", "float": "number",
               "bool": "boolean"}


def parse_object(text: str) -> dict:
    """The JSON object on a line; ``ValueError`` with a message saying what is wrong."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"invalid JSON ({str(exc).split(';')[0] or type(exc).__name__})") from None
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        raise ValueError(f"expected a JSON object, found {_JSON_TYPES.get(kind, kind)}")
    return obj


class JsonRecord:
    """One non-blank line: the object and its sentences, or the line and why it is not a record.

    For a ``text`` record, ``offsets`` are the tokens' character offsets into ``text`` and
    ``bounds`` the token index where each sentence starts, plus the total.
    """

    __slots__ = ("line", "obj", "sentences", "text", "offsets", "bounds", "source", "error")

    def __init__(self, line: int, obj: dict | None = None, sentences: list[list[str]] | None = None,
                 text: str | None = None, offsets: list[tuple[int, int]] | None = None,
                 bounds: list[int] | None = None, source: str = "", error: str | None = None) -> None:
        self.line = line
        self.obj: dict = obj if obj is not None else {}
        self.sentences = sentences or []
        self.text = text
        self.offsets: list[tuple[int, int]] = offsets or []
        self.bounds = bounds or [0]
        self.source = source  # the line itself (for error records)
        self.error = error


def _record(lineno: int, line: str, features: Sequence[str]) -> JsonRecord:
    try:
        obj = parse_object(line)
    except ValueError as exc:
        return JsonRecord(lineno, source=line, error=str(exc))
    return record_from_object(obj, lineno, line, features)


def _feature_values(obj: dict, tokens: list[str], features: Sequence[str]) -> list[list[str]] | str:
    """The ``features`` field's values of each column in ``features``, or what is wrong with it."""
    given = obj.get("features")
    names = ", ".join(repr(f) for f in features)
    if not isinstance(given, dict):
        return f"the model reads feature columns: give 'features', an object with a list for each of {names}"
    out = []
    for f in features:
        values = given.get(f)
        if not isinstance(values, list) or len(values) != len(tokens) or not all(isinstance(v, str) for v in values):
            return f"'features' needs a list of {len(tokens)} strings (one per token) for each of {names}"
        out.append(values)
    return out


def record_from_object(obj: dict, line: int = 0, source: str = "", features: Sequence[str] = ()) -> JsonRecord:
    """The record of a parsed object: its ``tokens`` (one sentence) or its ``text`` split into sentences
    (an error record, with ``source`` as its input, if it has neither or they are malformed). With
    ``features`` (the model's feature columns), only ``tokens`` with their ``features`` will do."""
    lineno = line
    tokens = obj.get("tokens")
    text = obj.get("text")
    if tokens is not None:
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
            return JsonRecord(lineno, source=source, error="'tokens' must be a list of non-blank strings")
        sentence: list[str] = tokens
        if features:
            values = _feature_values(obj, tokens, features)
            if isinstance(values, str):
                return JsonRecord(lineno, source=source, error=values)
            sentence = SentenceTokens(tokens, values)
        return JsonRecord(lineno, obj, [sentence] if tokens else [], bounds=[0, len(tokens)])
    if features:
        return JsonRecord(lineno, source=source, error="the model reads feature columns: give 'tokens' with "
                          "their 'features', not raw text")
    if not isinstance(text, str):
        return JsonRecord(lineno, source=source, error="no 'text' (string) or 'tokens' (list) field")
    sents = split_sentences(text)
    bounds = [0]
    for s in sents:
        bounds.append(bounds[-1] + len(s))
    offsets = [o for s in sents for o in s]
    return JsonRecord(lineno, obj, [[text[a:b] for a, b in s] for s in sents], text, offsets, bounds)


def read_records(fh: IO[bytes], path: str, encoding: str = "utf-8",
                 features: Sequence[str] = ()) -> Iterator[JsonRecord]:
    """One record per non-blank line, in order; an undecodable line is an error record (``features``:
    see :func:`record_from_object`)."""
    for lineno, line, error in decoded_lines(fh, path, encoding, strict=False):
        if error is not None:
            yield JsonRecord(lineno, source=line, error=error)
        elif line.strip():
            yield _record(lineno, line, features)
