"""Gold data for ``tagger evaluate``: reading a corpus file or a prepared split, format options, schemes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tagger import schemes
from tagger.errors import InputError, TaggerError
from tagger.prepared import load_split

FORMAT_KEYS = ("format", "token_column", "label_column", "label_field", "encoding")
FORMAT_DEFAULTS = {"format": "auto", "token_column": 0, "label_column": -1, "label_field": "upos", "encoding": "utf-8"}


@dataclass
class Gold:
    """Gold sentences with where they came from."""

    tokens: list[list[str]]
    labels: list[list[str]]
    lines: list[int]  # first line of each sentence in ``source`` (0 if unknown)
    source: str  # the file that ``lines`` refer to
    description: str  # what the user asked for (file, or prepared dir and split)
    split: str | None
    format: str
    scheme: str | None  # known label scheme (prepared directories); None: detect
    exact_lines: bool  # token j of a sentence is on line ``lines[i] + j``
    features: list[list[list[str]]] | None = None  # each sentence's feature columns (models that read them)
    docs: list[int] | None = None  # each sentence's document (sentences of a document are consecutive)

    def line_of(self, sent: int, tok: int) -> int | None:
        """Source line of token ``tok`` of sentence ``sent`` (of the sentence where tokens share a line)."""
        line = self.lines[sent]
        if not line:
            return None
        return line + tok if self.exact_lines else line


def parse_data_arg(data: str | os.PathLike) -> tuple[Path, str | None]:
    """``FILE`` → (file, None); ``DIR`` → (dir, "test"); ``DIR:split`` → (dir, split)."""
    text = str(data)
    path = Path(text)
    if path.is_dir():
        return path, "test"
    if path.exists() or ":" not in text:
        return path, None
    base, split = text.rsplit(":", 1)
    if base and Path(base).is_dir():
        if not split:
            raise TaggerError(f"{text}: empty split name after ':' (use DIR:train, DIR:dev or DIR:test)")
        return Path(base), split
    if base and Path(base).is_file():
        raise TaggerError(f"{text}: a ':split' suffix needs a prepared directory, but {base} is a file")
    return path, None


def read_gold(data: str | os.PathLike, fmt: dict, features: list[str] | None = None) -> Gold:
    """Read gold data: a corpus file (with the format options ``fmt``) or a prepared split; with
    the feature columns ``features`` (as the model names them) when the model reads any."""
    path, split = parse_data_arg(data)
    if split is not None:
        return _read_prepared(path, split, features or [])
    from tagger.formats.read import read_corpus

    label_column = fmt["label_column"]
    if not isinstance(label_column, int):
        try:
            label_column = int(label_column)
        except (TypeError, ValueError):
            raise TaggerError(
                f"--label-column must be a column number for corpus files, got {label_column!r}") from None
    corpus = read_corpus(path, fmt["format"], int(fmt["token_column"]), label_column,
                         fmt["label_field"] or "upos", fmt["encoding"] or "utf-8", features=features or ())
    sents = corpus.sentences
    return Gold(
        tokens=[s.tokens for s in sents], labels=[s.labels or [] for s in sents], lines=[s.line for s in sents],
        source=str(path), description=str(path), split=None, format=corpus.format, scheme=None,
        exact_lines=corpus.format == "conll", features=[s.features or [] for s in sents] if features else None,
        docs=[s.doc for s in sents],
    )


def _read_prepared(path: Path, split: str, features: list[str]) -> Gold:
    """One split of a prepared directory (without loading its embedding matrices)."""
    manifest, d = load_split(path, split)
    have = [str(n) for n in manifest.get("options", {}).get("feature_columns") or []]
    if features and have != features:
        raise TaggerError(f"{path}: the model reads the feature column(s) {', '.join(features)}, "
                          f"this prepared directory has {', '.join(have) or 'none'}")
    names = ("tokens", "labels", "line", "doc", *(["features"] if features else []))
    cols = d.select_columns([c for c in names if c in d.column_names]).to_dict()
    n = len(cols["tokens"])
    info = (manifest.get("splits") or {}).get(split) or {}
    task = manifest.get("task")
    return Gold(
        tokens=[list(t) for t in cols["tokens"]], labels=[list(labs) for labs in cols["labels"]],
        lines=[int(x) for x in cols.get("line", [0] * n)], source=str(info.get("source") or f"{path}:{split}"),
        description=f"{path}:{split}", split=split, format="prepared",
        scheme=manifest.get("scheme") if task == "entity" and manifest.get("scheme") in schemes.SCHEMES else None,
        exact_lines=manifest.get("format") == "conll",
        features=[list(f) for f in cols["features"]] if features else None,
        docs=[int(x) for x in cols["doc"]] if "doc" in cols else None,
    )


def model_input(gold: Gold, context: int) -> list:
    """The gold sentences as the model reads them: with their feature values, and with up to
    ``context`` tokens of document context on each side when the model reads any."""
    from tagger.context import with_context
    from tagger.prediction import SentenceTokens

    if gold.features is None and not context:
        return gold.tokens
    sents: list = gold.tokens if gold.features is None else [
        SentenceTokens(t, f) for t, f in zip(gold.tokens, gold.features, strict=True)]
    if not context:
        return sents
    return with_context(sents, gold.docs or [0] * len(sents), context)


def resolve_format(config: dict, overrides: dict) -> dict:
    """Format options: the model's training data options, then ``overrides`` (not None) on top."""
    unknown = sorted(set(overrides) - set(FORMAT_KEYS))
    if unknown:
        raise TypeError(f"unknown format option(s): {', '.join(unknown)} (expected {', '.join(FORMAT_KEYS)})")
    fmt = dict(FORMAT_DEFAULTS)
    data = config.get("data")
    if not isinstance(data, dict):
        data = {}
    for k in FORMAT_KEYS:
        if data.get(k) is not None:
            fmt[k] = data[k]
    if not isinstance(fmt["label_column"], int):  # a datasets field name: files use the last column
        fmt["label_column"] = FORMAT_DEFAULTS["label_column"]
    for k, v in overrides.items():
        if v is not None:
            fmt[k] = v
    return fmt


def gold_in_model_scheme(gold: Gold, task: str, model_scheme: str) -> tuple[list[list[str]], str, int]:
    """Gold labels converted to the model's scheme: (labels, detected gold scheme, repairs)."""
    if task != "entity":
        return gold.labels, schemes.detect_scheme(gold.labels), 0
    detected = gold.scheme or schemes.detect_scheme(gold.labels)
    if detected == "plain":
        for i, labs in enumerate(gold.labels):
            for j, lab in enumerate(labs):
                if not schemes.is_entity_tag(lab):
                    raise InputError(
                        gold.source, gold.line_of(i, j),
                        f"gold label {lab!r} is not an entity tag, but the model tags entities ({model_scheme}); "
                        "choose the entity column with --label-column",
                    )
        detected = model_scheme  # only O
    out: list[list[str]] = []
    repairs = 0
    for i, labs in enumerate(gold.labels):
        try:
            conv, n = schemes.convert(labs, detected, model_scheme)
        except schemes.SchemeError as exc:
            raise InputError(gold.source, gold.line_of(i, 0), f"bad gold tags in this sentence: {exc}") from None
        out.append(conv)
        repairs += n
    return out, detected, repairs
