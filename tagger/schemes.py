"""Entity tag schemes: detection, span extraction, conversion and CRF constraints.

Supported schemes:

* ``"iob1"`` -- CoNLL-2003 original: an entity starts with ``I-`` unless it directly
  follows an entity of the same type, in which case it starts with ``B-``.
* ``"iob2"`` -- every entity starts with ``B-``, continues with ``I-``.
* ``"bioes"`` -- ``B-`` begin, ``I-`` inside, ``E-`` end, ``S-`` single-token entity.
  BILOU input (``L-`` last, ``U-`` unit) is accepted and read as BIOES; output always
  uses ``E-``/``S-``.
* ``"plain"`` -- labels that are not entity tags (POS tags, chunk labels without
  prefixes, or only ``"O"``). Nothing is converted or repaired.

A label is an entity tag iff it is ``"O"`` or matches ``^[BIESLU]-.+``; its type is
everything after the two-character prefix (``B-creative-work`` -> ``creative-work``).

Spans are read the way the conlleval script reads chunks (startOfChunk / endOfChunk,
with the usual ``S-`` extension also used by seqeval), so ill-formed sequences are
repaired the same way evaluation reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from tagger.errors import TaggerError

__all__ = [
    "SCHEMES",
    "ALL_SCHEMES",
    "SchemeError",
    "Span",
    "is_entity_tag",
    "split_tag",
    "detect_scheme",
    "to_spans",
    "strict_spans",
    "from_spans",
    "convert",
    "count_repairs",
    "is_well_formed",
    "allowed_transitions",
]

SCHEMES: tuple[str, ...] = ("iob1", "iob2", "bioes")
ALL_SCHEMES: tuple[str, ...] = SCHEMES + ("plain",)

_ENTITY_RE = re.compile(r"[BIESLU]-.+", re.DOTALL)
# Prefix letters each entity scheme accepts in input (L/U are BILOU spellings of E/S).
_VALID_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIESLU"}
_NORMALIZE = {"L": "E", "U": "S"}


class SchemeError(TaggerError, ValueError):
    """A tag sequence or label that does not fit the requested scheme."""


class Span(NamedTuple):
    """An entity: its type and token offsets ``[start, end)``."""

    label: str
    start: int
    end: int


def is_entity_tag(label: str) -> bool:
    """True iff ``label`` is ``"O"`` or a prefixed entity tag such as ``B-PER``."""
    return label == "O" or _ENTITY_RE.fullmatch(label) is not None


def split_tag(label: str) -> tuple[str, str | None]:
    """Split an entity tag into (prefix, type); ``"O"`` gives ``("O", None)``.

    ``L``/``U`` prefixes are returned as ``E``/``S``. Raises :class:`SchemeError`
    for labels that are not entity tags.
    """
    if label == "O":
        return "O", None
    if _ENTITY_RE.fullmatch(label) is None:
        raise SchemeError(f"not an entity tag: {label!r}")
    return _NORMALIZE.get(label[0], label[0]), label[2:]


def _check_scheme(scheme: str, allow_plain: bool = True) -> None:
    valid = ALL_SCHEMES if allow_plain else SCHEMES
    if scheme not in valid:
        raise SchemeError(f"unknown tag scheme {scheme!r} (expected one of: {', '.join(valid)})")


def _parse(tags: Sequence[str], scheme: str) -> list[tuple[str, str | None]]:
    """Split every tag, checking that its prefix is valid in ``scheme``."""
    if scheme == "plain":
        raise SchemeError("the 'plain' scheme has no entity spans")
    _check_scheme(scheme)
    valid = _VALID_PREFIXES[scheme]
    out = []
    for i, label in enumerate(tags):
        if label != "O" and (_ENTITY_RE.fullmatch(label) is None or label[0] not in valid):
            raise SchemeError(f"tag {label!r} at position {i} is not valid in scheme {scheme!r}")
        out.append(split_tag(label))
    return out


# ---------------------------------------------------------------------------- detection


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """Guess the tag scheme of a corpus: ``"plain"``, ``"bioes"``, ``"iob1"`` or ``"iob2"``.

    ``"plain"`` if any label is not an entity tag or no label carries a prefix;
    ``"bioes"`` if any ``E-``/``S-``/``L-``/``U-`` occurs; ``"iob1"`` if every ``B-``
    directly follows an ``I-``/``B-`` of the same type (or there is no ``B-``);
    otherwise ``"iob2"``.
    """
    prefixed = False
    bioes = False
    iob1 = True
    for seq in sequences:
        prev: str = "O"
        for label in seq:
            if not is_entity_tag(label):
                return "plain"
            if label != "O":
                prefixed = True
                p = label[0]
                if p in "ESLU":
                    bioes = True
                elif p == "B" and not (prev[:1] in ("B", "I") and prev[2:] == label[2:]):
                    iob1 = False
            prev = label
    if not prefixed:
        return "plain"
    if bioes:
        return "bioes"
    return "iob1" if iob1 else "iob2"


# ---------------------------------------------------------------------------- spans


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str | None, type_: str | None) -> bool:
    """conlleval's endOfChunk (with the S- extension): did a chunk end before ``tag``?"""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str | None, type_: str | None) -> bool:
    """conlleval's startOfChunk (with the S- extension): does a chunk start at ``tag``?"""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and prev_type != type_


def to_spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """Read the entities of a tag sequence, repairing ill-formed input like conlleval.

    Works the same for iob1, iob2 and bioes (conlleval's rules are scheme-agnostic);
    ``scheme`` only decides which prefixes are accepted (iob schemes: ``B``/``I``).
    Raises :class:`SchemeError` (a ``ValueError``) for ``"plain"`` or invalid tags.
    """
    return chunk_spans(_parse(tags, scheme))


def chunk_spans(parsed: Iterable[tuple[str, str | None]]) -> list[Span]:
    """The entities of split tags (``(prefix, type)`` pairs, as :func:`split_tag` gives), by conlleval's rules."""
    spans: list[Span] = []
    prev_tag, prev_type = "O", None
    begin = 0
    for i, (tag, type_) in enumerate([*parsed, ("O", None)]):
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            assert prev_type is not None
            spans.append(Span(prev_type, begin, i))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return spans


def strict_spans(tags: Sequence[str], scheme: str, chunks: Sequence[Span] | None = None) -> list[Span]:
    """The entities seqeval's strict mode reads: the chunks of :func:`to_spans` that are well formed.

    Strict mode (``mode='strict'``: IOB2 for iob2, IOBES for bioes, iob1 as its IOB2
    conversion) drops the ill-formed pieces conlleval repairs: an iob2 chunk must begin with
    ``B-``, a bioes one must be ``S-`` or ``B- I-* E-``; every iob1 chunk counts (its IOB2
    conversion is well formed). ``chunks`` is ``to_spans(tags, scheme)`` when already known.
    """
    if chunks is None:
        chunks = to_spans(tags, scheme)
    _check_scheme(scheme, allow_plain=False)
    if scheme == "iob1":
        return list(chunks)
    if scheme == "iob2":
        return [sp for sp in chunks if tags[sp.start][0] == "B"]
    ends = {("S", "S"), ("B", "E")}
    return [sp for sp in chunks if (split_tag(tags[sp.start])[0], split_tag(tags[sp.end - 1])[0]) in ends]


def from_spans(spans: Iterable[Sequence], length: int, scheme: str) -> list[str]:
    """Write sorted, non-overlapping spans ``(label, start, end)`` as tags in ``scheme``.

    iob1 uses ``B-`` only for a span that starts right where a span of the same type
    ends; bioes writes ``E-``/``S-`` (never ``L-``/``U-``).
    """
    if scheme == "plain":
        raise SchemeError("cannot write entity spans in the 'plain' scheme")
    _check_scheme(scheme)
    if length < 0:
        raise SchemeError(f"negative sequence length {length}")
    tags = ["O"] * length
    prev: Span | None = None
    for item in spans:
        span = Span(*item)
        if not isinstance(span.label, str) or not span.label:
            raise SchemeError(f"span {tuple(span)!r} has an empty or non-string label")
        if not 0 <= span.start < span.end <= length:
            raise SchemeError(f"span {tuple(span)!r} is empty or outside [0, {length})")
        if prev is not None and span.start < prev.end:
            raise SchemeError(f"spans overlap or are not sorted: {tuple(prev)!r}, {tuple(span)!r}")
        t = span.label
        n = span.end - span.start
        if scheme == "bioes":
            if n == 1:
                tags[span.start] = f"S-{t}"
            else:
                tags[span.start] = f"B-{t}"
                tags[span.start + 1 : span.end - 1] = [f"I-{t}"] * (n - 2)
                tags[span.end - 1] = f"E-{t}"
        else:
            if scheme == "iob2":
                first = "B"
            else:  # iob1
                adjacent = prev is not None and prev.end == span.start and prev.label == t
                first = "B" if adjacent else "I"
            tags[span.start] = f"{first}-{t}"
            tags[span.start + 1 : span.end] = [f"I-{t}"] * (n - 1)
        prev = span
    return tags


# ---------------------------------------------------------------------------- repairs


def _normalized(tags: Sequence[str]) -> list[str]:
    return [_NORMALIZE[t[0]] + t[1:] if t[:1] in _NORMALIZE and t[1:2] == "-" else t for t in tags]


def count_repairs(tags: Sequence[str], scheme: str) -> int:
    """Number of positions whose tag changes when the sequence is made well formed.

    Examples: ``I-`` after ``O`` in iob2, a type switch inside an entity, a ``B-``
    in iob1 that does not follow a same-type entity, a missing ``E-``/``S-`` in bioes.
    BILOU ``L-``/``U-`` are not repairs. Always 0 for ``"plain"``.
    """
    if scheme == "plain":
        return 0
    fixed = from_spans(to_spans(tags, scheme), len(tags), scheme)
    return sum(a != b for a, b in zip(_normalized(tags), fixed))


def is_well_formed(tags: Sequence[str], scheme: str) -> bool:
    """True iff ``tags`` needs no repair in ``scheme`` (always True for ``"plain"``)."""
    return count_repairs(tags, scheme) == 0


def convert(tags: Sequence[str], source: str, target: str) -> tuple[list[str], int]:
    """Convert tags from ``source`` to ``target`` scheme via spans.

    Returns ``(converted_tags, repairs)`` where ``repairs`` is :func:`count_repairs`
    of the input in ``source``. Well-formed input round-trips exactly between any two
    of iob1/iob2/bioes (BILOU input comes back as E-/S-). ``plain`` -> ``plain``
    returns the tags unchanged; mixing plain with an entity scheme raises.
    """
    _check_scheme(source)
    _check_scheme(target)
    if source == "plain" or target == "plain":
        if source == target:
            return list(tags), 0
        raise SchemeError(f"cannot convert between {source!r} and {target!r}")
    spans = to_spans(tags, source)
    fixed = from_spans(spans, len(tags), source)
    repairs = sum(a != b for a, b in zip(_normalized(tags), fixed))
    out = fixed if target == source else from_spans(spans, len(tags), target)
    return out, repairs


# ---------------------------------------------------------------------------- CRF constraints


def allowed_transitions(
    labels: Sequence[str], scheme: str
) -> tuple[list[bool], list[list[bool]], list[bool]]:
    """Transition constraints for a CRF over the label vocabulary ``labels``.

    Returns ``(start_allowed[j], trans_allowed[i][j], end_allowed[i])``; a path that
    uses only allowed start/transition/end steps is exactly a well-formed sequence in
    ``scheme``. Labels that are not valid in the scheme (e.g. ``"<pad>"``) are
    disallowed everywhere. For ``"plain"`` everything is allowed except labels
    starting with ``"<"``.
    """
    _check_scheme(scheme)
    n = len(labels)
    if scheme == "plain":
        ok = [not lab.startswith("<") for lab in labels]
        return list(ok), [[ok[i] and ok[j] for j in range(n)] for i in range(n)], list(ok)

    valid = _VALID_PREFIXES[scheme]
    parsed: list[tuple[str, str | None] | None] = [
        split_tag(lab) if lab == "O" or (is_entity_tag(lab) and lab[0] in valid) else None
        for lab in labels
    ]

    def start_ok(p: str) -> bool:
        if scheme == "iob1":
            return p != "B"
        if scheme == "iob2":
            return p != "I"
        return p in ("O", "B", "S")

    def end_ok(p: str) -> bool:
        return scheme != "bioes" or p in ("O", "E", "S")

    def trans_ok(a: tuple[str, str | None], b: tuple[str, str | None]) -> bool:
        (pa, ta), (pb, tb) = a, b
        if scheme == "iob1":
            return pb != "B" or (pa in ("B", "I") and ta == tb)
        if scheme == "iob2":
            return pb != "I" or (pa in ("B", "I") and ta == tb)
        if pa in ("B", "I"):
            return pb in ("I", "E") and ta == tb
        return pb in ("O", "B", "S")

    start = [p is not None and start_ok(p[0]) for p in parsed]
    end = [p is not None and end_ok(p[0]) for p in parsed]
    trans = [
        [a is not None and b is not None and trans_ok(a, b) for b in parsed] for a in parsed
    ]
    return start, trans, end
