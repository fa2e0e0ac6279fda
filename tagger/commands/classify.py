"""Sentence classification with an LSTM: ``tagger classify train|evaluate|predict``.

The model is :class:`tagger.nn.classifier.LSTMClassifier` over the project's tokenizer
(:func:`tagger.formats.text.tokenize`) and word vectors built as ``tagger prepare`` builds them;
it trains through :mod:`tagger.training` (into ``--out`` when given: checkpointed and
resumable). Inputs are read by :mod:`tagger.formats.examples`. Model directories use the
project's safe format (:mod:`tagger.modeldir`): ``config.json`` and safetensors weights, loaded
with name and shape checks and never unpickled.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagger import modeldir
from tagger.declare import InputPath
from tagger.embeddings import Vectors, load_vectors
from tagger.errors import ModelError, TaggerError
from tagger.formats.examples import Example, read_examples
from tagger.formats.text import tokenize
from tagger.fsutil import atomic_dir, atomic_write_bytes, atomic_write_json
from tagger.nn.classifier import POOLINGS, ClassifierConfig, LSTMClassifier, pad_batch
from tagger.options import bounds, check_fields, option
from tagger.training import distributed
from tagger.training.batches import epoch_batches
from tagger.training.loop import Recipe, Step, Task, Trainer
from tagger.training.optim import OPTIMIZERS, constant
from tagger.training.rundir import WEIGHTS, run_dir, run_options
from tagger.training.setup import DEVICE_PATTERN, setup
from tagger.vocab import UNK_ID, Vocab, WordLookup
from tagger.word_table import WordTable, build_word_table

KIND = "classifier"
EXTRA_WEIGHTS = "extra_embeddings.safetensors"
EXTRA_WORDS = "extra_words.json"
TOKENIZER = "syntok"  # the name saved in config.json: loading refuses any other


def _model_bound(name: str, help: str, default: Any, **kw: Any) -> Any:
    """An option that sets the ClassifierConfig field ``name``, with that field's bounds."""
    lo, hi = bounds(ClassifierConfig, name)
    return option(default, help=help, min=lo, max=hi, **kw)


@dataclass
class ClassifierOptions:
    """Data, vocabulary, architecture and training options (defaults: the benchmark recipe)."""

    embeddings: str = option("glove-6b-50d", help="none | glove-6b-50d | word2vec | path to a GloVe/word2vec/"
                             "fastText file.", click_type=InputPath(or_name=True, dir_okay=False))
    embedding_dim: int = _model_bound("word_dim", "Dimension for --embeddings none/word2vec.", 100)
    lowercase: bool = option(True, help="Lowercase word keys.")
    digits: bool = option(True, help="Map digits to 0 in word keys.", flag="normalize-digits")
    min_count: int = option(1, help="Minimum count of a training word.", min=1)
    extend_vocab: bool = option(True, help="Keep pretrained vectors of words unseen in training.")
    hidden: int = _model_bound("hidden", "LSTM hidden size (per direction).", 100)
    layers: int = _model_bound("layers", "LSTM layers.", 1)
    bidirectional: bool = option(True, help="BiLSTM (else a forward LSTM).")
    pooling: str = option("max", help="last | max | mean (masked).", choices=POOLINGS)
    dropout: float = _model_bound("dropout", "Dropout before the output layer.", 0.5, below=1.0)
    embed_dropout: float = _model_bound("embed_dropout", "Dropout on the word vectors.", 0.25, below=1.0)
    word_dropout: float = _model_bound("word_dropout", "Share of training words replaced by <unk>.", 0.0, below=1.0)
    freeze_embeddings: bool = option(False, help="Keep the pretrained vectors fixed.")
    epochs: int = option(15, help="Maximum number of epochs.", min=1)
    batch_size: int = option(32, help="Examples per mini-batch.", min=1)
    optimizer: str = option("adam", help="adam | adamw | sgd (momentum).", choices=OPTIMIZERS)
    lr: float = option(0.002, help="Learning rate.", above=0.0)
    momentum: float = option(0.9, help="SGD momentum.", min=0.0, below=1.0)
    weight_decay: float = option(0.0, help="L2 weight decay.", min=0.0)
    clip: float = option(5.0, help="Gradient-norm clipping (0 = off).", min=0.0)
    patience: int = option(3, help="Stop after this many epochs without dev improvement.", min=1)
    dev_fraction: float = option(0.1, help="Share of train held out for early stopping when there is no --dev.",
                                 min=0.0, below=1.0)
    seed: int = option(1, help="Random seed (same seed and --threads, same model on the same machine).")
    device: str = option("auto", help="auto | cpu | cuda | cuda:N.", pattern=DEVICE_PATTERN)
    threads: int = option(0, help="Torch CPU threads (0 = the cores other processes leave free, re-measured "
                         "every few seconds).", min=0)
    eval_batch_size: int = option(256, help="Examples per batch when scoring dev.", min=1)

    def validate(self) -> None:
        check_fields(self)

    def recipe(self) -> Recipe:
        return Recipe(epochs=self.epochs, optimizer=self.optimizer, lr=self.lr, schedule=constant(self.lr),
                      momentum=self.momentum, weight_decay=self.weight_decay, clip=self.clip, patience=self.patience,
                      seed=self.seed)


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

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256, device: str = "cpu") -> np.ndarray:
        """``(len(texts), num_labels)`` probabilities, in input order."""
        return self.model.predict_proba([self.encode(t) for t in texts], batch_size, device)

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> list[tuple[str, float, np.ndarray]]:
        probs = self.predict_proba(texts, batch_size)
        best = probs.argmax(1)
        return [(self.labels[b], float(p[b]), p) for b, p in zip(best, probs, strict=True)]

    def save(self, out: str | Path, force: bool = False) -> None:
        """Write the model directory ``out`` at once (an existing one only with ``force``)."""
        with atomic_dir(out, force=force) as tmp:
            write_static(tmp, self.config, self.lookup.extra, self.model.word_embed.extra)
            modeldir.save_tensors(tmp / WEIGHTS, self.model.state_dict())

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        path = Path(path)
        cfg, mc, where = modeldir.read_model_section(path, KIND, ClassifierConfig)
        if cfg.get("tokenizer") != TOKENIZER:
            raise ModelError(f"{where}: unknown tokenizer {cfg.get('tokenizer')!r} (this version has {TOKENIZER!r}); "
                             "train the model again")
        v = cfg.get("vocab")
        if not isinstance(v, dict) or not all(
            isinstance(v.get(k), list) and all(isinstance(x, str) for x in v[k]) for k in ("words", "labels")
        ):
            raise ModelError(f"{where}: vocab.words and vocab.labels must be lists of strings")
        if len(v["words"]) != mc.num_words or len(v["labels"]) != mc.num_labels or mc.num_labels < 2:
            raise ModelError(f"{where}: vocabulary sizes disagree with the model section")
        # headers checked before anything is allocated (absurd sizes need a weights file that big)
        extra_header: dict | None = ({path / EXTRA_WEIGHTS: {"extra": ((mc.num_extra, mc.word_dim), torch.float32)}}
                        if mc.num_extra else None)
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
            model.word_embed.set_extra(t["extra"])
        model.eval()
        words = Vocab.from_json({"itos": v["words"], "specials": True})
        lookup = WordLookup(words, extra, lowercase=bool(v.get("lowercase", True)), digits=bool(v.get("digits", True)))
        return cls(model, lookup, list(v["labels"]), cfg)


def write_static(out: Path, config: dict, extra_words: Sequence[str], extra_matrix: Any) -> None:
    """``config.json`` and the frozen pretrained-only vectors with their words."""
    modeldir.write_config(out, KIND, config)
    if extra_words:
        modeldir.save_tensors(out / EXTRA_WEIGHTS, {"extra": torch.as_tensor(np.asarray(extra_matrix, np.float32))})
        atomic_write_bytes(out / EXTRA_WORDS, json.dumps(list(extra_words), ensure_ascii=False).encode("utf-8"))


# --------------------------------------------------------------------------- training


class ClassifierTask(Task):
    """Length-bucketed example batches and the cross-entropy loss; dev accuracy picks the epoch."""

    model: LSTMClassifier
    unit = "ex"
    headline = "accuracy"

    def __init__(self, model: LSTMClassifier, table: WordTable, labels: list[str], train: Sequence[Example],
                 tokens: Sequence[Sequence[str]], dev: Sequence[Example], opts: ClassifierOptions,
                 device: str) -> None:
        self.model, self.table, self.labels, self.opts, self.device = model, table, labels, opts, device
        lookup = table.lookup()
        self.encoded = [lookup.lookup(t) or [UNK_ID] for t in tokens]
        self.lengths = [len(e) for e in self.encoded]
        label_id = {lab: i for i, lab in enumerate(labels)}
        self.gold = torch.as_tensor([label_id[str(e.label)] for e in train], dtype=torch.long)
        self.dev_encoded = [lookup.lookup(tokenize(e.text)) or [UNK_ID] for e in dev]
        self.dev_gold = [e.label for e in dev]
        self.has_dev = bool(dev)
        self.config: dict[str, Any] = {
            "model": model.config.to_json(),
            "vocab": {"words": table.words.itos, "labels": labels, "lowercase": table.lowercase,
                      "digits": table.digits},
            "tokenizer": TOKENIZER,
            "embeddings": table.info,
            "training": {"options": asdict(opts), "examples": len(train), "dev_examples": len(dev)},
        }

    def size(self) -> int:
        return len(self.encoded)

    def batches(self, epoch: int) -> list[list[int]]:
        return epoch_batches(self.lengths, self.opts.batch_size, self.opts.seed, epoch)

    def step(self, idx: list[int]) -> Step:
        words, lengths = pad_batch(self.encoded, idx)
        loss = self.model.loss(self.model(words.to(self.device), lengths), self.gold[idx].to(self.device))
        return Step(loss, loss.item() * len(idx), len(idx), len(idx))

    def evaluate(self) -> dict[str, Any]:
        probs = self.model.predict_proba(self.dev_encoded, self.opts.eval_batch_size, self.device)
        pred = [self.labels[i] for i in probs.argmax(1)]
        return {"accuracy": sum(p == g for p, g in zip(pred, self.dev_gold, strict=True)) / len(self.dev_gold)}

    def write_files(self, out: Path) -> None:
        write_static(out, self.config, self.table.extra, self.table.extra_matrix)


def _inner_dev(train: list[Example], opts: ClassifierOptions,
               say: Callable[[str], None]) -> tuple[list[Example], list[Example]]:
    """A seeded stratified share of ``train`` held out for early stopping (none for tiny data)."""
    if opts.dev_fraction <= 0 or len(train) < 10:
        return train, []
    keep, held = stratified_split([str(e.label) for e in train], opts.dev_fraction, opts.seed)
    say(f"early stopping on an inner dev split of {len(held)} examples ({opts.dev_fraction:.0%} of train)")
    return [train[i] for i in keep], [train[i] for i in held]


def train_classifier(
    train: Sequence[Example],
    dev: Sequence[Example] | None,
    opts: ClassifierOptions | None,
    *,
    out: str | Path | None = None,
    given: Mapping[str, Any] | None = None,
    resume: bool = False,
    force: bool = False,
    vectors: Vectors | None = None,
    cv: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> tuple[Classifier, dict]:
    """Fit a classifier; early stopping on ``dev`` (or an inner stratified split of ``train``).

    With ``out`` the model directory is written as training goes (checkpointed; ``resume``
    continues a killed run, with the rule of :func:`tagger.commands.train.train` for ``given``);
    ``cv`` (cross-validation results) is recorded in its ``config.json``. ``vectors`` (already
    loaded) replace ``opts.embeddings``. Returns the classifier with the weights of the best dev
    epoch, and a training summary.
    """
    say = distributed.main_log(log) or (lambda m: None)
    run = run_dir(out, "classify", resume=resume, force=force, log=say)
    opts = run_options(run, ClassifierOptions, opts, given)
    train, inner = (list(train), list(dev)) if dev is not None else _inner_dev(list(train), opts, say)
    labels = sorted({str(e.label) for e in train})
    if len(labels) < 2:
        raise TaggerError(f"training data has only one label ({labels[0] if labels else '-'}): need at least 2")
    device = setup(opts.seed, opts.device)
    tokens = [tokenize(e.text) for e in train]
    table = build_word_table(tokens, opts.embeddings, vectors=vectors, lowercase=opts.lowercase, digits=opts.digits,
                             min_count=opts.min_count, extend_vocab=opts.extend_vocab, dim=opts.embedding_dim,
                             seed=opts.seed)
    task = ClassifierTask(_new_model(table, labels, opts, device), table, labels, train, tokens, inner, opts, device)
    if run is not None:
        run.check_saved(KIND, "vocab", task.config["vocab"], "training data")
        run.create()
    trainer = Trainer(task, opts.recipe(), run, log=say, progress=progress, threads=opts.threads)
    trainer.fit()
    trainer.restore_best()
    summary = {**trainer.summary(), "labels": labels, "embeddings": table.info}
    config = task.config
    config["training"].update(best_epoch=summary["best_epoch"], best_dev_accuracy=summary["best_dev"])
    if cv is not None:
        config["training"]["cv"] = dict(cv)
    if run is not None:
        run.write_config(KIND, config)
        run.write_summary(summary)
    return Classifier(task.model, table.lookup(), labels, config), summary


def _new_model(table: WordTable, labels: list[str], opts: ClassifierOptions, device: str) -> LSTMClassifier:
    """A classifier initialised with the table's vectors, on ``device``."""
    model = LSTMClassifier(ClassifierConfig(
        num_words=len(table.words), num_extra=len(table.extra), word_dim=int(table.matrix.shape[1]),
        num_labels=len(labels), hidden=opts.hidden, layers=opts.layers, bidirectional=opts.bidirectional,
        pooling=opts.pooling, dropout=opts.dropout, embed_dropout=opts.embed_dropout,
        word_dropout=opts.word_dropout, freeze_words=opts.freeze_embeddings))
    model.word_embed.set_pretrained(table.matrix, table.extra_matrix)
    return model.to(device)


# --------------------------------------------------------------------------- cross-validation


def stratified_folds(labels: Sequence[str], k: int, seed: int = 1) -> list[list[int]]:
    """``k`` disjoint index lists covering ``range(len(labels))``, each with the class mix of the data."""
    from sklearn.model_selection import StratifiedKFold

    if k < 2:
        raise TaggerError("--cv needs at least 2 folds")
    if k > len(labels):
        raise TaggerError(f"--cv {k}: only {len(labels)} examples")
    if all(labels.count(lab) < k for lab in set(labels)):
        raise TaggerError(f"--cv {k}: every label has fewer than {k} examples")
    with warnings.catch_warnings():  # a class smaller than k is fine: its examples go to some folds
        warnings.simplefilter("ignore", UserWarning)
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
        return [sorted(int(i) for i in test) for _, test in splits]


def stratified_split(labels: Sequence[str], fraction: float, seed: int = 1) -> tuple[list[int], list[int]]:
    """Seeded stratified ``(keep, held_out)`` index split; ``held_out`` has about ``fraction``.

    Data too small to stratify (a class of one example) get a plain seeded split.
    """
    from sklearn.model_selection import train_test_split

    idx = list(range(len(labels)))
    try:
        keep, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError:
        keep, held = train_test_split(idx, test_size=fraction, random_state=seed)
    return sorted(keep), sorted(held)


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
    folds = stratified_folds([str(e.label) for e in examples], k, opts.seed)
    vectors = load_vectors(opts.embeddings, [tokenize(e.text) for e in examples], dim=opts.embedding_dim,
                           seed=opts.seed) if opts.embeddings != "none" else None
    t0 = time.perf_counter()
    results = []
    for f, test_idx in enumerate(folds, 1):
        t_fold = time.perf_counter()
        test_set = set(test_idx)
        train = [e for i, e in enumerate(examples) if i not in test_set]
        test = [examples[i] for i in test_idx]
        clf, summary = train_classifier(train, None, opts, vectors=vectors, progress=progress)
        acc = evaluate(clf, test, opts.eval_batch_size)["accuracy"]
        seconds = round(time.perf_counter() - t_fold, 2)
        results.append({"fold": f, "train": len(train), "test": len(test), "accuracy": acc,
                        "dev_accuracy": summary["best_dev"], "best_epoch": summary["best_epoch"],
                        "epochs": summary["epochs"], "seconds": seconds})
        say(f"fold {f}/{k}: accuracy {acc:.4f} (best epoch {summary['best_epoch']}, {seconds:.0f}s)")
    accs = np.array([r["accuracy"] for r in results])
    return {
        "k": k, "seed": opts.seed, "examples": len(examples),
        "mean_accuracy": float(accs.mean()), "std_accuracy": float(accs.std(ddof=1)) if k > 1 else 0.0,
        "min_accuracy": float(accs.min()), "max_accuracy": float(accs.max()),
        "folds": results, "minutes": round((time.perf_counter() - t0) / 60, 2), "options": asdict(opts),
    }


# --------------------------------------------------------------------------- evaluation


def classification_scores(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] = ()) -> dict:
    """Accuracy, per-class precision/recall/F1, macro F1 (over the classes in ``gold``) and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(gold) != len(pred):
        raise ValueError("gold and predicted label lists differ in length")
    names = list(dict.fromkeys([*labels, *sorted(set(gold) | set(pred))]))
    n = len(gold)
    if n:
        p, r, f, support = precision_recall_fscore_support(gold, pred, labels=names, zero_division=0)
        cm = confusion_matrix(gold, pred, labels=names).tolist()
    else:
        p = r = f = support = np.zeros(len(names))
        cm = [[0] * len(names) for _ in names]
    per_class = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                       "support": int(support[i])} for i, lab in enumerate(names)}
    present = [s["f1"] for s in per_class.values() if s["support"] > 0]
    return {
        "accuracy": float(accuracy_score(gold, pred)) if n else 0.0,
        "macro_f1": sum(present) / len(present) if present else 0.0,
        "examples": n,
        "per_class": per_class,
        "confusion": {"labels": names, "matrix": cm, "rows": "gold", "columns": "predicted"},
    }


def evaluate(clf: Classifier, examples: Sequence[Example], batch_size: int = 256) -> dict:
    """:func:`classification_scores` of the classifier on labelled examples."""
    probs = clf.predict_proba([e.text for e in examples], batch_size)
    pred = [clf.labels[i] for i in probs.argmax(1)]
    gold = [str(e.label) for e in examples]
    scores = classification_scores(gold, pred, clf.labels)
    unknown = sorted(set(gold) - set(clf.labels))
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
    for lab, s in scores["per_class"].items():
        lines.append(f"| {lab} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    names = scores["confusion"]["labels"]
    lines += ["", "Confusion matrix (rows: gold, columns: predicted)", "",
              "| gold \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for lab, row in zip(names, scores["confusion"]["matrix"], strict=True):
        lines.append(f"| {lab} | " + " | ".join(str(x) for x in row) + " |")
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
    for e, p in zip(examples, probs, strict=True):
        b = int(p.argmax())
        rec: dict = {"source": e.source, "line": e.line}
        if e.id is not None:
            rec["id"] = e.id
        rec.update(text=e.text, label=clf.labels[b], probability=round(float(p[b]), 6),
                   probabilities={lab: round(float(x), 6) for lab, x in zip(clf.labels, p, strict=True)})
        if e.label is not None:
            rec["gold"] = e.label
        out.append(rec)
    return out


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    if str(path) == "-":
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
