"""CoNLL column files: one token per line, columns split by spaces or tabs, blank lines end sentences.

One reader, :func:`read_conll`, serves both uses. It yields :class:`Block` objects that keep every
byte of the input (``prepare``/``evaluate`` use the tokens and labels, ``annotate`` copies the
lines and adds a column), and reads in one of two modes:

* ``strict`` (training and evaluation data): every non-blank line other than ``-DOCSTART-`` is a
  token line, all with the same number of columns; an undecodable byte, a NUL byte or a
  different column count is an :class:`~tagger.errors.InputError` naming the file and line.
* lenient (``annotate``): any input is read (with the default token column 0). A line starting
  with ``#`` whose column count differs from the first token line's (or that comes before it) is a
  comment, kept in place; undecodable bytes in a token are replaced. A token line without the
  token column is still an error.

Columns are separated by ASCII spaces and tabs only, so a token may contain U+00A0, U+2028,
U+3000 or other Unicode spaces. ``-DOCSTART-`` lines start a new document and are neither
sentences nor tokens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import IO

from tagger.errors import InputError
from tagger.formats.corpus import Sentence
from tagger.formats.lines import check_encoding, decode, open_binary, split_lines, strip_bom, utf8_bom

DOCSTART = "-DOCSTART-"
_DOCSTART = DOCSTART.encode("ascii")


class Block:
    """The lines of a CoNLL or CoNLL-U file up to a sentence's end, every byte kept.

    ``rows`` holds ``(content, line ending, token index or -1)`` for each line, so that joining
    ``content + line ending`` over all blocks gives back the file. ``line`` is the first token
    line (0 when the block has no tokens), ``doc`` the document index, ``labels`` ``None`` unless
    a label column was asked for, ``features`` ``None`` unless feature columns were (then one list
    of values per column).
    """

    __slots__ = ("rows", "tokens", "labels", "line", "doc", "features")

    def __init__(self, rows: list[tuple[bytes, bytes, int]], tokens: list[str], labels: list[str] | None,
                 line: int, doc: int, features: list[list[str]] | None = None) -> None:
        self.rows = rows
        self.tokens = tokens
        self.labels = labels
        self.line = line
        self.doc = doc
        self.features = features

    def sentence(self) -> Sentence:
        return Sentence(self.tokens, self.labels, self.doc, self.line, self.features)


class BlockBuilder:
    """Collects the rows of the current block and counts documents."""

    def __init__(self, with_labels: bool, features: int = 0) -> None:
        self.with_labels = with_labels
        self.num_features = features
        self.doc = 0
        self.doc_has_sentences = False
        self._reset()

    def _reset(self) -> None:
        self.rows: list[tuple[bytes, bytes, int]] = []
        self.tokens: list[str] = []
        self.labels: list[str] = []
        self.features: list[list[str]] = [[] for _ in range(self.num_features)]
        self.line = 0

    def keep(self, raw: bytes, eol: bytes) -> None:
        """A line that is not a token: copied in place."""
        self.rows.append((raw, eol, -1))

    def token(self, raw: bytes, eol: bytes, lineno: int, token: str, label: str | None,
              features: Sequence[str] = ()) -> None:
        if not self.tokens:
            self.line = lineno
        self.rows.append((raw, eol, len(self.tokens)))
        self.tokens.append(token)
        if label is not None:
            self.labels.append(label)
        for column, value in zip(self.features, features, strict=True):
            column.append(value)

    def end_sentence(self) -> Block | None:
        """The block so far if it holds a sentence (the next block starts empty), else ``None``."""
        if not self.tokens:
            return None
        self.doc_has_sentences = True
        return self.flush()

    def new_document(self) -> None:
        if self.doc_has_sentences:
            self.doc += 1
            self.doc_has_sentences = False

    def flush(self) -> Block:
        block = Block(self.rows, self.tokens, self.labels if self.with_labels else None, self.line, self.doc,
                      self.features if self.num_features else None)
        self._reset()
        return block


def _missing(path, lineno: int, name: str, col: int, ncols: int) -> InputError:
    return InputError(path, lineno, f"missing {name} column: --{name}-column {col} but the line has {ncols} column(s)")


def read_conll(
    fh: IO[bytes],
    path: str | os.PathLike,
    encoding: str = "utf-8",
    token_column: int = 0,
    label_column: int | None = None,
    strict: bool = True,
    feature_columns: Sequence[int] = (),
) -> Iterator[Block]:
    """Blocks of a CoNLL stream (``path`` names it in errors); see the module docstring for the modes.

    A block ends with the blank line after a sentence; a ``-DOCSTART-`` line ends a pending
    sentence and starts the next block. The last block holds whatever follows the last sentence.
    ``label_column=None`` reads tokens only; ``feature_columns`` are read into ``Block.features``.
    """
    check_encoding(encoding)
    bom = utf8_bom(encoding)
    b = BlockBuilder(label_column is not None, len(feature_columns))
    ncols: int | None = None
    ncols_line = 0
    for lineno, (raw, eol) in enumerate(split_lines(fh), 1):
        if strict:
            decode(raw, path, lineno, encoding)  # an undecodable byte or a NUL is an error on this line
        cols = (strip_bom(raw, bom) if lineno == 1 else raw).split()
        if not cols:
            b.keep(raw, eol)
            block = b.end_sentence()
            if block is not None:
                yield block
            continue
        if cols[0] == _DOCSTART:
            block = b.end_sentence()
            if block is not None:
                yield block
            b.new_document()
            b.keep(raw, eol)
            continue
        if not strict and cols[0].startswith(b"#") and len(cols) != ncols:
            b.keep(raw, eol)  # a comment
            continue
        if ncols is None:
            ncols, ncols_line = len(cols), lineno
        elif strict and len(cols) != ncols:
            raise InputError(path, lineno, f"expected {ncols} columns (as on line {ncols_line}) but found {len(cols)}")
        n = len(cols)
        if not -n <= token_column < n:
            raise _missing(path, lineno, "token", token_column, n)
        if label_column is not None:
            if not -n <= label_column < n:
                raise _missing(path, lineno, "label", label_column, n)
            if n < 2:
                raise InputError(path, lineno, "missing label column: the line has only 1 column")
        for c in feature_columns:
            if not -n <= c < n:
                raise _missing(path, lineno, "feature", c, n)
            if label_column is not None and c % n == label_column % n:
                raise InputError(path, lineno, f"feature column {c} is the label column ({label_column})")
        label = cols[label_column].decode(encoding, "replace") if label_column is not None else None
        features = [cols[c].decode(encoding, "replace") for c in feature_columns]
        b.token(raw, eol, lineno, cols[token_column].decode(encoding, "replace"), label, features)
    if b.rows:
        yield b.flush()


def iter_conll(
    path: str | os.PathLike,
    token_column: int = 0,
    label_column: int | None = -1,
    encoding: str = "utf-8",
    feature_columns: Sequence[int] = (),
) -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL file, strictly (``label_column=None``: tokens only)."""
    with open_binary(path) as fh:
        for block in read_conll(fh, path, encoding, token_column, label_column, feature_columns=feature_columns):
            if block.tokens:
                yield block.sentence()
