"""CoNLL-U files: ten tab-separated fields per token line, ``#`` comments, blank lines end sentences.

One reader, :func:`read_conllu`, serves both uses (like :func:`tagger.formats.conll.read_conll`): it
yields :class:`~tagger.formats.conll.Block` objects that keep every byte. Comment lines,
multiword-token ranges (``3-4``) and empty nodes (``5.1``) are kept in place but are not tokens;
``# newdoc`` comments start a new document. A line with another number of fields or a bad token
ID is an :class:`~tagger.errors.InputError` naming the file and line. ``strict`` (training and
evaluation data) also rejects undecodable bytes and NUL bytes; otherwise (``annotate``)
undecodable bytes in a token are replaced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from typing import IO

from tagger.errors import InputError, TaggerError
from tagger.formats.conll import Block, BlockBuilder
from tagger.formats.corpus import Sentence
from tagger.formats.lines import check_encoding, decode, open_binary, split_lines, strip_bom, utf8_bom

#: Fields that can be read as labels, by their index in a token line.
CONLLU_FIELDS = {"upos": 3, "xpos": 4}
#: Fields that can be read as feature columns (``_``, "no value", is a value like any other).
FEATURE_FIELDS = {"lemma": 2, "upos": 3, "xpos": 4, "feats": 5, "deprel": 7, "misc": 9}
_ID = re.compile(rb"[0-9]+")
_RANGE_OR_EMPTY = re.compile(rb"[0-9]+-[0-9]+|[0-9]+\.[0-9]+")  # multiword ranges and empty nodes


def read_conllu(
    fh: IO[bytes],
    path: str | os.PathLike,
    encoding: str = "utf-8",
    label_field: str | None = None,
    strict: bool = True,
    feature_fields: Sequence[str] = (),
) -> Iterator[Block]:
    """Blocks of a CoNLL-U stream; the token is FORM, the label (if asked for) UPOS or XPOS, the
    features (if asked for) the named :data:`FEATURE_FIELDS`."""
    if label_field is not None and label_field not in CONLLU_FIELDS:
        raise TaggerError(f"unknown --label-field {label_field!r}: choose one of {', '.join(CONLLU_FIELDS)}")
    unknown = [f for f in feature_fields if f not in FEATURE_FIELDS]
    if unknown:
        raise TaggerError(f"{path}: unknown CoNLL-U feature field {unknown[0]!r}: choose from "
                          f"{', '.join(FEATURE_FIELDS)} (column numbers are for CoNLL files)")
    if label_field is not None and label_field in feature_fields:
        raise TaggerError(f"the label field {label_field!r} cannot also be a feature field")
    col = CONLLU_FIELDS[label_field] if label_field is not None else None
    feature_cols = [FEATURE_FIELDS[f] for f in feature_fields]
    check_encoding(encoding)
    bom = utf8_bom(encoding)
    b = BlockBuilder(col is not None, len(feature_cols))
    for lineno, (raw, eol) in enumerate(split_lines(fh), 1):
        if strict:
            decode(raw, path, lineno, encoding)  # an undecodable byte or a NUL is an error on this line
        body = strip_bom(raw, bom) if lineno == 1 else raw
        if not body.strip():
            b.keep(raw, eol)
            block = b.end_sentence()
            if block is not None:
                yield block
            continue
        if body.startswith(b"#"):
            if body.startswith(b"# newdoc") and not b.tokens:
                b.new_document()
            b.keep(raw, eol)
            continue
        cols = body.split(b"\t")
        if len(cols) != 10:
            raise InputError(path, lineno, f"expected 10 tab-separated CoNLL-U fields but found {len(cols)}")
        if _RANGE_OR_EMPTY.fullmatch(cols[0]):
            b.keep(raw, eol)
            continue
        if not _ID.fullmatch(cols[0]):
            raise InputError(path, lineno, f"bad token ID {cols[0].decode(encoding, 'replace')!r}")
        label = None
        if col is not None:
            if cols[col] in (b"_", b""):
                raise InputError(path, lineno, f"no {label_field} value in this token line")
            label = cols[col].decode(encoding, "replace")
        features = [cols[c].decode(encoding, "replace") for c in feature_cols]
        b.token(raw, eol, lineno, cols[1].decode(encoding, "replace"), label, features)
    if b.rows:
        yield b.flush()


def iter_conllu(
    path: str | os.PathLike,
    label_field: str | None = "upos",
    encoding: str = "utf-8",
    feature_fields: Sequence[str] = (),
) -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL-U file, strictly (``label_field=None``: tokens only)."""
    with open_binary(path) as fh:
        for block in read_conllu(fh, path, encoding, label_field, feature_fields=feature_fields):
            if block.tokens:
                yield block.sentence()
