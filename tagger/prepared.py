"""Prepared directories: the dataset format ``tagger prepare`` writes and train/evaluate read.

Layout::

    dataset/                  datasets.DatasetDict (train/dev/test): tokens, labels, doc, line, features
    vocab.json                word/char/label/feature vocabularies and the word-key settings
    extra_words.json          pretrained words never seen in training (usable at prediction)
    embeddings.safetensors    "words" (trained vocab × dim) and "extra" (extra words × dim)
    prepare.json              manifest: options, input hashes, per-split statistics

Loading refuses anything that is not a regular file or directory where one is expected (a FIFO
would block the read) and turns every kind of damage into a :class:`~tagger.errors.TaggerError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tagger.errors import TaggerError
from tagger.formats.corpus import Corpus
from tagger.vocab import Vocab, WordLookup

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "dev", "test")
MANIFEST = "prepare.json"
VOCAB = "vocab.json"
EXTRA_WORDS = "extra_words.json"
EMBEDDINGS = "embeddings.safetensors"
DATASET = "dataset"


@dataclass
class Prepared:
    """A prepared directory's contents: datasets, vocabularies, embedding matrices."""

    path: Path  # where the directory lives (or will once written)
    manifest: dict
    dataset: datasets.DatasetDict
    words: Vocab
    chars: Vocab
    labels: Vocab  # id 0 is the padding label "<pad>"
    extra: list[str]  # pretrained words never seen in training
    matrix: np.ndarray  # trained vocabulary × dim
    extra_matrix: np.ndarray  # extra words × dim
    lowercase: bool
    digits: bool
    task: str  # "entity" or "plain"
    scheme: str
    feature_names: list[str] = field(default_factory=list)  # the feature columns, as prepare was given them
    features: list[Vocab] = field(default_factory=list)  # a vocabulary per feature column

    def lookup(self) -> WordLookup:
        """Token → word id, with the word-key settings the vocabulary was built with."""
        return WordLookup(self.words, self.extra, lowercase=self.lowercase, digits=self.digits)

    def sentences(self, split: str) -> tuple[list[list[str]], list[list[str]]]:
        """(tokens, labels) of every sentence of ``split``."""
        d = _split(self.dataset, self.path, split)
        return d["tokens"], d["labels"]

    def documents(self, split: str) -> list[int]:
        """The document id of each sentence of ``split`` (sentences of a document are consecutive)."""
        d = _split(self.dataset, self.path, split)
        return [int(x) for x in d["doc"]] if "doc" in d.column_names else [0] * len(d)

    def feature_values(self, split: str) -> list[list[list[str]]] | None:
        """Each sentence's feature columns (one list of values per column), ``None`` without features."""
        if not self.feature_names:
            return None
        return _split(self.dataset, self.path, split)["features"]


def corpora_dataset(corpora: Mapping[str, Corpus]) -> datasets.DatasetDict:
    """The labelled splits as the ``dataset/`` of a prepared directory."""
    import datasets

    datasets.disable_progress_bars()
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "labels": datasets.Sequence(datasets.Value("string")),
            "doc": datasets.Value("int32"),
            "line": datasets.Value("int32"),
            "features": datasets.Sequence(datasets.Sequence(datasets.Value("string"))),
        }
    )
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict(
                {
                    "tokens": [s.tokens for s in c.sentences],
                    "labels": [s.labels for s in c.sentences],
                    "doc": [s.doc for s in c.sentences],
                    "line": [s.line for s in c.sentences],
                    "features": [s.features or [] for s in c.sentences],
                },
                features=features,
            )
            for name, c in corpora.items()
        }
    )


def save_prepared(dest: Path, prep: Prepared) -> None:
    """Write ``prep`` into the (empty, usually temporary) directory ``dest``."""
    from safetensors.numpy import save_file

    prep.dataset.save_to_disk(str(dest / DATASET))
    vocab = {
        "words": prep.words.to_json(),
        "chars": prep.chars.to_json(),
        "labels": prep.labels.to_json(),
        "lowercase": prep.lowercase,
        "digits": prep.digits,
        "task": prep.task,
        "scheme": prep.scheme,
        "features": [{"name": n, "vocab": v.to_json()} for n, v in zip(prep.feature_names, prep.features, strict=True)],
    }
    (dest / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False))
    (dest / EXTRA_WORDS).write_text(json.dumps(prep.extra, ensure_ascii=False))
    save_file(
        {"words": np.ascontiguousarray(prep.matrix), "extra": np.ascontiguousarray(prep.extra_matrix)},
        str(dest / EMBEDDINGS),
    )
    (dest / MANIFEST).write_text(json.dumps(prep.manifest, indent=2, ensure_ascii=False) + "\n")


def load_prepared(path: str | Path) -> Prepared:
    """Load a whole prepared directory (written by ``tagger prepare``)."""
    from safetensors.numpy import load_file

    path = Path(path)
    _check_entries(path, [MANIFEST, VOCAB, EXTRA_WORDS, EMBEDDINGS])
    manifest = _read_manifest(path)
    try:
        vocab = json.loads((path / VOCAB).read_text())
        extra = json.loads((path / EXTRA_WORDS).read_text())
        tensors = load_file(str(path / EMBEDDINGS))
        return Prepared(
            path=path, manifest=manifest, dataset=_read_dataset(path),
            words=Vocab.from_json(vocab["words"]), chars=Vocab.from_json(vocab["chars"]),
            labels=Vocab.from_json(vocab["labels"]), extra=[str(w) for w in extra],
            matrix=tensors["words"], extra_matrix=tensors["extra"],
            lowercase=bool(vocab["lowercase"]), digits=bool(vocab["digits"]),
            task=vocab["task"], scheme=vocab["scheme"],
            feature_names=[str(f["name"]) for f in vocab.get("features", [])],
            features=[Vocab.from_json(f["vocab"]) for f in vocab.get("features", [])],
        )
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as exc:
        raise TaggerError(f"{path}: corrupt prepared directory ({type(exc).__name__}: {exc})") from None


def load_split(path: str | Path, split: str) -> tuple[dict, datasets.Dataset]:
    """(manifest, one split's dataset) of a prepared directory, without its vocabularies and embeddings."""
    path = Path(path)
    _check_entries(path, [MANIFEST])
    manifest = _read_manifest(path)
    return manifest, _split(_read_dataset(path), path, split)


def _check_entries(path: Path, files: list[str]) -> None:
    """Refuse a directory without ``files`` and ``dataset/``, or with something else under their names."""
    missing = [n for n in [*files, DATASET] if not (path / n).exists()]
    if missing:
        raise TaggerError(f"{path}: not a prepared directory (missing {', '.join(missing)}); run tagger prepare")
    # (a FIFO or device named like a prepared file would block or never end a read)
    odd = [n for n in files if not (path / n).is_file()] + ([] if (path / DATASET).is_dir() else [DATASET])
    if odd:
        raise TaggerError(f"{path}: corrupt prepared directory ({', '.join(odd)}: not a regular file or directory)")


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise TaggerError(f"{path}: corrupt prepared directory ({MANIFEST}: {exc})") from None
    if not isinstance(manifest, dict):
        raise TaggerError(f"{path}: corrupt prepared directory ({MANIFEST} is not a JSON object)")
    return manifest


def _read_dataset(path: Path) -> datasets.DatasetDict:
    import datasets

    try:
        dd = datasets.load_from_disk(str(path / DATASET))
    except Exception as exc:  # datasets and pyarrow raise many kinds on corrupt or foreign files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaggerError(f"{path}: corrupt prepared directory ({msg})") from None
    if not isinstance(dd, datasets.DatasetDict):
        raise TaggerError(f"{path}: corrupt prepared directory ({DATASET}/ holds no train/dev/test splits)")
    return dd


def _split(dataset: datasets.DatasetDict, path: Path, split: str) -> datasets.Dataset:
    """One split, checked to have the tokens and labels columns."""
    if split not in dataset:
        raise TaggerError(f"{path}: no {split!r} split in this prepared directory (have {', '.join(dataset)})")
    d = dataset[split]
    missing = [c for c in ("tokens", "labels") if c not in d.column_names]
    if missing:
        raise TaggerError(f"{path}: split {split!r} has no {', '.join(missing)} column")
    return d
