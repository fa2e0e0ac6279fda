"""``tagger train``: fit a BiLSTM-CRF on a prepared directory.

Training goes through :mod:`tagger.training` (deterministic for a seed, checkpointed after every
epoch, resumable after a kill so that it ends exactly as an uninterrupted run would); this
module holds the options, the tagger's :class:`~tagger.training.loop.Task` and the command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tagger import metrics, schemes
from tagger.errors import TaggerError
from tagger.features import BATCH_TOKENS, EncodedCorpus, Featurizer, length_batches
from tagger.nn.bilstm_crf import CHAR_ENCODERS, BiLSTMCRF, ModelConfig
from tagger.options import bounds, check_fields, from_toml, option
from tagger.predict import save_tagger_static, tagger_config
from tagger.prepared import Prepared, load_prepared
from tagger.training import distributed
from tagger.training.batches import epoch_batches
from tagger.training.loop import Epoch, Recipe, Step, Task, Trainer
from tagger.training.optim import OPTIMIZERS, constant, inverse_decay
from tagger.training.rundir import run_dir, run_options
from tagger.training.setup import DEVICE_PATTERN, setup


def _model_bound(name: str, help: str, default, **kw):
    """A training option that sets the ModelConfig field ``name``, with that field's bounds."""
    lo, hi = bounds(ModelConfig, name)
    return option(default, help=help, min=lo, max=hi, **kw)


@dataclass
class TrainOptions:
    """Training and architecture options; the defaults are the CoNLL-2003 recipe (see README)."""

    epochs: int = option(100, help="Maximum number of epochs.", min=1)
    batch_size: int = option(16, help="Sentences per mini-batch.", min=1)
    optimizer: str = option("sgd", help="sgd (momentum, lr decay) | adam | adamw.", choices=OPTIMIZERS)
    # 0.025 rather than Ma & Hovy's 0.015 (at batch 10): on CoNLL-2003 dev, 4-minute runs reached F1
    # 93.1-93.3 against 92.7, and 15 minutes gave test F1 90.9 against 90.5 (reports/speed.md).
    lr: float = option(0.025, help="Learning rate.", above=0.0)
    momentum: float = option(0.9, help="SGD momentum.", min=0.0, below=1.0)
    lr_decay: float = option(0.05, help="SGD decay: lr / (1 + decay * (epoch - 1)) (Ma & Hovy 2016).", min=0.0)
    weight_decay: float = option(0.0, help="L2 weight decay.", min=0.0)
    clip: float = option(5.0, help="Gradient-norm clipping (0 = off).", min=0.0)
    patience: int = option(15, help="Stop after this many epochs without dev improvement.", min=1)
    max_minutes: float = option(0.0, help="Stop after this many minutes of training (0 = no limit).", min=0.0)
    budget_decay: float = option(0.25, help="With --max-minutes: over this last share of the time the learning "
                                 "rate decays linearly to zero, ending at the limit (0 = off).", min=0.0, max=1.0)
    seed: int = option(1, help="Random seed (same seed and --threads, same model on the same machine).")
    device: str = option("auto", help="auto | cpu | cuda | cuda:N.", pattern=DEVICE_PATTERN)
    threads: int = option(0, help="Torch CPU threads (0 = the cores other processes leave free, re-measured "
                         "every few seconds).", min=0)
    eval_batch_size: int = option(256, help="Sentences per batch when scoring dev.", min=1)
    # architecture (bounds from ModelConfig: the same as when a model directory is loaded)
    char_encoder: str = option("cnn", help="cnn (Ma & Hovy) | lstm (Lample et al.) | none.", choices=CHAR_ENCODERS)
    char_dim: int = _model_bound("char_dim", "Character embedding size.", 30)
    char_filters: int = _model_bound("char_filters", "Char CNN filters (or char LSTM size per direction).", 50)
    char_kernel: int = _model_bound("char_kernel", "Char CNN kernel width.", 3)
    casing: bool = option(True, help="Casing feature (lower, upper, title, numeric...).")
    context: int = _model_bound("context", "Tokens of document context the BiLSTM reads on each side of a "
                                "sentence (neighbouring sentences of its document; 0 = none).", 0)
    feature_dim: int = _model_bound("feature_dim", "Embedding size of each feature column (prepare "
                                    "--feature-columns).", 20)
    hidden: int = _model_bound("hidden", "BiLSTM hidden size per direction.", 200)
    layers: int = _model_bound("layers", "BiLSTM layers.", 1)
    dropout: float = _model_bound("dropout", "Dropout rate.", 0.5, below=1.0)
    word_dropout: float = _model_bound("word_dropout", "Share of training tokens replaced by <unk>.", 0.05, below=1.0)
    freeze_embeddings: bool = option(False, help="Keep the pretrained word vectors fixed.")
    crf: bool = option(True, help="Use the CRF layer (else softmax).")
    constrained: bool = option(True, help="Forbid ill-formed BIO/BIOES transitions when decoding.")
    constrain_training: bool = option(False, help="Apply the same constraints in the training loss.")
    ema: float = option(0.999, help="Evaluate and save an exponential moving average of the weights with this "
                        "decay (Polyak averaging; 0 = off, the raw weights).", min=0.0, below=1.0)

    def validate(self) -> None:
        check_fields(self)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> TrainOptions:
        """Options from a TOML file (a flat table, or a [train] table); ``overrides`` win."""
        return from_toml(cls, path, "train", **overrides)

    def recipe(self) -> Recipe:
        sgd = self.optimizer == "sgd"
        return Recipe(epochs=self.epochs, optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                      schedule=inverse_decay(self.lr, self.lr_decay) if sgd else constant(self.lr),
                      weight_decay=self.weight_decay, clip=self.clip, patience=self.patience,
                      max_minutes=self.max_minutes, ema=self.ema, seed=self.seed,
                      budget_decay=self.budget_decay, stop_mid_epoch=self.budget_decay > 0 and self.max_minutes > 0)


def evaluate_split(model: BiLSTMCRF, encoded: EncodedCorpus, gold: list[list[str]], itos: list[str], task: str,
                   scheme: str, batch_size: int, device: str) -> tuple[dict, list[list[str]]]:
    """Decode encoded sentences and score them against gold label strings."""
    model.eval()
    lengths = encoded.lengths.tolist()
    preds: list[list[str]] = [[] for _ in lengths]
    with torch.inference_mode():
        for idx in length_batches(encoded.row_lengths().tolist(), batch_size, max_tokens=BATCH_TOKENS):
            batch = encoded.batch(idx).to(device)
            paths, _ = model.decode(batch)
            for b, i in enumerate(idx):
                preds[i] = [itos[t] for t in paths[b, : lengths[i]].tolist()]
    return metrics.score(gold, preds, task, scheme), preds


class TaggerTask(Task):
    """Sentence batches of a prepared directory and the CRF (or softmax) loss."""

    model: BiLSTMCRF
    unit = item = "sent"

    def __init__(self, prep: Prepared, prepared_dir: str | Path, opts: TrainOptions, device: str) -> None:
        self.prep, self.opts, self.device = prep, opts, device
        labels = prep.labels
        feat = Featurizer(prep.lookup(), prep.chars, labels, prep.features)
        tokens, tags = prep.sentences("train")
        values = prep.feature_values("train")
        columns = values if values is not None else [None] * len(tokens)
        train = [feat.encode(t, lab, f) for t, lab, f in zip(tokens, tags, columns, strict=True)]
        for e in train:
            e.tags = [max(t, 0) for t in e.tags or []]  # labels come from train: never unknown
        self.train = EncodedCorpus(train)
        self.n_tokens = int(self.train.lengths.sum())
        if opts.context:
            self.train.set_context(prep.documents("train"), opts.context)
        self.lengths = self.train.row_lengths().tolist()  # what a batch pads: sentences with their context
        self.has_dev = "dev" in prep.dataset
        if self.has_dev:
            dev_tokens, self.dev_gold = prep.sentences("dev")
            dev_values = prep.feature_values("dev")
            dev_columns = dev_values if dev_values is not None else [None] * len(dev_tokens)
            self.dev = EncodedCorpus([feat.encode(t, None, f) for t, f in zip(dev_tokens, dev_columns, strict=True)])
            if opts.context:
                self.dev.set_context(prep.documents("dev"), opts.context)
        self.headline = "f1" if prep.task == "entity" else "accuracy"
        mc = ModelConfig(
            num_words=len(prep.words), num_extra=len(prep.extra), word_dim=int(prep.matrix.shape[1]),
            num_chars=len(prep.chars), num_tags=len(labels), freeze_words=opts.freeze_embeddings,
            char_encoder=opts.char_encoder, char_dim=opts.char_dim, char_filters=opts.char_filters,
            char_kernel=opts.char_kernel, casing=opts.casing, hidden=opts.hidden, layers=opts.layers,
            dropout=opts.dropout, word_dropout=opts.word_dropout, use_crf=opts.crf,
            feature_sizes=[len(v) for v in prep.features], feature_dim=opts.feature_dim, context=opts.context,
        )
        self.model = BiLSTMCRF(mc)
        self.model.word_embed.set_pretrained(prep.matrix, prep.extra_matrix)
        self.constrained = self._constrain()
        self.model.to(device)
        data_opts = {k: prep.manifest["options"].get(k)
                     for k in ("format", "token_column", "label_column", "label_field", "encoding")}
        self.config = tagger_config(mc, prep.words, prep.chars, labels, lowercase=prep.lowercase,
                                    digits=prep.digits, task=prep.task, scheme=prep.scheme, data=data_opts,
                                    constrained=self.constrained,
                                    training={"prepared": str(prepared_dir), "options": asdict(opts)},
                                    features=list(zip(prep.feature_names, prep.features, strict=True)))

    def _constrain(self) -> bool:
        """Set the CRF's allowed transitions; True when they follow the tag scheme."""
        prep, opts, crf = self.prep, self.opts, self.model.crf
        constrained = bool(opts.crf and opts.constrained and prep.task == "entity")
        if crf is not None:
            itos = prep.labels.itos
            scheme = prep.scheme if prep.task == "entity" else "plain"
            start, trans, end = schemes.allowed_transitions(itos, scheme)
            if not constrained:  # only forbid the padding label
                start = [i != 0 for i in range(len(itos))]
                trans = [[i != 0 and j != 0 for j in range(len(itos))] for i in range(len(itos))]
                end = list(start)
            crf.set_constraints(start, trans, end, in_training=constrained and opts.constrain_training)
        return constrained

    def size(self) -> int:
        return len(self.train)

    def batches(self, epoch: int) -> list[list[int]]:
        return epoch_batches(self.lengths, self.opts.batch_size, self.opts.seed, epoch)

    def step(self, idx: list[int]) -> Step:
        batch = self.train.batch(idx).to(self.device)
        loss = self.model.loss(batch, reduction="sum")
        return Step(loss / len(idx), loss.item(), len(idx), len(idx))

    def evaluate(self) -> dict[str, Any]:
        prep = self.prep
        scores, _ = evaluate_split(self.model, self.dev, self.dev_gold, prep.labels.itos, prep.task, prep.scheme,
                                   self.opts.eval_batch_size, self.device)
        return scores

    def row(self, epoch: Epoch) -> dict:
        return {"epoch": epoch.epoch, "loss": epoch.loss, "lr": epoch.lr,
                "dev": {k: v for k, v in epoch.dev.items() if k != "per_type"},
                "seconds": round(epoch.seconds, 2), "train_seconds": round(epoch.train_seconds, 2),
                "sentences_per_s": round(epoch.items / epoch.train_seconds, 1),
                "tokens_per_s": round(self.n_tokens / epoch.train_seconds, 1), "threads": round(epoch.threads, 2),
                "best": epoch.improved}

    def write_files(self, out: Path) -> None:
        save_tagger_static(out, self.config, self.prep.extra, self.prep.extra_matrix)


def train(
    prepared_dir: str | Path,
    out: str | Path,
    opts: TrainOptions | None,
    *,
    given: Mapping[str, Any] | None = None,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Train a tagger into ``out``; returns a summary with the best dev score and per-epoch metrics.

    ``given`` holds the options the user gave explicitly (command-line flags and ``--config``
    values). With ``resume`` the configuration saved in ``out`` is used: a given option must
    equal its saved value unless it is one of
    :data:`~tagger.training.resume.RESUME_OVERRIDES` (``given=None``: the fields of ``opts``
    that differ from the defaults count as given).
    """
    say = distributed.main_log(log) or (lambda m: None)
    run = run_dir(out, "train", resume=resume, force=force, log=say)
    opts = run_options(run, TrainOptions, opts, given)
    assert run is not None
    prep = load_prepared(prepared_dir)
    if "train" not in prep.dataset:
        raise TaggerError(f"{prepared_dir}: no train split")
    if "dev" not in prep.dataset:
        say("warning: no dev split; the model of the last epoch is kept")
    device = setup(opts.seed, opts.device)
    run.create()
    task = TaggerTask(prep, prepared_dir, opts, device)
    trainer = Trainer(task, opts.recipe(), run, log=say, progress=progress, threads=opts.threads)
    trainer.fit()
    summary = {"model": str(out), "task": prep.task, **trainer.summary()}
    run.write_summary(summary)
    return summary
