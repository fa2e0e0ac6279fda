"""Labelled text examples for sentence classification: TSV, CSV, JSON lines and label files.

Inputs: ``text<TAB>label`` files, CSV with a ``text,label`` header, JSON lines
(``{"text": ..., "label": ...}``) and one-file-per-label line files (``LABEL=FILE``).
Bad lines raise :class:`~tagger.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tagger.errors import InputError, TaggerError
from tagger.formats.detect import detect_format
from tagger.formats.jsonl import parse_object
from tagger.formats.lines import iter_lines

FORMATS = ("auto", "tsv", "csv", "jsonl", "lines")


@dataclass
class Example:
    """One text with its (optional) label and where it came from."""

    text: str
    label: str | None
    source: str
    line: int
    id: object = None


def _label_value(value, path, line) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        label = str(value).strip()
        if label:
            return label
    raise InputError(path, line, f"label must be a non-empty string or an integer, got {value!r}")


def _read_jsonl(path: Path, encoding: str, need_label: bool) -> Iterator[Example]:
    for lineno, text in iter_lines(path, encoding):
        if not text.strip():
            continue
        try:
            rec = parse_object(text)
            if "\\u" in text:  # an escaped unpaired surrogate (\ud800) cannot be written back as UTF-8
                json.dumps(rec, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(path, lineno, "invalid JSON (an unpaired surrogate escape)") from None
        except ValueError as exc:
            raise InputError(path, lineno, str(exc)) from None
        t = rec.get("text")
        if not isinstance(t, str):
            raise InputError(path, lineno, 'missing or non-string "text" field')
        label = rec.get("label")
        if label is None:
            if need_label:
                raise InputError(path, lineno, 'missing "label" field')
        else:
            label = _label_value(label, path, lineno)
        yield Example(t, label, str(path), lineno, rec.get("id"))


def _read_tsv(path: Path, encoding: str, need_label: bool) -> Iterator[Example]:
    first = True
    for lineno, text in iter_lines(path, encoding):
        if not text.strip():
            if not need_label:  # prediction input: keep every line, blank ones too
                yield Example("", None, str(path), lineno)
            continue
        if first and text.strip().lower().split("\t") == ["text", "label"]:
            first = False
            continue  # header
        first = False
        if "\t" not in text:
            if need_label:
                raise InputError(path, lineno, "expected text<TAB>label (no tab in the line)")
            yield Example(text, None, str(path), lineno)
            continue
        t, raw_label = text.rsplit("\t", 1)
        label: str | None = raw_label.strip()
        if not label:
            if need_label:
                raise InputError(path, lineno, "empty label after the tab")
            label = None
        if need_label and not t.strip():
            raise InputError(path, lineno, "empty text before the tab")
        yield Example(t, label, str(path), lineno)


def _read_lines(path: Path, encoding: str, label: str | None) -> Iterator[Example]:
    """One text per line; in labelled mode (a label file) blank lines are skipped."""
    for lineno, text in iter_lines(path, encoding):
        if label is not None and not text.strip():
            continue
        yield Example(text, label, str(path), lineno)


def _read_csv(path: Path, encoding: str, need_label: bool) -> Iterator[Example]:
    starts: list[int] = []

    def lines() -> Iterator[str]:
        for lineno, text in iter_lines(path, encoding):
            starts.append(lineno)
            yield text + "\n"  # csv needs the line ends to keep newlines inside quoted fields

    reader = csv.reader(lines())
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip().lower() for h in header]
        if "text" not in names or (need_label and "label" not in names):
            want = "text,label" if need_label else "text"
            raise InputError(path, 1, f"CSV needs a header naming the columns {want} (found: {','.join(header)})")
        ti = names.index("text")
        li = names.index("label") if "label" in names else None
        ii = names.index("id") if "id" in names else None
        while True:
            start = len(starts) + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            lineno = starts[start - 1] if start - 1 < len(starts) else starts[-1]
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise InputError(path, lineno, f"expected {len(header)} CSV fields (as in the header) but found "
                                               f"{len(row)}")
            label = row[li].strip() if li is not None else None
            if need_label and not label:
                raise InputError(path, lineno, "empty label")
            yield Example(row[ti], label or None, str(path), lineno, row[ii] if ii is not None else None)
    except csv.Error as exc:
        raise InputError(path, starts[-1] if starts else None, f"bad CSV: {exc}") from None


def read_examples(
    path: str | Path, format: str = "auto", encoding: str = "utf-8", need_label: bool = True
) -> list[Example]:
    """Read a labelled (``need_label``) or unlabelled data file."""
    if format not in FORMATS:
        raise TaggerError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    fmt = detect_format(path, ("jsonl", "csv", "tsv", "lines"), encoding) if format == "auto" else format
    if fmt == "jsonl":
        it: Iterable[Example] = _read_jsonl(path, encoding, need_label)
    elif fmt == "csv":
        it = _read_csv(path, encoding, need_label)
    elif fmt == "tsv":
        it = _read_tsv(path, encoding, need_label)
    else:
        if need_label:
            raise InputError(path, None, "a plain line file has no labels: use text<TAB>label, CSV, JSONL "
                             "or --label-file LABEL=FILE")
        it = _read_lines(path, encoding, None)
    out = list(it)
    if need_label and not out:
        raise InputError(path, None, "file is empty" if path.stat().st_size == 0 else "no examples found")
    return out


def parse_label_file(spec: str) -> tuple[str, str]:
    """``LABEL=FILE`` → ``(label, file)``."""
    label, sep, path = spec.partition("=")
    if not sep or not label.strip() or not path:
        raise TaggerError(f"--label-file {spec!r}: expected LABEL=FILE (e.g. pos=rt-polarity.pos)")
    return label.strip(), path


def read_label_files(specs: Sequence[str | tuple[str, str]], encoding: str = "utf-8") -> list[Example]:
    """One example per non-blank line of each file, labelled with the file's label."""
    out: list[Example] = []
    for spec in specs:
        label, path = parse_label_file(spec) if isinstance(spec, str) else spec
        got = list(_read_lines(Path(path), encoding, label))
        if not got:
            raise InputError(path, None, "no examples found")
        out.extend(got)
    return out


def read_data(
    files: Sequence[str | Path] = (), label_files: Sequence[str | tuple[str, str]] = (),
    format: str = "auto", encoding: str = "utf-8",
) -> list[Example]:
    """All labelled examples of data files and label files, in order."""
    out: list[Example] = []
    for f in files:
        out.extend(read_examples(f, format, encoding, need_label=True))
    out.extend(read_label_files(label_files, encoding))
    if not out:
        raise TaggerError("no training data: give --train FILE or --label-file LABEL=FILE")
    return out

