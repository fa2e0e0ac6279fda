"""The auxiliary stages: ``tagger classify`` (sentence classifier) and ``tagger generate`` (language model)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tagger.cli.common import (
    ENCODING,
    FORCE,
    NPROC,
    QUIET,
    TaggerGroup,
    best_text,
    launch_ranks,
    resume_option,
    stderr_log,
)
from tagger.commands.classify import ClassifierOptions
from tagger.commands.generate import GeneratorOptions
from tagger.declare import Command, Headline, InputPath
from tagger.errors import TaggerError
from tagger.fsutil import atomic_write_bytes, atomic_write_json, os_error
from tagger.options import click_options, given

_LABEL_FILES = click.option("--label-file", "label_files", multiple=True, metavar="LABEL=FILE",
                            type=InputPath(keyed=True, dir_okay=False),
                            help="A file of texts (one per line) that all have LABEL, e.g. pos=rt-polarity.pos. "
                                 "Repeatable.")
_CLASSIFY_FORMAT = click.option("--format", "format_", type=click.Choice(["auto", "tsv", "csv", "jsonl", "lines"]),
                                default="auto", show_default=True,
                                help="Input format (auto: by extension, else by the first line).")


def _refuse_existing(out: str | None, force: bool) -> None:
    if out and Path(out).exists() and not force:
        raise TaggerError(f"{out} already exists (use --force to replace it)")


# --------------------------------------------------------------------------- classify


@click.group(cls=TaggerGroup)
def classify() -> None:
    """Sentence classification with a (Bi)LSTM: train, evaluate, predict."""


@classify.command("train", cls=Command, headline=Headline("cv.json", "mean_accuracy", label="cv accuracy"))
@click.option("--train", "train_files", multiple=True, type=InputPath(dir_okay=False),
              help="Labelled data: text<TAB>label, CSV (text,label header) or JSONL. Repeatable.")
@_LABEL_FILES
@click.option("--dev", "dev_files", multiple=True, type=InputPath(dir_okay=False),
              help="Labelled dev data for early stopping (default: a seeded split of train).")
@click.option("--out", type=click.Path(file_okay=False), help="Model directory to write (optional with --cv).")
@click.option("--cv", type=int, default=0,
              help="Run K-fold stratified cross-validation and report mean ± std accuracy.")
@click.option("--cv-report", type=click.Path(dir_okay=False), help="With --cv: write the fold results as JSON here.")
@_CLASSIFY_FORMAT
@ENCODING
@FORCE
@resume_option(ClassifierOptions)
@QUIET
@NPROC
@click_options(ClassifierOptions)
@click.pass_context
def classify_train(ctx, train_files, label_files, dev_files, out, cv, cv_report, format_, encoding, force, resume,
                   quiet, nproc, **flags):
    """Train a sentence classifier (or cross-validate one with --cv K); data-parallel under torchrun / --nproc."""
    from tagger.commands.classify import cross_validate, train_classifier
    from tagger.formats.examples import read_data
    from tagger.training import distributed

    if nproc and nproc > 1:
        launch_ranks(ctx, nproc)
    main = distributed.env_rank() == 0
    quiet = quiet or not main

    if not out and not cv:
        raise click.UsageError("--out is required (unless --cv K only cross-validates)")
    _refuse_existing(out, force or resume)
    user = given(flags)
    opts = ClassifierOptions(**user)
    opts.validate()
    log = stderr_log(quiet)
    examples = read_data(train_files, label_files, format_, encoding)
    if cv:
        if dev_files:
            raise click.UsageError("--dev cannot be used with --cv (each fold holds out its own dev split)")
        res = cross_validate(examples, cv, opts, log=log, progress=not quiet)
        if cv_report and main:
            atomic_write_json(cv_report, res)
        if main:
            click.echo(f"{cv}-fold cross-validation accuracy: {res['mean_accuracy']:.4f} ± {res['std_accuracy']:.4f} "
                       f"({len(examples)} examples, {res['minutes']:.1f} min)")
        if not out:
            return
    dev = read_data(dev_files, (), format_, encoding) if dev_files else None
    clf, summary = train_classifier(
        examples, dev, opts, out=out, given=user, resume=resume, force=force, log=log, progress=not quiet,
        cv={k: res[k] for k in ("k", "mean_accuracy", "std_accuracy", "folds")} if cv else None)
    if cv and main:
        atomic_write_json(Path(out) / "cv.json", res)
    if not quiet:
        best_txt = best_text("accuracy", summary["best_dev"], summary["best_epoch"], "no dev data")
        click.echo(f"trained {summary['epochs']} epochs in {summary['minutes']:.1f} min; {best_txt}; "
                   f"labels {', '.join(summary['labels'])}; model in {out}")
    distributed.shutdown()


@classify.command("evaluate", cls=Command, headline=Headline("metrics.json", "accuracy"))
@click.argument("model_dir", metavar="MODEL", type=InputPath())
@click.option("--data", "data_files", multiple=True, type=InputPath(dir_okay=False),
              help="Labelled data (text<TAB>label, CSV, JSONL). Repeatable.")
@_LABEL_FILES
@_CLASSIFY_FORMAT
@ENCODING
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write metrics.json and report.md here.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def classify_evaluate(model_dir, data_files, label_files, format_, encoding, out_dir, as_json, batch_size):
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of a classifier."""
    from tagger.commands.classify import Classifier, evaluate, format_report, write_evaluation
    from tagger.formats.examples import read_data

    clf = Classifier.load(model_dir)
    if not data_files and not label_files:
        raise click.UsageError("give --data FILE or --label-file LABEL=FILE")
    examples = read_data(data_files, label_files, format_, encoding)
    scores = evaluate(clf, examples, batch_size)
    data_desc = ", ".join([*map(str, data_files), *label_files])
    if out_dir:
        write_evaluation(out_dir, scores, str(model_dir), data_desc)
    if as_json:
        click.echo(json.dumps(scores, indent=2, ensure_ascii=False))
    else:
        click.echo(format_report(scores, str(model_dir), data_desc), nl=False)


@classify.command("predict")
@click.argument("model_dir", metavar="MODEL", type=InputPath())
@click.argument("inputs", nargs=-1, required=True, type=InputPath(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="JSONL file to write ('-' for stdout).")
@click.option("--format", "format_", type=click.Choice(["auto", "tsv", "csv", "jsonl", "lines"]), default="auto",
              show_default=True, help="Input format (auto: .jsonl/.csv/.tsv by extension, else one text per line).")
@ENCODING
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def classify_predict(model_dir, inputs, out, format_, encoding, batch_size):
    """Label every input line/record (order kept, nothing dropped) → JSONL with probabilities."""
    from tagger.commands.classify import Classifier, predict_records, write_jsonl

    clf = Classifier.load(model_dir)
    records = predict_records(clf, inputs, format_, encoding, batch_size)
    write_jsonl(out, records)
    if out != "-":
        click.echo(f"wrote {len(records)} predictions to {out}", err=True)


# --------------------------------------------------------------------------- generate


_TEXT_FORMAT = click.option("--format", "format_", type=click.Choice(["auto", "text", "conll", "conllu"]),
                            default="auto", show_default=True,
                            help="text = one tokenised sentence per line; CoNLL files use the token column.")
_TOKEN_COLUMN = click.option("--token-column", type=int, default=0, show_default=True, help="CoNLL token column.")


@click.group(cls=TaggerGroup)
def generate() -> None:
    """Word-level LSTM language model: train, sample text, evaluate perplexity."""


@generate.command("train")
@click.option("--text", "text_files", multiple=True, required=True, type=InputPath(dir_okay=False),
              help="Training text (one sentence per line) or CoNLL file. Repeatable.")
@click.option("--dev", "dev_files", multiple=True, type=InputPath(dir_okay=False),
              help="Held-out text for model selection and lr decay.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@_TEXT_FORMAT
@_TOKEN_COLUMN
@ENCODING
@FORCE
@resume_option(GeneratorOptions)
@QUIET
@NPROC
@click_options(GeneratorOptions)
@click.pass_context
def generate_train(ctx, text_files, dev_files, out, format_, token_column, encoding, force, resume, quiet, nproc,
                   **flags):
    """Train an LSTM language model on text; data-parallel under torchrun / --nproc (each process its streams)."""
    from tagger.commands.generate import train_generator
    from tagger.formats.read import read_texts
    from tagger.training import distributed

    if nproc and nproc > 1:
        launch_ranks(ctx, nproc)
    quiet = quiet or distributed.env_rank() != 0

    _refuse_existing(out, force or resume)
    user = given(flags)
    opts = GeneratorOptions(**user)
    opts.validate()
    train_s = read_texts(text_files, format_, encoding, token_column)
    dev_s = read_texts(dev_files, format_, encoding, token_column) if dev_files else None
    info = {"text": [str(p) for p in text_files], "dev": [str(p) for p in dev_files], "format": format_,
            "token_column": token_column, "encoding": encoding}
    gen, summary = train_generator(train_s, dev_s, opts, out=out, given=user, resume=resume, force=force,
                                   log=stderr_log(quiet), progress=not quiet, data_info=info)
    if not quiet:
        best_txt = best_text("perplexity", summary["best_dev"], summary["best_epoch"], "no dev text", digits=2)
        click.echo(f"trained {summary['epochs']} epochs in {summary['minutes']:.1f} min; {best_txt}; "
                   f"vocabulary {summary['vocab_size']}; model in {out}")
    distributed.shutdown()


@generate.command("sample")
@click.argument("model_dir", metavar="MODEL", type=InputPath())
@click.option("--seed-text", default="", help="Text to continue (tokens separated by spaces).")
@click.option("--words", type=int, default=20, show_default=True, help="Words to generate.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="0 = greedy.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Sample among the k likeliest words (0 = all).")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling mass (1 = off).")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed (same seed, same text).")
@click.option("--stop-at-eos", is_flag=True, help="Stop at the end of the sentence.")
@click.option("--no-unk", is_flag=True, help="Never generate <unk>.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the sample (text, or JSON with --json) here.")
def generate_sample(model_dir, seed_text, words, temperature, top_k, top_p, seed, stop_at_eos, no_unk, as_json, out):
    """Continue a seed text with the language model."""
    from tagger.commands.generate import Generator

    gen = Generator.load(model_dir)
    s = gen.sample(seed_text, words, temperature, top_k, top_p, seed, stop_at_eos, allow_unk=not no_unk)
    if s.unknown_seed and not as_json:
        click.echo(f"note: seed words unknown to the model (read as <unk>): {' '.join(s.unknown_seed)}", err=True)
    text = json.dumps(s.to_json(), ensure_ascii=False) if as_json else s.text
    click.echo(text)
    if out:
        atomic_write_bytes(out, (text + "\n").encode("utf-8"))


@generate.command("evaluate", cls=Command, headline=Headline("metrics.json", "perplexity"))
@click.argument("model_dir", metavar="MODEL", type=InputPath())
@click.option("--text", "text_files", multiple=True, required=True, type=InputPath(dir_okay=False),
              help="Held-out text or CoNLL file. Repeatable.")
@_TEXT_FORMAT
@_TOKEN_COLUMN
@ENCODING
@click.option("--baseline-train", multiple=True, type=InputPath(dir_okay=False),
              help="Also score a Kneser-Ney trigram trained on this text (same vocabulary).")
@click.option("--batch-size", type=int, default=1, show_default=True,
              help="Parallel streams (1 = every word sees its whole preceding context).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Also write metrics.json here.")
def generate_evaluate(model_dir, text_files, format_, token_column, encoding, baseline_train, batch_size, as_json,
                      out_dir):
    """Perplexity of held-out text."""
    from tagger.commands.generate import Generator, trigram_baseline
    from tagger.formats.read import read_texts

    gen = Generator.load(model_dir)
    sentences = read_texts(text_files, format_, encoding, token_column)
    res = gen.evaluate(sentences, batch_size=max(1, batch_size))
    if baseline_train:
        base = read_texts(baseline_train, format_, encoding, token_column)
        res["trigram_perplexity"] = trigram_baseline(gen.vocab, base, sentences)["perplexity"]
    if out_dir:
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(out_dir, exc) from None
        atomic_write_json(Path(out_dir) / "metrics.json", {**res, "model": str(model_dir),
                                                           "text": [str(p) for p in text_files]})
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        click.echo(f"perplexity: {res['perplexity']:.2f}")
        if "trigram_perplexity" in res:
            click.echo(f"trigram perplexity: {res['trigram_perplexity']:.2f}")
        click.echo(f"tokens: {res['tokens']} (<unk> rate {res['unk_rate']:.2%})", err=True)
