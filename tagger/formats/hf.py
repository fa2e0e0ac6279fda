"""HuggingFace ``datasets``: hub names, ``save_to_disk`` directories and local data files as corpora."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tagger.errors import InputError, TaggerError
from tagger.formats.conll import DOCSTART
from tagger.formats.corpus import Corpus, Sentence

HF_SPLITS = {"train": ("train",), "dev": ("validation", "dev", "valid"), "test": ("test",)}


def load_hf_dataset(
    name: str,
    config: str | None = None,
    tokens_field: str | None = None,
    label_field: str | None = None,
    data_dir: str | None = None,
    feature_fields: Sequence[str] = (),
) -> dict[str, Corpus]:
    """Load a HuggingFace ``datasets`` dataset into corpora keyed ``train``/``dev``/``test``.

    ``name`` is a hub name (e.g. ``conll2003``), a directory written by ``save_to_disk``, or a
    local data file / directory of ``.parquet``/``.json``/``.jsonl``/``.csv`` files.
    ``ClassLabel`` ids are mapped back to their tag strings (of the labels and of the
    ``feature_fields``, per-token sequences read as feature columns).
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
        out[split] = _corpus_from_hf(ds[key], f"{name}[{key}]", tokens_field, label_field, feature_fields)
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


def _class_names(ds, column: str) -> list[str] | None:
    """The names of a sequence-of-``ClassLabel`` column (``None`` for any other column)."""
    import datasets

    inner = getattr(ds.features[column], "feature", None)
    return inner.names if isinstance(inner, datasets.ClassLabel) else None


def _strings(raw, names: list[str] | None, n: int, what: str, source: str, row: int) -> list[str]:
    """One row's per-token values of a column as strings (``ClassLabel`` ids by their names);
    ``what`` names a value in errors (``label``, ``'pos'``)."""
    if not isinstance(raw, (list, tuple)):
        raise InputError(source, row, f"{what} values must be a list (one entry per token)")
    if len(raw) != n:
        raise InputError(source, row, f"{n} tokens but {len(raw)} {'labels' if what == 'label' else what + ' values'}")
    if names is None:
        return [str(x) for x in raw]
    try:
        return [names[int(x)] for x in raw]
    except (IndexError, ValueError, TypeError):
        raise InputError(source, row, f"{what} id out of range of {names}") from None


def _corpus_from_hf(ds, source: str, tokens_field: str | None, label_field: str | None,
                    feature_fields: Sequence[str] = ()) -> Corpus:
    cols = list(ds.column_names)
    tcol = _pick(cols, tokens_field, ("tokens", "words", "token"), "tokens", source)
    lcol = _pick(
        cols, label_field, ("ner_tags", "tags", "labels", "upos", "pos_tags", "chunk_tags", "ner"),
        "label", source,
    )
    for f in feature_fields:
        _pick(cols, f, (), "feature", source)
        if f in (tcol, lcol):
            raise TaggerError(f"{source}: feature field {f!r} is the {'token' if f == tcol else 'label'} field")
    names = _class_names(ds, lcol)
    feature_names = [_class_names(ds, f) for f in feature_fields]
    doc_col = next((c for c in ("document_id", "doc_id", "doc") if c in cols), None)
    sentences: list[Sentence] = []
    last_doc = None
    doc = -1
    for i, row in enumerate(ds):
        if not isinstance(row[tcol], (list, tuple)) or not isinstance(row[lcol], (list, tuple)):
            raise InputError(source, i + 1, f"{tcol!r} and {lcol!r} must be lists (one entry per token)")
        tokens = [str(t) for t in row[tcol]]
        labels = _strings(row[lcol], names, len(tokens), "label", source, i + 1)
        features = [_strings(row[f], fn, len(tokens), repr(f), source, i + 1)
                    for f, fn in zip(feature_fields, feature_names, strict=True)]
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
        sentences.append(Sentence(tokens, labels, max(doc, 0), i + 1, features if feature_fields else None))
    if not sentences:
        raise InputError(source, None, "no sentences found")
    return Corpus(sentences, source, "datasets", len({s.doc for s in sentences}))
