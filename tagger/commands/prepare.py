"""``tagger prepare``: corpora → a prepared dataset directory.

Layout of a prepared directory::

    dataset/                  datasets.DatasetDict (train/dev/test): tokens, labels, doc, line
    vocab.json                word/char/label vocabularies and the word-key settings
    extra_words.json          pretrained words never seen in training (usable at prediction)
    embeddings.safetensors    "words" (trained vocab × dim) and "extra" (extra words × dim)
    prepare.json              manifest: options, input hashes, per-split statistics
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tagger import __version__
from tagger import schemes
from tagger.formats.corpus import Corpus, load_hf_dataset, read_corpus
from tagger.embeddings import build_matrix, coverage, extra_words, load_vectors
from tagger.errors import InputError, TaggerError
from tagger.fsutil import atomic_dir, atomic_write_json, sha256_file
from tagger.vocab import Vocab, WordLookup, char_counts, normalize_digits

SPLITS = ("train", "dev", "test")
TARGET_SCHEMES = ("bioes", "iob2", "iob1", "keep")


@dataclass
class PrepareOptions:
    """Everything ``tagger prepare`` can be told (the CLI maps its flags onto this)."""

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    format: str = "auto"
    token_column: int = 0
    label_column: int | str = -1
    label_field: str = "upos"
    encoding: str = "utf-8"
    dev_fraction: float = 0.0
    seed: int = 1
    scheme: str = "bioes"
    input_scheme: str = "auto"
    min_count: int = 1
    lowercase: bool = False
    digits: bool = True
    embeddings: str = "glove-6b-50d"
    embedding_dim: int = 100
    unlabeled_text: list[str] = field(default_factory=list)
    extend_vocab: bool = True

    def validate(self) -> None:
        if self.dataset is None and self.train is None:
            raise TaggerError("give --train FILE or --dataset NAME")
        if self.dataset is not None and self.train is not None:
            raise TaggerError("give either --train FILE or --dataset NAME, not both")
        if self.scheme not in TARGET_SCHEMES:
            raise TaggerError(f"unknown --scheme {self.scheme!r}: choose {', '.join(TARGET_SCHEMES)}")
        if self.input_scheme not in ("auto", "plain", *schemes.SCHEMES):
            raise TaggerError(f"unknown --input-scheme {self.input_scheme!r}")
        if not 0.0 <= self.dev_fraction < 1.0:
            raise TaggerError("--dev-fraction must be in [0, 1)")
        if self.dev_fraction and self.dev:
            raise TaggerError("give either --dev FILE or --dev-fraction, not both")
        if self.min_count < 1:
            raise TaggerError("--min-count must be at least 1")
        if self.embedding_dim < 1:
            raise TaggerError("--embedding-dim must be positive")
        if self.dataset is None and not isinstance(self.label_column, int):
            raise TaggerError("--label-column must be a column number for CoNLL files")


# --------------------------------------------------------------------------- reading


def read_splits(opts: PrepareOptions) -> tuple[dict[str, Corpus], dict[str, str]]:
    """Read the splits named by the options; returns corpora and input-file hashes."""
    hashes: dict[str, str] = {}
    corpora: dict[str, Corpus] = {}
    if opts.dataset is not None:
        label = opts.label_column if isinstance(opts.label_column, str) else None
        corpora = load_hf_dataset(opts.dataset, opts.dataset_config, label_field=label)
        if Path(opts.dataset).is_file():
            hashes[opts.dataset] = sha256_file(opts.dataset)
    else:
        for split in SPLITS:
            path = getattr(opts, split)
            if path is None:
                continue
            corpora[split] = read_corpus(
                path, opts.format, opts.token_column, int(opts.label_column),
                opts.label_field, opts.encoding,
            )
            hashes[str(path)] = sha256_file(path)
    for f in opts.unlabeled_text:
        if not Path(f).is_file():
            raise TaggerError(f"--unlabeled-text {f}: file not found")
        hashes[str(f)] = sha256_file(f)
    if opts.dev_fraction and "dev" not in corpora:
        corpora["train"], corpora["dev"] = split_dev(corpora["train"], opts.dev_fraction, opts.seed)
    return {k: corpora[k] for k in SPLITS if k in corpora}, hashes


def split_dev(train: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """A seeded, reproducible random dev split carved from the training sentences."""
    n = len(train.sentences)
    n_dev = max(1, int(round(n * fraction)))
    if n_dev >= n:
        raise TaggerError(f"--dev-fraction {fraction} leaves no training sentences")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    dev_idx = set(order[:n_dev])
    tr = [s for i, s in enumerate(train.sentences) if i not in dev_idx]
    dv = [s for i, s in enumerate(train.sentences) if i in dev_idx]
    mk = lambda ss, tag: Corpus(ss, f"{train.source}[{tag}]", train.format, len({s.doc for s in ss}))
    return mk(tr, "train"), mk(dv, f"dev {fraction:g}")


# --------------------------------------------------------------------------- schemes


def resolve_schemes(
    corpora: dict[str, Corpus], input_scheme: str, target: str
) -> tuple[str, dict[str, str], str]:
    """Return (task, detected scheme per split, training scheme).

    ``task`` is ``entity`` for IOB1/IOB2/BIOES labels and ``plain`` otherwise.
    """
    detected: dict[str, str] = {}
    for name, corpus in corpora.items():
        labels = [s.labels for s in corpus.sentences]
        detected[name] = input_scheme if input_scheme != "auto" else schemes.detect_scheme(labels)
    train_scheme = detected["train"]
    if train_scheme == "plain":
        return "plain", {k: "plain" for k in detected}, "plain"
    for name, sch in detected.items():
        if sch == "plain":
            only_o = all(l == "O" for s in corpora[name].sentences for l in s.labels)
            if not only_o:
                raise TaggerError(
                    f"{corpora[name].source}: labels are not entity tags, but the training data's are ({train_scheme})"
                )
            detected[name] = train_scheme
    return "entity", detected, train_scheme if target == "keep" else target


def convert_corpus(corpus: Corpus, source: str, target: str) -> int:
    """Convert the labels of every sentence in place; returns the number of repairs."""
    if source == "plain":
        return 0
    repaired = 0
    for s in corpus.sentences:
        s.labels, n = schemes.convert(s.labels, source, target)
        repaired += n
    return repaired


# --------------------------------------------------------------------------- statistics


def split_stats(corpus: Corpus, task: str, scheme: str, lookup: WordLookup, labels: Vocab) -> dict:
    label_counts: Counter = Counter()
    entities: Counter = Counter()
    oov = oov_all = 0
    for s in corpus.sentences:
        label_counts.update(s.labels)
        if task == "entity":
            entities.update(sp.label for sp in schemes.to_spans(s.labels, scheme))
        for t in s.tokens:
            idx = lookup(t)
            if idx == 1 or idx >= lookup.num_trained:
                oov += 1
                if idx == 1:
                    oov_all += 1
    ntok = corpus.num_tokens
    out = {
        "source": corpus.source,
        "sentences": len(corpus.sentences),
        "tokens": ntok,
        "documents": corpus.num_documents,
        "labels": dict(sorted(label_counts.items())),
        "oov_rate": oov / ntok if ntok else 0.0,
        "oov_rate_with_pretrained": oov_all / ntok if ntok else 0.0,
        "unseen_labels": sorted(l for l in label_counts if l not in labels),
    }
    if task == "entity":
        out["entities"] = dict(sorted(entities.items()))
    return out


# --------------------------------------------------------------------------- main


def prepare(
    opts: PrepareOptions,
    out: str | Path,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Run the whole prepare stage and write the prepared directory ``out``.

    Returns the manifest (also written as ``prepare.json``).
    """
    opts.validate()
    from tqdm import tqdm

    log = log or (lambda msg: None)
    # One bar over the stages (silent when stderr is not a terminal); word2vec training and
    # the writing of large datasets are the long ones.
    bar = tqdm(total=4, desc="prepare", unit="step", leave=False, disable=None if progress else True)

    def say(msg: str) -> None:
        bar.set_description_str(msg)
        if bar.disable:  # on a terminal the bar shows the stage instead
            log(msg)

    t0 = time.perf_counter()
    say("reading corpora")
    corpora, hashes = read_splits(opts)
    for s in corpora["train"].sentences:  # label id 0 is the padding label "<pad>": a real label cannot be it
        if "<pad>" in s.labels:
            i = s.labels.index("<pad>")
            line = s.line + i if corpora["train"].format == "conll" else s.line
            raise InputError(corpora["train"].source, line, "the label '<pad>' is reserved (it pads label sequences)")
    task, detected, scheme = resolve_schemes(corpora, opts.input_scheme, opts.scheme)
    repaired = {}
    for name, corpus in corpora.items():
        repaired[name] = convert_corpus(corpus, detected[name], scheme)
    train = corpora["train"]

    # Vocabularies from the training split only.
    lookup_key = lambda w: (normalize_digits(w) if opts.digits else w)
    key = (lambda w: lookup_key(w).lower()) if opts.lowercase else lookup_key
    word_counts: Counter = Counter()
    surface_counts: dict[str, Counter] = {}
    for s in train.sentences:
        for t in s.tokens:
            k = key(t)
            word_counts[k] += 1
            surface_counts.setdefault(k, Counter())[t] += 1
    words = Vocab.build(word_counts, opts.min_count)
    surface = {k: c.most_common(1)[0][0] for k, c in surface_counts.items()}
    chars = Vocab.build(char_counts(s.tokens for s in train.sentences))
    labels = Vocab.build(Counter(l for s in train.sentences for l in s.labels), specials=False)
    labels = Vocab(["<pad>", *labels.itos], specials=False)  # id 0 pads label tensors

    bar.update(1)
    say(f"loading embeddings ({opts.embeddings})")
    vectors = load_vectors(
        opts.embeddings, [s.tokens for s in train.sentences], opts.unlabeled_text,
        dim=opts.embedding_dim, seed=opts.seed,
    )
    dim = vectors.dim if vectors is not None else opts.embedding_dim
    matrix, found = build_matrix(words, surface, vectors, dim, opts.seed)
    if vectors is not None and opts.extend_vocab:
        extra, extra_matrix = extra_words(vectors, key, words)
    else:
        extra, extra_matrix = [], np.zeros((0, dim), np.float32)
    lookup = WordLookup(words, extra, lowercase=opts.lowercase, digits=opts.digits)

    bar.update(1)
    say("computing statistics")
    emb_info: dict = {"source": opts.embeddings, "dim": dim, "extra_words": len(extra)}
    if vectors is not None:
        vindex = vectors.index()
        from tagger.embeddings import candidates

        has = lambda w: any(c in vindex for c in candidates(w))
        train_tokens = Counter(t for s in train.sentences for t in s.tokens)
        type_cov, tok_cov = coverage(train_tokens, has)
        emb_info.update(
            pretrained_words=len(vectors.words), vocab_found=found,
            vocab_coverage=found / max(1, len(words) - 2),
            type_coverage=type_cov, token_coverage=tok_cov,
        )

    stats = {name: split_stats(c, task, scheme, lookup, labels) for name, c in corpora.items()}
    for name in stats:
        stats[name]["input_scheme"] = detected[name]
        stats[name]["repaired"] = repaired[name]

    manifest = {
        "tagger_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": asdict(opts),
        "inputs": hashes,
        "format": train.format,
        "task": task,
        "scheme": scheme,
        "labels": labels.itos[1:],
        "vocab": {"words": len(words), "chars": len(chars), "labels": len(labels) - 1, "extra_words": len(extra)},
        "embeddings": emb_info,
        "splits": stats,
    }

    bar.update(1)
    say("writing prepared directory")
    try:
        with atomic_dir(out, force=force) as tmp:
            _save(tmp, corpora, words, chars, labels, extra, matrix, extra_matrix, opts, task, scheme, manifest)
    finally:
        bar.update(1)
        bar.close()
    manifest["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(Path(out) / "prepare.json", manifest)
    return manifest


def _save(tmp: Path, corpora, words, chars, labels, extra, matrix, extra_matrix, opts, task, scheme, manifest) -> None:
    import datasets
    from safetensors.numpy import save_file

    datasets.disable_progress_bars()
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "labels": datasets.Sequence(datasets.Value("string")),
            "doc": datasets.Value("int32"),
            "line": datasets.Value("int32"),
        }
    )
    dd = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict(
                {
                    "tokens": [s.tokens for s in c.sentences],
                    "labels": [s.labels for s in c.sentences],
                    "doc": [s.doc for s in c.sentences],
                    "line": [s.line for s in c.sentences],
                },
                features=features,
            )
            for name, c in corpora.items()
        }
    )
    dd.save_to_disk(str(tmp / "dataset"))
    vocab = {
        "words": words.to_json(),
        "chars": chars.to_json(),
        "labels": labels.to_json(),
        "lowercase": opts.lowercase,
        "digits": opts.digits,
        "task": task,
        "scheme": scheme,
    }
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (tmp / "extra_words.json").write_text(json.dumps(extra, ensure_ascii=False))
    save_file(
        {"words": np.ascontiguousarray(matrix), "extra": np.ascontiguousarray(extra_matrix)},
        str(tmp / "embeddings.safetensors"),
    )
    (tmp / "prepare.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- loading


@dataclass
class Prepared:
    """A prepared directory loaded back: datasets, vocabularies, embedding matrices."""

    path: Path
    manifest: dict
    dataset: "object"  # datasets.DatasetDict
    words: Vocab
    chars: Vocab
    labels: Vocab
    extra: list[str]
    matrix: np.ndarray
    extra_matrix: np.ndarray
    lowercase: bool
    digits: bool
    task: str
    scheme: str

    def lookup(self) -> WordLookup:
        return WordLookup(self.words, self.extra, lowercase=self.lowercase, digits=self.digits)

    def sentences(self, split: str) -> tuple[list[list[str]], list[list[str]]]:
        if split not in self.dataset:
            raise TaggerError(f"{self.path}: no {split!r} split (have {', '.join(self.dataset)})")
        d = self.dataset[split]
        return d["tokens"], d["labels"]


def load_prepared(path: str | Path) -> Prepared:
    """Load a directory written by :func:`prepare`."""
    import datasets
    from safetensors.numpy import load_file

    path = Path(path)
    need = ["prepare.json", "vocab.json", "extra_words.json", "embeddings.safetensors", "dataset"]
    missing = [n for n in need if not (path / n).exists()]
    if missing:
        raise TaggerError(f"{path}: not a prepared directory (missing {', '.join(missing)}); run tagger prepare")
    # (a FIFO or device named like a prepared file would block or never end a read)
    odd = [n for n in need[:-1] if not (path / n).is_file()] + ([] if (path / "dataset").is_dir() else ["dataset"])
    if odd:
        raise TaggerError(f"{path}: corrupt prepared directory ({', '.join(odd)}: not a regular file or directory)")
    try:
        manifest = json.loads((path / "prepare.json").read_text())
        vocab = json.loads((path / "vocab.json").read_text())
        extra = json.loads((path / "extra_words.json").read_text())
        tensors = load_file(str(path / "embeddings.safetensors"))
        dataset = datasets.load_from_disk(str(path / "dataset"))
        return Prepared(
            path=path, manifest=manifest, dataset=dataset,
            words=Vocab.from_json(vocab["words"]), chars=Vocab.from_json(vocab["chars"]),
            labels=Vocab.from_json(vocab["labels"]), extra=[str(w) for w in extra],
            matrix=tensors["words"], extra_matrix=tensors["extra"],
            lowercase=bool(vocab["lowercase"]), digits=bool(vocab["digits"]),
            task=vocab["task"], scheme=vocab["scheme"],
        )
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as exc:
        raise TaggerError(f"{path}: corrupt prepared directory ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- display


def format_summary(manifest: dict) -> str:
    """The manifest as a readable table."""
    splits = manifest["splits"]
    names = [n for n in SPLITS if n in splits]
    rows = [("", *names)]
    rows.append(("sentences", *(f"{splits[n]['sentences']:,}" for n in names)))
    rows.append(("tokens", *(f"{splits[n]['tokens']:,}" for n in names)))
    rows.append(("documents", *(f"{splits[n]['documents']:,}" for n in names)))
    rows.append(("input scheme", *(splits[n]["input_scheme"] for n in names)))
    rows.append(("repaired tags", *(f"{splits[n]['repaired']:,}" for n in names)))
    rows.append(("OOV (train vocab)", *(f"{splits[n]['oov_rate']:.2%}" for n in names)))
    rows.append(("OOV (+pretrained)", *(f"{splits[n]['oov_rate_with_pretrained']:.2%}" for n in names)))
    if manifest["task"] == "entity":
        types = sorted({t for n in names for t in splits[n].get("entities", {})})
        for t in types:
            rows.append((f"entities {t}", *(f"{splits[n]['entities'].get(t, 0):,}" for n in names)))
    else:
        rows.append(("labels", *(str(len(splits[n]["labels"])) for n in names)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    v = manifest["vocab"]
    e = manifest["embeddings"]
    lines.append("")
    lines.append(
        f"task: {manifest['task']}  scheme: {manifest['scheme']}  labels: {v['labels']}  "
        f"words: {v['words']:,}  chars: {v['chars']:,}  pretrained-only words: {v['extra_words']:,}"
    )
    if "token_coverage" in e:
        lines.append(
            f"embeddings: {e['source']} ({e['dim']}d)  coverage: {e['type_coverage']:.1%} of types, "
            f"{e['token_coverage']:.1%} of training tokens"
        )
    else:
        lines.append(f"embeddings: {e['source']} ({e['dim']}d, randomly initialised)")
    for n in names:
        if splits[n]["unseen_labels"]:
            lines.append(f"warning: {n} has labels never seen in train: {', '.join(splits[n]['unseen_labels'])}")
    return "\n".join(lines)
