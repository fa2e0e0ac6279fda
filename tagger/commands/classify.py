"""Sentence classification with an LSTM: ``tagger classify train|evaluate|predict``.

Architecture: word embeddings (pretrained as in ``prepare``) → (Bi)LSTM → pooling over the
time steps (last state, masked max or masked mean) → dropout → linear. Two classes use one
logit with sigmoid + binary cross-entropy (as the classic Keras IMDB example); more classes use
softmax + cross-entropy.

Inputs: ``text<TAB>label`` files, CSV with a ``text,label`` header, JSON lines
(``{"text": ..., "label": ...}``) and one-file-per-label line files (``--label-file pos=FILE``).
Bad lines raise :class:`~tagger.errors.InputError` naming the file and line.

Model directories use the project's safe format (:mod:`tagger.modeldir`): ``config.json`` and
safetensors weights, loaded with name and shape checks and never unpickled.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tagger.modeldir import JsonConfig
from tagger import modeldir
from tagger.formats.corpus import iter_lines
from tagger.embeddings import Vectors, build_matrix, candidates, extra_words, load_vectors
from tagger.errors import InputError, ModelError, TaggerError
from tagger.fsutil import atomic_dir, atomic_write_bytes, atomic_write_json
from tagger.vocab import UNK_ID, Vocab, WordLookup, normalize_digits

KIND = "classifier"
WEIGHTS = "model.safetensors"
EXTRA_WEIGHTS = "extra_embeddings.safetensors"
EXTRA_WORDS = "extra_words.json"
FORMATS = ("auto", "tsv", "csv", "jsonl", "lines")
POOLINGS = ("last", "max", "mean")
_SUFFIX_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}

# --------------------------------------------------------------------------- tokenising

_TOKEN = re.compile(
    r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b"  # clitics: do n't, it 's
    r"|\d+(?:[.,:]\d+)+|\w(?:\.\w)+\.?"  # numbers 12.5, 1,000; abbreviations u.s.
    r"|\w+(?:-\w+)*(?:'(?!(?:s|re|ve|ll|d|m|t)\b)\w+(?:-\w+)*)*"  # words, well-made, o'brien
    r"|\S",  # any other character: punctuation
    re.IGNORECASE,
)


def tokenize(text: str) -> list[str]:
    """Split text into tokens the way GloVe's corpus was split (PTB-like clitics).

    ``it's`` → ``it 's``, ``don't`` → ``do n't``, punctuation is split off, hyphenated words
    and abbreviations (``u.s.``) stay whole. Already tokenised text passes through unchanged
    except for clitics.
    """
    return _TOKEN.findall(text)


# --------------------------------------------------------------------------- reading


@dataclass
class Example:
    """One text with its (optional) label and where it came from."""

    text: str
    label: str | None
    source: str
    line: int
    id: object = None


def detect_format(path: str | Path, encoding: str = "utf-8") -> str:
    """``tsv``/``csv``/``jsonl`` by extension, else by the first non-blank line."""
    fmt = _SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt:
        return fmt
    for _, text in iter_lines(path, encoding):
        if not text.strip():
            continue
        if text.lstrip().startswith("{"):
            return "jsonl"
        return "tsv" if "\t" in text else "lines"
    return "lines"


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
            rec = json.loads(text)
            if "\\u" in text:  # an escaped unpaired surrogate (\ud800) cannot be written back as UTF-8
                json.dumps(rec, ensure_ascii=False).encode("utf-8")
        except json.JSONDecodeError as exc:
            raise InputError(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        except (ValueError, RecursionError) as exc:  # integers of > 4300 digits, deep nesting, surrogates
            why = "an unpaired surrogate escape" if isinstance(exc, UnicodeError) else str(exc).split(";")[0]
            raise InputError(path, lineno, f"invalid JSON ({why or type(exc).__name__})") from None
        if not isinstance(rec, dict):
            raise InputError(path, lineno, 'expected a JSON object like {"text": ..., "label": ...}')
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
        t, label = text.rsplit("\t", 1)
        label = label.strip()
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
                raise InputError(path, lineno, f"expected {len(header)} CSV fields (as in the header) but found {len(row)}")
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
    fmt = detect_format(path, encoding) if format == "auto" else format
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


# --------------------------------------------------------------------------- vocabulary + vectors


@dataclass
class WordTable:
    """A trainable vocabulary with its initial matrix, plus pretrained-only extra words."""

    words: Vocab
    matrix: np.ndarray
    extra: list[str]
    extra_matrix: np.ndarray
    lowercase: bool
    digits: bool
    info: dict

    def lookup(self) -> WordLookup:
        return WordLookup(self.words, self.extra, lowercase=self.lowercase, digits=self.digits)


def build_word_table(
    sentences: Sequence[Sequence[str]], embeddings: str = "none", *, vectors: Vectors | None = None,
    lowercase: bool = True, digits: bool = True, min_count: int = 1, extend_vocab: bool = True,
    dim: int = 100, seed: int = 1,
) -> WordTable:
    """Vocabulary of ``sentences`` and its embedding matrix, as ``tagger prepare`` builds them.

    ``vectors`` (already loaded) takes precedence over the ``embeddings`` spec, so that
    cross-validation loads the pretrained file once.
    """
    lookup_key = (lambda w: normalize_digits(w)) if digits else (lambda w: w)
    key = (lambda w: lookup_key(w).lower()) if lowercase else lookup_key
    counts: Counter = Counter()
    surface_counts: dict[str, Counter] = {}
    for toks in sentences:
        for t in toks:
            k = key(t)
            counts[k] += 1
            surface_counts.setdefault(k, Counter())[t] += 1
    words = Vocab.build(counts, min_count)
    surface = {k: c.most_common(1)[0][0] for k, c in surface_counts.items()}
    if vectors is None:
        vectors = load_vectors(embeddings, sentences, dim=dim, seed=seed)
    dim = vectors.dim if vectors is not None else dim
    matrix, found = build_matrix(words, surface, vectors, dim, seed)
    if vectors is not None and extend_vocab:
        extra, extra_matrix = extra_words(vectors, key, words)
    else:
        extra, extra_matrix = [], np.zeros((0, dim), np.float32)
    info: dict = {"source": embeddings if vectors is None else vectors.source, "dim": dim,
                  "words": len(words), "extra_words": len(extra)}
    if vectors is not None:
        index = vectors.index()
        has = sum(1 for w in counts if any(c in index for c in candidates(surface.get(w, w)) + candidates(w)))
        info.update(vocab_found=found, type_coverage=has / max(1, len(counts)))
    return WordTable(words, matrix, extra, extra_matrix, lowercase, digits, info)


# --------------------------------------------------------------------------- model


@dataclass
class ClassifierConfig(JsonConfig):
    """Architecture hyper-parameters (saved in ``config.json``)."""

    num_words: int
    num_extra: int
    word_dim: int
    num_labels: int
    hidden: int = 100
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.5
    embed_dropout: float = 0.25
    word_dropout: float = 0.0
    freeze_words: bool = False

    @property
    def binary(self) -> bool:
        return self.num_labels == 2

    @property
    def num_outputs(self) -> int:
        return 1 if self.binary else self.num_labels



class LSTMClassifier(nn.Module):
    """Embeddings → (Bi)LSTM → masked pooling → dropout → linear."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        c = config
        if c.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        self.config = c
        self.word_embed = nn.Embedding(c.num_words, c.word_dim, padding_idx=0)
        self.word_embed.weight.requires_grad_(not c.freeze_words)
        self.register_buffer("extra_embed", torch.zeros(c.num_extra, c.word_dim), persistent=False)
        self.embed_dropout = nn.Dropout(c.embed_dropout)
        self.lstm = nn.LSTM(c.word_dim, c.hidden, num_layers=c.layers, bidirectional=c.bidirectional,
                            batch_first=True, dropout=c.dropout if c.layers > 1 else 0.0)
        self.dropout = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden * (2 if c.bidirectional else 1), c.num_outputs)

    def set_pretrained(self, words, extra=None) -> None:
        with torch.no_grad():
            self.word_embed.weight.copy_(torch.as_tensor(words))
            if extra is not None and self.config.num_extra:
                self.extra_embed = torch.as_tensor(extra, dtype=torch.float32).to(self.word_embed.weight.device)

    def embed(self, words: Tensor) -> Tensor:
        c = self.config
        if self.training and c.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < c.word_dropout
            words = words.masked_fill(drop & (words > 0), UNK_ID)
        if c.num_extra == 0:
            return self.word_embed(words)
        is_extra = words >= c.num_words
        w = self.word_embed(words.masked_fill(is_extra, UNK_ID))
        e = nn.functional.embedding((words - c.num_words).clamp(min=0), self.extra_embed)
        return torch.where(is_extra.unsqueeze(-1), e, w)

    def forward(self, words: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(batch, num_outputs)`` for padded word ids ``(batch, seq_len)``."""
        x = self.embed_dropout(self.embed(words))  # (batch, seq_len, word_dim)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        pooling = self.config.pooling
        if pooling == "last":
            # h: (layers * directions, batch, hidden); the last layer's forward (and backward) state.
            if self.config.bidirectional:
                pooled = torch.cat([h[-2], h[-1]], dim=-1)
            else:
                pooled = h[-1]
        else:
            seq, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
            mask = (torch.arange(words.shape[1], device=words.device)[None, :] < lengths.to(words.device)[:, None])
            mask = mask.unsqueeze(-1)  # (batch, seq_len, 1)
            if pooling == "max":
                pooled = seq.masked_fill(~mask, float("-inf")).amax(dim=1)
            else:
                pooled = (seq * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.out(self.dropout(pooled))

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities ``(batch, num_labels)``."""
        if self.config.binary:
            p = torch.sigmoid(logits.squeeze(-1))
            return torch.stack([1 - p, p], dim=-1)
        return torch.softmax(logits, dim=-1)

    def loss(self, logits: Tensor, gold: Tensor) -> Tensor:
        if self.config.binary:
            return nn.functional.binary_cross_entropy_with_logits(logits.squeeze(-1), gold.float())
        return nn.functional.cross_entropy(logits, gold)


# --------------------------------------------------------------------------- options


@dataclass
class ClassifierOptions:
    """Data, vocabulary, architecture and training options (defaults: the benchmark recipe)."""

    embeddings: str = "glove-6b-50d"
    embedding_dim: int = 100  # for --embeddings none/word2vec
    lowercase: bool = True
    digits: bool = True
    min_count: int = 1
    extend_vocab: bool = True
    hidden: int = 100
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.5
    embed_dropout: float = 0.25
    word_dropout: float = 0.0
    freeze_embeddings: bool = False
    epochs: int = 15
    batch_size: int = 32
    optimizer: str = "adam"  # adam | adamw | sgd (momentum)
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip: float = 5.0
    patience: int = 3
    dev_fraction: float = 0.1  # inner dev split for early stopping when no --dev is given
    seed: int = 1
    device: str = "auto"
    threads: int = 0
    eval_batch_size: int = 256

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.optimizer in ("adam", "adamw", "sgd"), "--optimizer must be adam, adamw or sgd"),
            (self.patience >= 1, "--patience must be at least 1"),
            (self.pooling in POOLINGS, "--pooling must be last, max or mean"),
            (self.hidden >= 1 and self.layers >= 1, "--hidden and --layers must be positive"),
            (all(0 <= d < 1 for d in (self.dropout, self.embed_dropout, self.word_dropout)), "dropout must be in [0, 1)"),
            (0 <= self.dev_fraction < 1, "--dev-fraction must be in [0, 1)"),
            (self.min_count >= 1, "--min-count must be at least 1"),
            (self.embedding_dim >= 1, "--embedding-dim must be positive"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TaggerError(msg)


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """As :func:`tagger.commands.train.make_optimizer` (sgd | adam | adamw), with fused Adam kernels.

    The fused CPU implementation is ~10x faster on the dense embedding update, which
    otherwise dominates a classifier step. Also used by :mod:`tagger.commands.generate`.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=lr, weight_decay=weight_decay)


# --------------------------------------------------------------------------- the trained classifier


class Classifier:
    """A trained model with its vocabulary and labels: encode, predict, save, load."""

    def __init__(self, model: LSTMClassifier, lookup: WordLookup, labels: list[str], config: dict) -> None:
        self.model = model
        self.lookup = lookup
        self.labels = labels
        self.config = config

    def encode(self, text: str) -> list[int]:
        ids = self.lookup.lookup(tokenize(text))
        return ids or [UNK_ID]  # an empty text still gets a prediction

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 256, device: str = "cpu") -> np.ndarray:
        """``(len(texts), num_labels)`` probabilities, in input order."""
        encoded = [self.encode(t) for t in texts]
        return _predict_encoded(self.model, encoded, batch_size, device)

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> list[tuple[str, float, np.ndarray]]:
        probs = self.predict_proba(texts, batch_size)
        best = probs.argmax(1)
        return [(self.labels[b], float(p[b]), p) for b, p in zip(best, probs)]

    def save(self, out: str | Path, force: bool = False) -> None:
        with atomic_dir(out, force=force) as tmp:
            modeldir.write_config(tmp, KIND, self.config)
            modeldir.save_tensors(tmp / WEIGHTS, self.model.state_dict())
            if self.lookup.extra:
                modeldir.save_tensors(tmp / EXTRA_WEIGHTS, {"extra": self.model.extra_embed})
                atomic_write_bytes(tmp / EXTRA_WORDS, json.dumps(self.lookup.extra, ensure_ascii=False).encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> "Classifier":
        path = Path(path)
        limits = {"num_words": 5_000_000, "num_extra": 5_000_000, "word_dim": 2048, "num_labels": 100_000,
                  "hidden": 4096, "layers": 8}
        cfg, mc, where = modeldir.read_model_section(
            path, KIND, ClassifierConfig, {k: (0 if k == "num_extra" else 1, hi) for k, hi in limits.items()})
        if mc.pooling not in POOLINGS:
            raise ModelError(f"{where}: unknown pooling {mc.pooling!r}")
        if not all(isinstance(d, (int, float)) and 0 <= d < 1 for d in (mc.dropout, mc.embed_dropout, mc.word_dropout)):
            raise ModelError(f"{where}: dropout out of range")
        v = cfg.get("vocab")
        if not isinstance(v, dict) or not all(
            isinstance(v.get(k), list) and all(isinstance(x, str) for x in v[k]) for k in ("words", "labels")
        ):
            raise ModelError(f"{where}: vocab.words and vocab.labels must be lists of strings")
        if len(v["words"]) != mc.num_words or len(v["labels"]) != mc.num_labels or mc.num_labels < 2:
            raise ModelError(f"{where}: vocabulary sizes disagree with the model section")
        # headers checked before anything is allocated (absurd sizes need a weights file that big)
        extra_header = {path / EXTRA_WEIGHTS: {"extra": ((mc.num_extra, mc.word_dim), torch.float32)}} if mc.num_extra else None
        model = modeldir.build_checked(lambda: LSTMClassifier(mc), path / WEIGHTS, extra_header)
        modeldir.load_state(model, path / WEIGHTS)
        extra: list[str] = []
        if mc.num_extra:
            extra = modeldir.read_json(path / EXTRA_WORDS, "extra word list")
            if not isinstance(extra, list) or len(extra) != mc.num_extra or not all(isinstance(x, str) for x in extra):
                raise ModelError(f"{path / EXTRA_WORDS}: expected a list of {mc.num_extra} words")
            t = modeldir.load_tensors(path / EXTRA_WEIGHTS, {"extra": (mc.num_extra, mc.word_dim)})
            if t["extra"].dtype != torch.float32 or not torch.isfinite(t["extra"]).all():
                raise ModelError(f"{path / EXTRA_WEIGHTS}: expected finite float32 values")
            model.extra_embed = t["extra"]
        model.eval()
        words = Vocab.from_json({"itos": v["words"], "specials": True})
        lookup = WordLookup(words, extra, lowercase=bool(v.get("lowercase", True)), digits=bool(v.get("digits", True)))
        return cls(model, lookup, list(v["labels"]), cfg)


def _batch(encoded: Sequence[Sequence[int]], idx: Sequence[int]) -> tuple[Tensor, Tensor]:
    lengths = [len(encoded[i]) for i in idx]
    words = torch.zeros(len(idx), max(lengths), dtype=torch.long)
    for b, i in enumerate(idx):
        words[b, : lengths[b]] = torch.as_tensor(encoded[i], dtype=torch.long)
    return words, torch.as_tensor(lengths, dtype=torch.long)


def _predict_encoded(model: LSTMClassifier, encoded: Sequence[Sequence[int]], batch_size: int,
                     device: str = "cpu") -> np.ndarray:
    model.eval()
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float64)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            words, lengths = _batch(encoded, idx)
            probs = model.probabilities(model(words.to(device), lengths))
            out[idx] = probs.double().cpu().numpy()
    return out


# --------------------------------------------------------------------------- splits


def stratified_folds(labels: Sequence[str], k: int, seed: int = 1) -> list[list[int]]:
    """``k`` disjoint index lists covering ``range(len(labels))``, each with the class mix of the data.

    Each class's indices are shuffled with ``random.Random(seed)`` and dealt round-robin,
    continuing across classes, so fold sizes differ by at most one.
    """
    if k < 2:
        raise TaggerError("--cv needs at least 2 folds")
    if k > len(labels):
        raise TaggerError(f"--cv {k}: only {len(labels)} examples")
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    pos = 0
    for lab in sorted(by_class):
        idx = by_class[lab]
        rng.shuffle(idx)
        for i in idx:
            folds[pos % k].append(i)
            pos += 1
    return [sorted(f) for f in folds]


def stratified_split(labels: Sequence[str], fraction: float, seed: int = 1) -> tuple[list[int], list[int]]:
    """Seeded stratified ``(keep, held_out)`` index split; ``held_out`` has about ``fraction``."""
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    keep: list[int] = []
    held: list[int] = []
    for lab in sorted(by_class):
        idx = by_class[lab]
        rng.shuffle(idx)
        n = int(round(len(idx) * fraction))
        if n >= len(idx):
            n = len(idx) - 1
        held.extend(idx[:n])
        keep.extend(idx[n:])
    return sorted(keep), sorted(held)


# --------------------------------------------------------------------------- training


def train_classifier(
    train: Sequence[Example],
    dev: Sequence[Example] | None,
    opts: ClassifierOptions,
    vectors: Vectors | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> tuple[Classifier, dict]:
    """Fit a classifier; early stopping on ``dev`` (or an inner stratified split of ``train``).

    Returns the classifier (weights of the best dev epoch) and a training summary.
    """
    say = log or (lambda m: None)
    opts.validate()
    device = _device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    t_start = time.perf_counter()
    train = list(train)
    if dev is None and opts.dev_fraction > 0 and len(train) >= 10:
        keep, held = stratified_split([e.label for e in train], opts.dev_fraction, opts.seed)
        dev = [train[i] for i in held]
        train = [train[i] for i in keep]
        say(f"early stopping on an inner dev split of {len(dev)} examples ({opts.dev_fraction:.0%} of train)")
    labels = sorted({e.label for e in train})  # type: ignore[type-var]
    if len(labels) < 2:
        raise TaggerError(f"training data has only one label ({labels[0] if labels else '-'}): need at least 2")
    label_id = {l: i for i, l in enumerate(labels)}

    torch.manual_seed(opts.seed)
    train_tokens = [tokenize(e.text) for e in train]
    table = build_word_table(
        train_tokens, opts.embeddings, vectors=vectors, lowercase=opts.lowercase, digits=opts.digits,
        min_count=opts.min_count, extend_vocab=opts.extend_vocab, dim=opts.embedding_dim, seed=opts.seed,
    )
    lookup = table.lookup()
    mc = ClassifierConfig(
        num_words=len(table.words), num_extra=len(table.extra), word_dim=int(table.matrix.shape[1]),
        num_labels=len(labels), hidden=opts.hidden, layers=opts.layers, bidirectional=opts.bidirectional,
        pooling=opts.pooling, dropout=opts.dropout, embed_dropout=opts.embed_dropout,
        word_dropout=opts.word_dropout, freeze_words=opts.freeze_embeddings,
    )
    model = LSTMClassifier(mc)
    model.set_pretrained(table.matrix, table.extra_matrix)
    model.to(device)
    optimizer = make_optimizer(model, opts.optimizer, opts.lr, opts.momentum, opts.weight_decay)

    enc = [lookup.lookup(t) or [UNK_ID] for t in train_tokens]
    gold = torch.as_tensor([label_id[e.label] for e in train], dtype=torch.long)  # type: ignore[index]
    dev_enc = [lookup.lookup(tokenize(e.text)) or [UNK_ID] for e in dev] if dev else []
    dev_gold = [e.label for e in dev] if dev else []
    lengths = [len(e) for e in enc]

    from tagger.commands.train import epoch_batches

    best, best_epoch, bad = -math.inf, 0, 0
    best_state = None
    history: list[dict] = []
    for epoch in range(1, opts.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        total = 0.0
        batches = epoch_batches(lengths, opts.batch_size, opts.seed, epoch)
        bar = _progress(len(enc), f"epoch {epoch}/{opts.epochs}", progress)
        for idx in batches:
            words, lens = _batch(enc, idx)
            optimizer.zero_grad(set_to_none=True)
            logits = model(words.to(device), lens)
            loss = model.loss(logits, gold[idx].to(device))
            loss.backward()
            if opts.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
            optimizer.step()
            total += loss.item() * len(idx)
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        row = {"epoch": epoch, "loss": total / len(enc)}
        if dev_enc:
            probs = _predict_encoded(model, dev_enc, opts.eval_batch_size, device)
            pred = [labels[i] for i in probs.argmax(1)]
            acc = sum(p == g for p, g in zip(pred, dev_gold)) / len(dev_gold)
            row["dev_accuracy"] = acc
            score = acc
        else:
            score = float(epoch)  # no dev: keep the last epoch
        row["seconds"] = round(time.perf_counter() - t0, 2)
        improved = score > best
        row["best"] = improved
        history.append(row)
        if improved:
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        dev_txt = f" dev accuracy {row['dev_accuracy']:.4f}" if dev_enc else ""
        say(f"epoch {epoch}: loss {row['loss']:.4f}{dev_txt} {row['seconds']:.1f}s{' *' if improved else ''}")
        if dev_enc and bad >= opts.patience:
            say(f"stopping: no improvement for {opts.patience} epochs; best epoch {best_epoch}")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.to("cpu")
    config = {
        "model": mc.to_json(),
        "vocab": {"words": table.words.itos, "labels": labels, "lowercase": table.lowercase, "digits": table.digits},
        "tokenizer": "ptb-lite",
        "embeddings": table.info,
        "training": {"options": asdict(opts), "examples": len(train), "dev_examples": len(dev or []),
                     "best_epoch": best_epoch, "best_dev_accuracy": best if dev_enc else None},
    }
    summary = {"best_epoch": best_epoch, "best_dev_accuracy": best if dev_enc else None, "epochs": len(history),
               "seconds": round(time.perf_counter() - t_start, 2), "history": history,
               "labels": labels, "embeddings": table.info}
    return Classifier(model, lookup, labels, config), summary


def _device(name: str) -> str:
    from tagger.commands.train import resolve_device

    return resolve_device(name)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ex", leave=False, dynamic_ncols=True, disable=None)


def cross_validate(
    examples: Sequence[Example],
    k: int,
    opts: ClassifierOptions,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Stratified, seeded ``k``-fold cross-validation: accuracy per fold, mean and std."""
    say = log or (lambda m: None)
    opts.validate()
    folds = stratified_folds([e.label for e in examples], k, opts.seed)  # type: ignore[misc]
    vectors = load_vectors(opts.embeddings, [tokenize(e.text) for e in examples], dim=opts.embedding_dim,
                           seed=opts.seed) if opts.embeddings != "none" else None
    t0 = time.perf_counter()
    results = []
    for f, test_idx in enumerate(folds, 1):
        test_set = set(test_idx)
        train = [e for i, e in enumerate(examples) if i not in test_set]
        test = [examples[i] for i in test_idx]
        clf, summary = train_classifier(train, None, opts, vectors=vectors, progress=progress)
        probs = clf.predict_proba([e.text for e in test], opts.eval_batch_size)
        pred = [clf.labels[i] for i in probs.argmax(1)]
        acc = sum(p == e.label for p, e in zip(pred, test)) / len(test)
        results.append({"fold": f, "train": len(train), "test": len(test), "accuracy": acc,
                        "best_epoch": summary["best_epoch"], "epochs": summary["epochs"],
                        "seconds": summary["seconds"]})
        say(f"fold {f}/{k}: accuracy {acc:.4f} (best epoch {summary['best_epoch']}, {summary['seconds']:.0f}s)")
    accs = np.array([r["accuracy"] for r in results])
    return {
        "k": k, "seed": opts.seed, "examples": len(examples),
        "mean_accuracy": float(accs.mean()), "std_accuracy": float(accs.std(ddof=1)) if k > 1 else 0.0,
        "min_accuracy": float(accs.min()), "max_accuracy": float(accs.max()),
        "folds": results, "minutes": round((time.perf_counter() - t0) / 60, 2), "options": asdict(opts),
    }


# --------------------------------------------------------------------------- evaluation


def classification_scores(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] = ()) -> dict:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix."""
    if len(gold) != len(pred):
        raise ValueError("gold and predicted label lists differ in length")
    names = list(dict.fromkeys([*labels, *sorted(set(gold) | set(pred))]))
    pos = {l: i for i, l in enumerate(names)}
    cm = [[0] * len(names) for _ in names]
    for g, p in zip(gold, pred):
        cm[pos[g]][pos[p]] += 1
    per_class = {}
    for i, l in enumerate(names):
        tp = cm[i][i]
        predicted = sum(cm[r][i] for r in range(len(names)))
        support = sum(cm[i])
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per_class[l] = {"precision": p, "recall": r, "f1": f, "support": support}
    n = len(gold)
    present = [l for l in names if per_class[l]["support"] > 0]
    return {
        "accuracy": sum(g == p for g, p in zip(gold, pred)) / n if n else 0.0,
        "macro_f1": sum(per_class[l]["f1"] for l in present) / len(present) if present else 0.0,
        "examples": n,
        "per_class": per_class,
        "confusion": {"labels": names, "matrix": cm, "rows": "gold", "columns": "predicted"},
    }


def evaluate(clf: Classifier, examples: Sequence[Example], batch_size: int = 256) -> dict:
    probs = clf.predict_proba([e.text for e in examples], batch_size)
    pred = [clf.labels[i] for i in probs.argmax(1)]
    gold = [e.label for e in examples]
    scores = classification_scores(gold, pred, clf.labels)  # type: ignore[arg-type]
    unknown = sorted(set(gold) - set(clf.labels))  # type: ignore[arg-type]
    if unknown:
        scores["labels_unknown_to_model"] = unknown
    return scores


def format_report(scores: dict, model: str = "", data: str = "") -> str:
    """A Markdown report: accuracy, per-class table, confusion matrix."""
    lines = ["# Classifier evaluation", ""]
    if model:
        lines.append(f"- model: `{model}`")
    if data:
        lines.append(f"- data: `{data}`")
    lines += [f"- examples: {scores['examples']}", f"- accuracy: **{scores['accuracy']:.4f}**",
              f"- macro F1: {scores['macro_f1']:.4f}", "",
              "| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for l, s in scores["per_class"].items():
        lines.append(f"| {l} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    names = scores["confusion"]["labels"]
    lines += ["", "Confusion matrix (rows: gold, columns: predicted)", "",
              "| gold \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for l, row in zip(names, scores["confusion"]["matrix"]):
        lines.append(f"| {l} | " + " | ".join(str(x) for x in row) + " |")
    return "\n".join(lines) + "\n"


def write_evaluation(out_dir: str | Path, scores: dict, model: str = "", data: str = "") -> None:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TaggerError(f"{out_dir}: cannot create directory ({exc.strerror})") from None
    atomic_write_json(out_dir / "metrics.json", {**scores, "model": model, "data": data})
    atomic_write_bytes(out_dir / "report.md", format_report(scores, model, data).encode("utf-8"))


# --------------------------------------------------------------------------- prediction


def predict_records(clf: Classifier, inputs: Sequence[str | Path], format: str = "auto",
                    encoding: str = "utf-8", batch_size: int = 256) -> list[dict]:
    """One record per input line/record, in input order: label, probability, all probabilities."""
    examples: list[Example] = []
    for f in inputs:
        examples.extend(read_examples(f, format, encoding, need_label=False))
    probs = clf.predict_proba([e.text for e in examples], batch_size) if examples else np.zeros((0, 0))
    out = []
    for e, p in zip(examples, probs):
        b = int(p.argmax())
        rec: dict = {"source": e.source, "line": e.line}
        if e.id is not None:
            rec["id"] = e.id
        rec.update(text=e.text, label=clf.labels[b], probability=round(float(p[b]), 6),
                   probabilities={l: round(float(x), 6) for l, x in zip(clf.labels, p)})
        if e.label is not None:
            rec["gold"] = e.label
        out.append(rec)
    return out


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    if str(path) == "-":
        import sys

        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    path = Path(path)
    if path.is_dir():
        raise TaggerError(f"{path}: is a directory (--out names the JSONL file to write)")
    if path.parent and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True)
        except OSError as exc:
            raise TaggerError(f"{path.parent}: cannot create directory ({exc.strerror})") from None
    atomic_write_bytes(path, data)
