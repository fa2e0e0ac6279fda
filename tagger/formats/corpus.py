"""Corpus readers: CoNLL column files, CoNLL-U and HuggingFace ``datasets``.

Every reader yields :class:`Sentence` objects that remember their document index and the
1-based line number they started on, so later stages can point at the source of a problem.
Bad input raises :class:`tagger.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tagger.errors import InputError, TaggerError

DOCSTART = "-DOCSTART-"
FORMATS = ("auto", "conll", "conllu")
CONLLU_FIELDS = {"upos": 3, "xpos": 4}


@dataclass
class Sentence:
    """One sentence: tokens, optional labels, its document index and first line number."""

    tokens: list[str]
    labels: list[str] | None = None
    doc: int = 0
    line: int = 0
    columns: list[list[str]] | None = field(default=None, repr=False)


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


# --------------------------------------------------------------------------- lines


def iter_lines(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with universal newlines (``\\n``, ``\\r\\n``, lone ``\\r``).

    Decoding is strict and per line, so an undecodable byte is reported with its line number.
    A leading byte-order mark is dropped. Reading streams: memory does not grow with file size.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, None, "is a directory, expected a file") from None
    except PermissionError:
        raise InputError(path, None, "permission denied") from None
    try:
        "".encode(encoding)
    except LookupError:
        fh.close()
        raise TaggerError(f"unknown encoding {encoding!r}") from None
    lineno = 0
    first = True
    with fh:
        for raw in fh:
            # A lone '\r' is a line break too (old Mac files); '\r\n' is one break.
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            for part in raw.split(b"\r") if b"\r" in raw else (raw,):
                lineno += 1
                try:
                    text = part.decode(encoding)
                except UnicodeDecodeError as exc:
                    raise InputError(
                        path, lineno, f"cannot decode byte {part[exc.start:exc.start + 1]!r} "
                        f"at column {exc.start + 1} as {encoding} (use --encoding)"
                    ) from None
                if first:
                    text = text.lstrip("\ufeff")
                    first = False
                if "\x00" in text:
                    raise InputError(path, lineno, "NUL byte in line (binary file?)")
                yield lineno, text


# --------------------------------------------------------------------------- CoNLL

#: A column: columns are separated by ASCII spaces and tabs only, as ``tagger annotate`` reads them,
#: so a token may contain U+00A0, U+2028, U+3000 or other Unicode spaces.
_COLUMN = re.compile(r"[^ \t\x0b\x0c]+")


def iter_conll(
    path: str | os.PathLike,
    token_column: int = 0,
    label_column: int | None = -1,
    encoding: str = "utf-8",
    keep_columns: bool = False,
) -> Iterator[Sentence]:
    """Stream sentences from a CoNLL column file.

    Columns are separated by spaces or tabs. ``-DOCSTART-`` lines start a new document and
    are neither sentences nor tokens. ``label_column=None`` reads tokens only.
    """
    ncols: int | None = None
    ncols_line = 0
    doc = 0
    doc_has_sentences = False
    tokens: list[str] = []
    labels: list[str] = []
    rows: list[list[str]] = []
    start = 0

    def flush() -> Sentence:
        return Sentence(
            tokens=list(tokens),
            labels=list(labels) if label_column is not None else None,
            doc=doc,
            line=start,
            columns=[list(r) for r in rows] if keep_columns else None,
        )

    for lineno, text in iter_lines(path, encoding):
        cols = _COLUMN.findall(text)
        if not cols:
            if tokens:
                yield flush()
                doc_has_sentences = True
                tokens.clear(), labels.clear(), rows.clear()
            continue
        if cols[0] == DOCSTART:
            if tokens:
                yield flush()
                doc_has_sentences = True
                tokens.clear(), labels.clear(), rows.clear()
            if doc_has_sentences:
                doc += 1
                doc_has_sentences = False
            continue
        if ncols is None:
            ncols, ncols_line = len(cols), lineno
            for name, col in (("token", token_column), ("label", label_column)):
                if col is not None and not -ncols <= col < ncols:
                    what = "missing label column" if name == "label" else "missing token column"
                    raise InputError(
                        path, lineno,
                        f"{what}: --{name}-column {col} but the line has {ncols} column(s)",
                    )
            if label_column is not None and ncols < 2:
                raise InputError(path, lineno, "missing label column: the line has only 1 column")
        elif len(cols) != ncols:
            raise InputError(
                path, lineno,
                f"expected {ncols} columns (as on line {ncols_line}) but found {len(cols)}",
            )
        if not tokens:
            start = lineno
        tokens.append(cols[token_column])
        if label_column is not None:
            labels.append(cols[label_column])
        if keep_columns:
            rows.append(cols)
    if tokens:
        yield flush()


# --------------------------------------------------------------------------- CoNLL-U

_CONLLU_ID = re.compile(r"[0-9]+")
# multiword ranges (3-4) and empty nodes (5.1); annotate's byte-level reader compiles the same pattern
CONLLU_SKIP_PATTERN = r"[0-9]+-[0-9]+|[0-9]+\.[0-9]+"
_CONLLU_SKIP = re.compile(CONLLU_SKIP_PATTERN)


def iter_conllu(
    path: str | os.PathLike,
    label_field: str | None = "upos",
    encoding: str = "utf-8",
) -> Iterator[Sentence]:
    """Stream sentences from a CoNLL-U file.

    Comment lines, multiword-token ranges (``3-4``) and empty nodes (``5.1``) are skipped.
    ``# newdoc`` comments start a new document.
    """
    if label_field is not None and label_field not in CONLLU_FIELDS:
        raise TaggerError(
            f"unknown --label-field {label_field!r}: choose one of {', '.join(CONLLU_FIELDS)}"
        )
    col = CONLLU_FIELDS.get(label_field or "", None)
    doc = 0
    doc_has_sentences = False
    tokens: list[str] = []
    labels: list[str] = []
    start = 0
    for lineno, text in iter_lines(path, encoding):
        if not text.strip():
            if tokens:
                yield Sentence(list(tokens), list(labels) if col is not None else None, doc, start)
                doc_has_sentences = True
                tokens.clear(), labels.clear()
            continue
        if text.startswith("#"):
            if text.startswith("# newdoc") and doc_has_sentences and not tokens:
                doc += 1
                doc_has_sentences = False
            continue
        cols = text.split("\t")
        if len(cols) != 10:
            raise InputError(
                path, lineno,
                f"expected 10 tab-separated CoNLL-U fields but found {len(cols)}",
            )
        ident = cols[0]
        if _CONLLU_SKIP.fullmatch(ident):
            continue  # a multiword-token range or an empty node
        if not _CONLLU_ID.fullmatch(ident):
            raise InputError(path, lineno, f"bad token ID {ident!r}")
        if not tokens:
            start = lineno
        tokens.append(cols[1])
        if col is not None:
            value = cols[col]
            if value == "_" or not value:
                raise InputError(path, lineno, f"no {label_field} value in this token line")
            labels.append(value)
    if tokens:
        yield Sentence(list(tokens), list(labels) if col is not None else None, doc, start)


# --------------------------------------------------------------------------- detection


def detect_format(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Guess ``conll`` or ``conllu`` from the extension, else from the first token lines."""
    suffix = Path(path).suffix.lower()
    if suffix == ".conllu":
        return "conllu"
    seen = 0
    for _, text in iter_lines(path, encoding):
        if not text.strip():
            continue
        if text.startswith("#"):
            if text.startswith(("# sent_id", "# text", "# newdoc", "# newpar")):
                return "conllu"
            continue
        cols = text.split("\t")
        if len(cols) == 10 and (cols[0].isdigit() or "-" in cols[0] or "." in cols[0]):
            seen += 1
            if seen >= 3:
                return "conllu"
            continue
        return "conll"
    return "conllu" if seen else "conll"


def read_corpus(
    path: str | os.PathLike,
    format: str = "auto",
    token_column: int = 0,
    label_column: int | None = -1,
    label_field: str | None = "upos",
    encoding: str = "utf-8",
    require_labels: bool = True,
) -> Corpus:
    """Read a whole corpus file; errors for empty files or files without sentences."""
    if format not in FORMATS:
        raise TaggerError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    fmt = detect_format(path, encoding) if format == "auto" else format
    if fmt == "conll":
        it: Iterable[Sentence] = iter_conll(
            path, token_column, label_column if require_labels else None, encoding
        )
    else:
        it = iter_conllu(path, label_field if require_labels else None, encoding)
    sentences = list(it)
    if not sentences:
        if path.stat().st_size == 0:
            raise InputError(path, None, "file is empty")
        raise InputError(path, None, "no sentences found")
    return Corpus(sentences, str(path), fmt, len({s.doc for s in sentences}))


# --------------------------------------------------------------------------- datasets


HF_SPLITS = {"train": ("train",), "dev": ("validation", "dev", "valid"), "test": ("test",)}


def load_hf_dataset(
    name: str,
    config: str | None = None,
    tokens_field: str | None = None,
    label_field: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Corpus]:
    """Load a HuggingFace ``datasets`` dataset into corpora keyed ``train``/``dev``/``test``.

    ``name`` is a hub name (e.g. ``conll2003``), a directory written by ``save_to_disk``, or a
    local data file / directory of ``.parquet``/``.json``/``.jsonl``/``.csv`` files.
    ``ClassLabel`` ids are mapped back to their tag strings.
    """
    import datasets

    local = Path(name)
    try:
        if local.is_dir() and (
            (local / "dataset_dict.json").exists() or (local / "dataset_info.json").exists()
        ):
            ds = datasets.load_from_disk(str(local))
        elif local.is_file():
            kind = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}.get(
                local.suffix.lower()
            )
            if kind is None:
                raise TaggerError(f"{name}: unsupported data file type {local.suffix!r}")
            ds = datasets.load_dataset(kind, data_files={"train": str(local)})
        else:
            ds = datasets.load_dataset(name, config, data_dir=data_dir)
    except TaggerError:
        raise
    except FileNotFoundError as exc:
        raise TaggerError(f"dataset {name!r} not found: {exc}") from None
    except Exception as exc:  # network failures, unknown names, bad files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaggerError(f"cannot load dataset {name!r}: {msg}") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    out: dict[str, Corpus] = {}
    for split, aliases in HF_SPLITS.items():
        key = next((a for a in aliases if a in ds), None)
        if key is None:
            continue
        out[split] = _corpus_from_hf(ds[key], f"{name}[{key}]", tokens_field, label_field)
    if "train" not in out:
        raise TaggerError(f"dataset {name!r} has no train split (splits: {', '.join(ds)})")
    return out


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, src: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise TaggerError(f"{src}: no {what} column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise TaggerError(
        f"{src}: cannot find a {what} column (columns: {', '.join(columns)}); "
        f"name it with --{'tokens-field' if what == 'tokens' else 'label-column'}"
    )


def _corpus_from_hf(ds, source: str, tokens_field: str | None, label_field: str | None) -> Corpus:
    import datasets

    cols = list(ds.column_names)
    tcol = _pick(cols, tokens_field, ("tokens", "words", "token"), "tokens", source)
    lcol = _pick(
        cols, label_field, ("ner_tags", "tags", "labels", "upos", "pos_tags", "chunk_tags", "ner"),
        "label", source,
    )
    feat = ds.features[lcol]
    inner = getattr(feat, "feature", None)
    names = inner.names if isinstance(inner, datasets.ClassLabel) else None
    doc_col = next((c for c in ("document_id", "doc_id", "doc") if c in cols), None)
    sentences: list[Sentence] = []
    last_doc = None
    doc = -1
    for i, row in enumerate(ds):
        if not isinstance(row[tcol], (list, tuple)) or not isinstance(row[lcol], (list, tuple)):
            raise InputError(source, i + 1, f"{tcol!r} and {lcol!r} must be lists (one entry per token)")
        tokens = [str(t) for t in row[tcol]]
        raw = row[lcol]
        if len(raw) != len(tokens):
            raise InputError(source, i + 1, f"{len(tokens)} tokens but {len(raw)} labels")
        if names is not None:
            try:
                labels = [names[int(x)] for x in raw]
            except (IndexError, ValueError, TypeError):
                raise InputError(source, i + 1, f"label id out of range of {names}") from None
        else:
            labels = [str(x) for x in raw]
        if not tokens:
            continue  # hub datasets keep -DOCSTART- rows as empty examples: document breaks
        if doc_col is not None:
            if row[doc_col] != last_doc:
                doc += 1
                last_doc = row[doc_col]
        elif doc < 0:
            doc = 0
        if tokens[0] == DOCSTART:
            doc += 1
            continue
        sentences.append(Sentence(tokens, labels, max(doc, 0), i + 1))
    if not sentences:
        raise InputError(source, None, "no sentences found")
    return Corpus(sentences, source, "datasets", len({s.doc for s in sentences}))
