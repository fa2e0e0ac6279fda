"""Open a corpus file of any format: labelled sentences (prepare, evaluate) or token lists (generate).

Bad input raises :class:`tagger.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from tagger.errors import InputError, TaggerError
from tagger.formats.conll import iter_conll
from tagger.formats.conllu import iter_conllu
from tagger.formats.corpus import Corpus, Sentence
from tagger.formats.detect import detect_format, detect_text_format
from tagger.formats.lines import open_binary
from tagger.formats.text import read_token_lines

FORMATS = ("auto", "conll", "conllu")
TEXT_FORMATS = ("auto", "text", "conll", "conllu")


def _nothing_read(path: Path) -> InputError:
    return InputError(path, None, "file is empty" if path.stat().st_size == 0 else "no sentences found")


def read_corpus(
    path: str | os.PathLike,
    format: str = "auto",
    token_column: int = 0,
    label_column: int | None = -1,
    label_field: str | None = "upos",
    encoding: str = "utf-8",
    require_labels: bool = True,
    features: Sequence[str] = (),
) -> Corpus:
    """Read a whole corpus file; errors for empty files or files without sentences.

    ``features`` names feature columns: column numbers (as text) in a CoNLL file, field names
    (:data:`~tagger.formats.conllu.FEATURE_FIELDS`) in a CoNLL-U file.
    """
    if format not in FORMATS:
        raise TaggerError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    fmt = detect_format(path, ("conllu", "conll"), encoding) if format == "auto" else format
    if fmt == "conll":
        it: Iterable[Sentence] = iter_conll(
            path, token_column, label_column if require_labels else None, encoding,
            feature_columns=conll_feature_columns(features, path),
        )
    else:
        it = iter_conllu(path, label_field if require_labels else None, encoding, feature_fields=list(features))
    sentences = list(it)
    if not sentences:
        raise _nothing_read(path)
    return Corpus(sentences, str(path), fmt, len({s.doc for s in sentences}))


def conll_feature_columns(features: Sequence[str], path: str | os.PathLike) -> list[int]:
    """Feature column numbers of a CoNLL file from their names as given (``"1"``, ``"-2"``)."""
    out = []
    for f in features:
        try:
            out.append(int(f))
        except ValueError:
            raise TaggerError(f"{path}: a CoNLL file's feature columns are column numbers, not {f!r}") from None
    return out


def read_sentences(
    path: str | Path, format: str = "auto", encoding: str = "utf-8", token_column: int = 0
) -> list[list[str]]:
    """Token lists of a text file (one sentence per line, blank lines skipped) or CoNLL file."""
    if format not in TEXT_FORMATS:
        raise TaggerError(f"unknown format {format!r}: choose one of {', '.join(TEXT_FORMATS)}")
    path = Path(path)
    fmt = detect_text_format(path, encoding) if format == "auto" else format
    if fmt == "text":
        with open_binary(path) as fh:
            out = [t.tokens for t in read_token_lines(fh, str(path), encoding) if t.tokens]
        if not out:
            raise _nothing_read(path)
        return out
    corpus = read_corpus(path, fmt, token_column=token_column, label_column=None, encoding=encoding,
                         require_labels=False)
    return [s.tokens for s in corpus.sentences]


def read_texts(paths: Sequence[str | Path], format: str = "auto", encoding: str = "utf-8",
               token_column: int = 0) -> list[list[str]]:
    """Token lists of several files (see :func:`read_sentences`), in order."""
    out: list[list[str]] = []
    for p in paths:
        out.extend(read_sentences(p, format, encoding, token_column))
    return out
