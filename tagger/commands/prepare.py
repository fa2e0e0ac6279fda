"""``tagger prepare``: corpora → a prepared dataset directory (its format: :mod:`tagger.prepared`).

Reads the corpora, converts their tag schemes, builds the vocabularies and embedding matrices of
the training split and the per-split statistics of the manifest.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tagger import __version__, schemes
from tagger.declare import InputPath
from tagger.embeddings import build_matrix, candidates, coverage, extra_words, load_vectors
from tagger.errors import InputError, TaggerError
from tagger.formats.corpus import Corpus, Sentence
from tagger.formats.hf import load_hf_dataset
from tagger.formats.read import read_corpus
from tagger.fsutil import atomic_dir, atomic_write_json, sha256_file
from tagger.options import check_fields, option
from tagger.prepared import MANIFEST, SPLITS, Prepared, corpora_dataset, save_prepared
from tagger.vocab import Vocab, WordLookup, char_counts, normalize_digits

TARGET_SCHEMES = ("bioes", "iob2", "iob1", "keep")
FORMATS = ("auto", "conll", "conllu")


@dataclass
class PrepareOptions:
    """Everything ``tagger prepare`` can be told (the CLI makes one flag of each field)."""

    train: str | None = option(None, help="Training corpus file.", click_type=InputPath(dir_okay=False))
    dev: str | None = option(None, help="Development corpus file.", click_type=InputPath(dir_okay=False))
    test: str | None = option(None, help="Test corpus file.", click_type=InputPath(dir_okay=False))
    dataset: str | None = option(None, help="A HuggingFace datasets name, a save_to_disk directory or a local "
                                 "data file.", click_type=InputPath(or_name=True))
    dataset_config: str | None = option(None, help="Configuration name for --dataset.")
    format: str = option("auto", help="Input format (auto detects CoNLL-U by extension or content).",
                         choices=FORMATS)
    token_column: int = option(0, help="CoNLL token column.")
    label_column: int | str = option(-1, help="CoNLL label column (negative counts from the end: -1 is the last) "
                                     "or, for --dataset, the label field name (e.g. ner_tags).")
    label_field: str = option("upos", help="CoNLL-U field to tag.", choices=("upos", "xpos"))
    feature_columns: list[str] = option(help="Columns the model reads beside the words (comma-separated or "
                                        "repeated): column numbers of a CoNLL file (1 for CoNLL-2000's POS; 1,2 "
                                        "for CoNLL-2003's POS and chunks), CoNLL-U fields (upos, xpos, lemma, "
                                        "feats, deprel, misc) or dataset fields.", default_factory=list)
    encoding: str = option("utf-8", help="Text encoding of input files.")
    dev_fraction: float = option(0.0, help="Carve a seeded dev split of this share from train when there is no "
                                 "dev file.", min=0.0, below=1.0)
    seed: int = option(1, help="Random seed (dev split, word2vec, vectors of words without one).")
    scheme: str = option("bioes", help="Tag scheme to train with (entity tags only; plain labels are never "
                         "converted).", choices=TARGET_SCHEMES)
    input_scheme: str = option("auto", help="Scheme of the input tags.", choices=("auto", *schemes.SCHEMES, "plain"))
    min_count: int = option(1, help="Minimum count of a training word.", min=1)
    lowercase: bool = option(False, help="Lowercase word keys.")
    digits: bool = option(True, help="Map digits to 0 in word keys.", flag="normalize-digits")
    embeddings: str = option("glove-6b-50d", help="none | glove-6b-50d | word2vec | path to a GloVe/word2vec/"
                             "fastText file.", click_type=InputPath(or_name=True))
    embedding_dim: int = option(100, help="Dimension for --embeddings none/word2vec.", min=1)
    unlabeled_text: list[str] = option(help="Extra text (one sentence per line) for --embeddings word2vec.",
                                       click_type=InputPath(dir_okay=False), default_factory=list)
    extend_vocab: bool = option(True, help="Keep pretrained vectors of words unseen in training for use at "
                                "prediction time.")

    def validate(self) -> None:
        if self.dataset is None and self.train is None:
            raise TaggerError("give --train FILE or --dataset NAME")
        if self.dataset is not None and self.train is not None:
            raise TaggerError("give either --train FILE or --dataset NAME, not both")
        check_fields(self)
        if self.dev_fraction and self.dev:
            raise TaggerError("give either --dev FILE or --dev-fraction, not both")
        if self.dataset is None and not isinstance(self.label_column, int):
            raise TaggerError("--label-column must be a column number for CoNLL files")
        self.feature_columns = [c.strip() for v in self.feature_columns for c in v.split(",") if c.strip()]
        if len(set(self.feature_columns)) < len(self.feature_columns):
            raise TaggerError("--feature-columns: each column once")


# --------------------------------------------------------------------------- reading


def labels_of(sentence: Sentence) -> list[str]:
    """The labels of a sentence of a labelled corpus (prepare reads only those)."""
    if sentence.labels is None:
        raise TaggerError(f"line {sentence.line}: a sentence without labels (give the label column)")
    return sentence.labels


def read_splits(opts: PrepareOptions) -> tuple[dict[str, Corpus], dict[str, str]]:
    """Read the splits named by the options; returns corpora and input-file hashes."""
    hashes: dict[str, str] = {}
    corpora: dict[str, Corpus] = {}
    if opts.dataset is not None:
        label = opts.label_column if isinstance(opts.label_column, str) else None
        corpora = load_hf_dataset(opts.dataset, opts.dataset_config, label_field=label,
                                  feature_fields=opts.feature_columns)
        if Path(opts.dataset).is_file():
            hashes[opts.dataset] = sha256_file(opts.dataset)
    else:
        for split in SPLITS:
            path = getattr(opts, split)
            if path is None:
                continue
            corpora[split] = read_corpus(
                path, opts.format, opts.token_column, int(opts.label_column),
                opts.label_field, opts.encoding, features=opts.feature_columns,
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
    def part(sents: list, tag: str) -> Corpus:
        return Corpus(sents, f"{train.source}[{tag}]", train.format, len({s.doc for s in sents}))

    return part(tr, "train"), part(dv, f"dev {fraction:g}")


# --------------------------------------------------------------------------- schemes


def resolve_schemes(
    corpora: dict[str, Corpus], input_scheme: str, target: str
) -> tuple[str, dict[str, str], str]:
    """Return (task, detected scheme per split, training scheme).

    ``task`` is ``entity`` for IOB1/IOB2/BIOES labels and ``plain`` otherwise.
    """
    detected: dict[str, str] = {}
    for name, corpus in corpora.items():
        labels = [labels_of(s) for s in corpus.sentences]
        detected[name] = input_scheme if input_scheme != "auto" else schemes.detect_scheme(labels)
    train_scheme = detected["train"]
    if train_scheme == "plain":
        return "plain", {k: "plain" for k in detected}, "plain"
    for name, sch in detected.items():
        if sch == "plain":
            only_o = all(lab == "O" for s in corpora[name].sentences for lab in labels_of(s))
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
        s.labels, n = schemes.convert(labels_of(s), source, target)
        repaired += n
    return repaired


# --------------------------------------------------------------------------- statistics


def split_stats(corpus: Corpus, task: str, scheme: str, lookup: WordLookup, labels: Vocab) -> dict:
    label_counts: Counter = Counter()
    entities: Counter = Counter()
    oov = oov_all = 0
    for s in corpus.sentences:
        label_counts.update(labels_of(s))
        if task == "entity":
            entities.update(sp.label for sp in schemes.to_spans(labels_of(s), scheme))
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
        "unseen_labels": sorted(lab for lab in label_counts if lab not in labels),
    }
    if task == "entity":
        out["entities"] = dict(sorted(entities.items()))
    return out


# --------------------------------------------------------------------------- vocabularies and embeddings


@dataclass
class Vocabularies:
    """The vocabularies of the training split and the word key they use."""

    words: Vocab
    chars: Vocab
    labels: Vocab  # id 0 is the padding label "<pad>"
    features: list[Vocab]  # one per feature column (ids 0 and 1: <pad>, <unk>)
    surface: dict[str, str]  # word key -> its most frequent spelling (for pretrained-vector lookup)
    key: Callable[[str], str]  # token -> word key (digits normalised, lowercased as the options say)


def check_labels(train: Corpus) -> None:
    """Refuse the padding label "<pad>" in the training data (label id 0 pads label tensors)."""
    for s in train.sentences:
        labels = labels_of(s)
        if "<pad>" in labels:
            i = labels.index("<pad>")
            line = s.line + i if train.format == "conll" else s.line
            raise InputError(train.source, line, "the label '<pad>' is reserved (it pads label sequences)")


def build_vocabularies(train: Corpus, opts: PrepareOptions) -> Vocabularies:
    """Word, character and label vocabularies from the training split only."""
    lookup_key = lambda w: (normalize_digits(w) if opts.digits else w)  # noqa: E731
    key = (lambda w: lookup_key(w).lower()) if opts.lowercase else lookup_key
    word_counts: Counter = Counter()
    surface_counts: dict[str, Counter] = {}
    for s in train.sentences:
        for t in s.tokens:
            k = key(t)
            word_counts[k] += 1
            surface_counts.setdefault(k, Counter())[t] += 1
    labels = Vocab.build(Counter(lab for s in train.sentences for lab in labels_of(s)), specials=False)
    return Vocabularies(
        words=Vocab.build(word_counts, opts.min_count),
        chars=Vocab.build(char_counts(s.tokens for s in train.sentences)),
        labels=Vocab(["<pad>", *labels.itos], specials=False),
        features=feature_vocabularies(train),
        surface={k: c.most_common(1)[0][0] for k, c in surface_counts.items()},
        key=key,
    )


def feature_vocabularies(train: Corpus) -> list[Vocab]:
    """A vocabulary of each feature column's values in the training split (most frequent first)."""
    columns = [s.features or [] for s in train.sentences]
    n = len(columns[0]) if columns else 0
    return [Vocab.build(Counter(v for cols in columns for v in cols[i])) for i in range(n)]


@dataclass
class Embeddings:
    """The embedding matrices of a prepared directory and what the manifest says about them."""

    matrix: np.ndarray  # trained vocabulary × dim
    extra: list[str]  # pretrained words never seen in training
    extra_matrix: np.ndarray  # extra words × dim
    info: dict


def build_embeddings(opts: PrepareOptions, train: Corpus, vocabs: Vocabularies) -> Embeddings:
    """Pretrained (or trained on the fly, or random) vectors for the vocabulary, and their coverage."""
    vectors = load_vectors(
        opts.embeddings, [s.tokens for s in train.sentences], opts.unlabeled_text,
        dim=opts.embedding_dim, seed=opts.seed,
    )
    dim = vectors.dim if vectors is not None else opts.embedding_dim
    matrix, found = build_matrix(vocabs.words, vocabs.surface, vectors, dim, opts.seed)
    if vectors is not None and opts.extend_vocab:
        extra, extra_matrix = extra_words(vectors, vocabs.key, vocabs.words)
    else:
        extra, extra_matrix = [], np.zeros((0, dim), np.float32)
    info: dict = {"source": opts.embeddings, "dim": dim, "extra_words": len(extra)}
    if vectors is not None:
        vindex = vectors.index()
        has = lambda w: any(c in vindex for c in candidates(w))  # noqa: E731
        type_cov, tok_cov = coverage(Counter(t for s in train.sentences for t in s.tokens), has)
        info.update(
            pretrained_words=len(vectors.words), vocab_found=found,
            vocab_coverage=found / max(1, len(vocabs.words) - 2),
            type_coverage=type_cov, token_coverage=tok_cov,
        )
    return Embeddings(matrix, extra, extra_matrix, info)


# --------------------------------------------------------------------------- main


class _Stages:
    """One progress bar over prepare's stages (silent when stderr is not a terminal).

    Without a bar the stage names go to the log; word2vec training and the writing of large
    datasets are the long stages.
    """

    def __init__(self, total: int, progress: bool, log: Callable[[str], None]) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="prepare", unit="step", leave=False, disable=None if progress else True)
        self.log = log
        self.started = False

    def start(self, msg: str) -> None:
        """Begin the next stage (the previous one is done)."""
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description_str(msg)
        if self.bar.disable:  # on a terminal the bar shows the stage instead
            self.log(msg)

    def close(self) -> None:
        self.bar.update(1)
        self.bar.close()


def _manifest(opts: PrepareOptions, hashes: dict, train: Corpus, task: str, scheme: str, vocabs: Vocabularies,
              emb: Embeddings, stats: dict) -> dict:
    return {
        "tagger_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": asdict(opts),
        "inputs": hashes,
        "format": train.format,
        "task": task,
        "scheme": scheme,
        "labels": vocabs.labels.itos[1:],
        "vocab": {"words": len(vocabs.words), "chars": len(vocabs.chars), "labels": len(vocabs.labels) - 1,
                  "extra_words": len(emb.extra),
                  "features": {name: len(v) - 2
                               for name, v in zip(opts.feature_columns, vocabs.features, strict=True)}},
        "embeddings": emb.info,
        "splits": stats,
    }


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
    stages = _Stages(4, progress, log or (lambda msg: None))
    t0 = time.perf_counter()
    stages.start("reading corpora")
    corpora, hashes = read_splits(opts)
    train = corpora["train"]
    check_labels(train)
    task, detected, scheme = resolve_schemes(corpora, opts.input_scheme, opts.scheme)
    repaired = {name: convert_corpus(corpus, detected[name], scheme) for name, corpus in corpora.items()}
    vocabs = build_vocabularies(train, opts)

    stages.start(f"loading embeddings ({opts.embeddings})")
    emb = build_embeddings(opts, train, vocabs)

    stages.start("computing statistics")
    lookup = WordLookup(vocabs.words, emb.extra, lowercase=opts.lowercase, digits=opts.digits)
    stats = {name: split_stats(c, task, scheme, lookup, vocabs.labels) for name, c in corpora.items()}
    for name in stats:
        stats[name]["input_scheme"] = detected[name]
        stats[name]["repaired"] = repaired[name]
    manifest = _manifest(opts, hashes, train, task, scheme, vocabs, emb, stats)

    stages.start("writing prepared directory")
    try:
        prep = Prepared(
            path=Path(out), manifest=manifest, dataset=corpora_dataset(corpora),
            words=vocabs.words, chars=vocabs.chars, labels=vocabs.labels,
            extra=emb.extra, matrix=emb.matrix, extra_matrix=emb.extra_matrix,
            lowercase=opts.lowercase, digits=opts.digits, task=task, scheme=scheme,
            feature_names=list(opts.feature_columns), features=vocabs.features,
        )
        with atomic_dir(out, force=force) as tmp:
            save_prepared(tmp, prep)
    finally:
        stages.close()
    manifest["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(Path(out) / MANIFEST, manifest)
    return manifest


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
    lines = []
    for r in rows:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    v = manifest["vocab"]
    e = manifest["embeddings"]
    lines.append("")
    lines.append(
        f"task: {manifest['task']}  scheme: {manifest['scheme']}  labels: {v['labels']}  "
        f"words: {v['words']:,}  chars: {v['chars']:,}  pretrained-only words: {v['extra_words']:,}"
    )
    if v.get("features"):
        lines.append("feature columns: " + ", ".join(f"{name} ({n:,} values)" for name, n in v["features"].items()))
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
