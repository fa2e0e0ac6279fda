"""Command-line interface: thin click commands over the library functions."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tagger import __version__
from tagger.errors import TaggerError


class TaggerGroup(click.Group):
    """A click group that turns :class:`TaggerError` into a one-line message and exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TaggerError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=TaggerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagger")
def main() -> None:
    """Sequence labeling with a BiLSTM-CRF: prepare → train → evaluate → annotate."""


def _label_column(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def format_options(f):
    """Corpus-format options shared by prepare and evaluate."""
    opts = [
        click.option("--format", "format_", type=click.Choice(["auto", "conll", "conllu"]), default="auto",
                     show_default=True, help="Input format (auto detects CoNLL-U by extension or content)."),
        click.option("--token-column", type=int, default=None, help="CoNLL token column [default: 0]."),
        click.option("--label-column", default=None,
                     help="CoNLL label column (default: last; negative counts from the end) or, "
                          "for --dataset, the label field name (e.g. ner_tags)."),
        click.option("--label-field", type=click.Choice(["upos", "xpos"]), default=None,
                     help="CoNLL-U field to tag [default: upos]."),
        click.option("--encoding", default=None, help="Text encoding of input files [default: utf-8]."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@main.command()
@click.option("--train", type=click.Path(dir_okay=False), help="Training corpus file.")
@click.option("--dev", type=click.Path(dir_okay=False), help="Development corpus file.")
@click.option("--test", type=click.Path(dir_okay=False), help="Test corpus file.")
@click.option("--dataset", help="A HuggingFace datasets name, a save_to_disk directory or a local data file.")
@click.option("--dataset-config", default=None, help="Configuration name for --dataset.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Prepared directory to write.")
@format_options
@click.option("--dev-fraction", type=float, default=0.0, show_default=True,
              help="Carve a seeded dev split of this share from train when there is no dev file.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--scheme", type=click.Choice(["bioes", "iob2", "iob1", "keep"]), default="bioes", show_default=True,
              help="Tag scheme to train with (entity tags only; plain labels are never converted).")
@click.option("--input-scheme", type=click.Choice(["auto", "iob1", "iob2", "bioes", "plain"]), default="auto",
              show_default=True, help="Scheme of the input tags.")
@click.option("--min-count", type=int, default=1, show_default=True, help="Minimum count of a training word.")
@click.option("--lowercase/--no-lowercase", default=False, show_default=True, help="Lowercase word keys.")
@click.option("--normalize-digits/--no-normalize-digits", "digits", default=True, show_default=True,
              help="Map digits to 0 in word keys.")
@click.option("--embeddings", default="glove-6b-50d", show_default=True,
              help="none | glove-6b-50d | word2vec | path to a GloVe/word2vec/fastText file.")
@click.option("--embedding-dim", type=int, default=100, show_default=True,
              help="Dimension for --embeddings none/word2vec.")
@click.option("--unlabeled-text", multiple=True, type=click.Path(dir_okay=False),
              help="Extra text (one sentence per line) for --embeddings word2vec.")
@click.option("--extend-vocab/--no-extend-vocab", default=True, show_default=True,
              help="Keep pretrained vectors of words unseen in training for use at prediction time.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def prepare(train, dev, test, dataset, dataset_config, out, format_, token_column, label_column, label_field,
            encoding, dev_fraction, seed, scheme, input_scheme, min_count, lowercase, digits, embeddings,
            embedding_dim, unlabeled_text, extend_vocab, force, quiet):
    """Read corpora, build vocabularies and embeddings, write a prepared directory."""
    from tagger.commands.prepare import PrepareOptions, format_summary, prepare as run_prepare

    opts = PrepareOptions(
        train=train, dev=dev, test=test, dataset=dataset, dataset_config=dataset_config,
        format=format_, token_column=0 if token_column is None else token_column,
        label_column=-1 if label_column is None else _label_column(label_column),
        label_field=label_field or "upos", encoding=encoding or "utf-8",
        dev_fraction=dev_fraction, seed=seed, scheme=scheme, input_scheme=input_scheme,
        min_count=min_count, lowercase=lowercase, digits=digits, embeddings=embeddings,
        embedding_dim=embedding_dim, unlabeled_text=list(unlabeled_text), extend_vocab=extend_vocab,
    )
    log = None if quiet else (lambda m: click.echo(f"[prepare] {m}", err=True))
    manifest = run_prepare(opts, out, force=force, log=log, progress=not quiet)
    if not quiet:
        click.echo(format_summary(manifest))
        click.echo(f"wrote {out} in {manifest['seconds']:.1f}s")


def _train_option_flags(f):
    """One flag per TrainOptions field (defaults None: the config file or defaults decide)."""
    from dataclasses import fields

    from tagger.commands.train import TrainOptions

    helps = {
        "epochs": "Maximum number of epochs.", "batch_size": "Sentences per mini-batch.",
        "optimizer": "sgd (momentum, lr decay) | adam | adamw.", "lr": "Learning rate.",
        "lr_decay": "SGD decay: lr / (1 + decay * epoch).", "clip": "Gradient-norm clipping (0 = off).",
        "patience": "Stop after this many epochs without dev improvement.",
        "max_minutes": "Stop after this many minutes of training (0 = no limit).",
        "device": "auto | cpu | cuda.", "threads": "Torch CPU threads (0 = default).",
        "char_encoder": "cnn | lstm | none.", "hidden": "BiLSTM hidden size per direction.",
        "layers": "BiLSTM layers.", "dropout": "Dropout rate.",
        "word_dropout": "Share of training tokens replaced by <unk>.",
        "freeze_embeddings": "Keep the pretrained word vectors fixed.", "crf": "Use the CRF layer (else softmax).",
        "constrained": "Forbid ill-formed BIO/BIOES transitions when decoding.",
        "constrain_training": "Apply the same constraints in the training loss.",
    }
    for fld in reversed(fields(TrainOptions)):
        name = fld.name.replace("_", "-")
        default = getattr(TrainOptions(), fld.name)
        if isinstance(default, bool):
            f = click.option(f"--{name}/--no-{name}", fld.name, default=None,
                             help=f"{helps.get(fld.name, '')} [default: {str(default).lower()}]")(f)
        else:
            f = click.option(f"--{name}", fld.name, type=type(default), default=None,
                             help=f"{helps.get(fld.name, '')} [default: {default}]")(f)
    return f


@main.command()
@click.argument("prepared", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of training options.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@_train_option_flags
def train(prepared, out, config_file, resume, force, quiet, **flags):
    """Train a BiLSTM-CRF on a prepared directory."""
    from tagger.commands.train import TrainOptions, train as run_train

    given = {k: v for k, v in flags.items() if v is not None}
    if resume:
        from tagger.commands.train import RESUME_OVERRIDES

        fixed = sorted(set(given) - set(RESUME_OVERRIDES))
        if fixed or config_file:
            raise TaggerError(
                "--resume continues with the saved configuration; only "
                + ", ".join("--" + k.replace("_", "-") for k in RESUME_OVERRIDES)
                + f" may be given (got {', '.join('--' + k.replace('_', '-') for k in fixed) or '--config'})"
            )
    opts = TrainOptions.from_toml(config_file, **given) if config_file else TrainOptions(**given)
    log = None if quiet else (lambda m: click.echo(m, err=True))
    summary = run_train(prepared, out, opts, resume=resume, force=force, log=log, progress=not quiet)
    if not quiet:
        best = summary["best_dev"]
        metric = "F1" if summary["task"] == "entity" else "accuracy"
        best_txt = f"best dev {metric} {best:.4f} (epoch {summary['best_epoch']})" if best is not None else "no dev split"
        click.echo(f"trained {summary['epochs']} epochs in {summary['minutes']:.1f} min; {best_txt}; model in {out}")


@main.command()
@click.argument("model_dir", type=click.Path())
@click.option("--data", required=True, metavar="FILE|PREPARED_DIR[:split]",
              help="Gold data: a corpus file, or a prepared directory and split [default split: test].")
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory for metrics.json, predictions.conll, report.md and the plots.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of the summary table.")
@format_options
@click.option("--batch-size", type=int, default=256, show_default=True, help="Sentences per prediction batch.")
@click.option("--threads", type=int, default=0, show_default=True,
              help="CPU threads for prediction (0 = torch's default, fewer on a busy machine).")
@click.option("--device", default="cpu", show_default=True, help="auto | cpu | cuda.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (and --json output).")
def evaluate(model_dir, data, out, as_json, format_, token_column, label_column, label_field, encoding,
             batch_size, threads, device, quiet):
    """Score a model on gold data: strict and conlleval figures, error analysis, report and plots.

    Format options default to those the model was trained with.
    """
    import json

    from click.core import ParameterSource

    from tagger.commands.evaluate import evaluate as run_evaluate, format_summary

    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("format_") != ParameterSource.DEFAULT
    log = None if quiet else (lambda m: click.echo(m, err=True))
    result = run_evaluate(
        model_dir, data, out, batch_size=batch_size, threads=threads, device=device, log=log,
        format=format_ if explicit else None, token_column=token_column,
        label_column=None if label_column is None else _label_column(label_column),
        label_field=label_field, encoding=encoding,
    )
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    elif not quiet:
        click.echo(format_summary(result))
        if out:
            click.echo(f"wrote {out} ({', '.join(result['files'])}) in {result['seconds']:.1f}s")
        else:
            click.echo(f"evaluated in {result['seconds']:.1f}s")


@main.command("run")
@click.argument("pipeline_file", metavar="PIPELINE.toml", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a pipeline variable ${KEY} (wins over the environment and [vars]); repeatable.")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Directory for the stage outputs [default: runs/<pipeline name>].")
@click.option("--force", "force", is_flag=False, flag_value="*", default=None, metavar="[STAGE]",
              help="Rerun every stage, or only STAGE (stages downstream of it rerun as their inputs change).")
@click.option("--from", "from_stage", metavar="STAGE", help="Start at this stage (earlier outputs are used as they are).")
@click.option("--until", "until_stage", metavar="STAGE", help="Stop after this stage.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would run; run nothing.")
def run_pipeline_cmd(pipeline_file, sets, workdir, force, from_stage, until_stage, dry_run):
    """Run a pipeline of tagger commands from a TOML file, skipping stages that are up to date.

    See tagger/pipeline.py for the file format; pipelines/sample.toml is an example.
    """
    from tagger.pipeline.runner import PipelineFailed, format_summary, parse_sets, run_pipeline

    if pipeline_file is None and force not in (None, "*"):
        pipeline_file, force = force, "*"  # `tagger run --force PIPELINE.toml`
    if pipeline_file is None:
        raise click.UsageError("missing argument PIPELINE.toml")
    try:
        summary = run_pipeline(pipeline_file, parse_sets(sets), workdir=workdir,
                               force=True if force == "*" else (force or False),
                               from_stage=from_stage, until_stage=until_stage, dry_run=dry_run)
    except PipelineFailed as exc:
        click.echo(format_summary(exc.summary))
        raise
    click.echo(format_summary(summary))


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True,
              help="Output file, '-' for stdout, or (several inputs / a directory) a directory mirroring the inputs.")
@click.option("--input-format", type=click.Choice(["auto", "text", "tokens", "conll", "conllu", "jsonl"]),
              default="auto", show_default=True, help="auto: by extension (.txt .conll .conllu .jsonl), then content.")
@click.option("--output-format", type=click.Choice(["auto", "conll", "jsonl"]), default="auto", show_default=True,
              help="auto: conll for CoNLL/CoNLL-U input, jsonl otherwise. Files are named INPUT + .conll/.jsonl.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Sentences per model batch.")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes predicting in parallel (forked: they share the loaded model).")
@click.option("--threads", type=int, default=0, show_default=True,
              help="Torch threads per process (0 = cores / workers, not counting cores other processes keep busy).")
@click.option("--nbest", type=int, default=0, show_default=True, help="Also write the K best tag sequences.")
@click.option("--glob", "glob_", default="*", show_default=True, help="File-name pattern inside input directories.")
@click.option("--max-length", type=int, default=1000, show_default=True,
              help="Longer sentences are tagged in pieces of this many tokens and rejoined.")
@click.option("--scheme", type=click.Choice(["model", "iob2", "bioes", "iob1"]), default="model", show_default=True,
              help="Tag scheme of the output (entity models).")
@click.option("--conllu-field", default="misc", show_default=True,
              help="CoNLL-U field for the prediction: misc (NER=TAG), misc:KEY, upos or xpos.")
@click.option("--resume", is_flag=True, help="Skip inputs whose output file already exists (it is complete).")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of the inputs.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary (problems are still reported).")
def annotate(model_dir, inputs, out, input_format, output_format, batch_size, workers, threads, nbest, glob_,
             max_length, scheme, conllu_field, resume, encoding, quiet):
    """Tag files, directories (recursively) or '-' (stdin) with a trained model.

    Exit status: 0 when every record was tagged, 1 when some records or files failed (they are
    listed on stderr; failed records still get an output record with an "error" field), 2 for
    usage errors.
    """
    from tagger.commands.annotate import AnnotateOptions, annotate_paths

    opts = AnnotateOptions(
        input_format=input_format, output_format=output_format, batch_size=batch_size, workers=workers,
        threads=threads, nbest=nbest, glob=glob_, max_length=max_length, scheme=scheme,
        conllu_field=conllu_field, resume=resume, encoding=encoding, progress=False if quiet else None,
    )
    # A fresh process: the model is loaded single-threaded, so forked workers may use threads.
    summary = annotate_paths(model_dir, list(inputs), out, opts, fork_safe=True)
    if not quiet or not summary.ok:
        click.echo(summary.format(), err=True)
    sys.exit(summary.exit_code)


# --------------------------------------------------------------------------- classify


def _classifier_options(f):
    """Flags for ClassifierOptions fields (default None: the dataclass default applies)."""
    from dataclasses import fields

    from tagger.commands.classify import ClassifierOptions

    helps = {
        "embeddings": "none | glove-6b-50d | word2vec | path to a GloVe/word2vec/fastText file.",
        "embedding_dim": "Dimension for --embeddings none/word2vec.", "lowercase": "Lowercase word keys.",
        "digits": "Map digits to 0 in word keys.", "min_count": "Minimum count of a training word.",
        "extend_vocab": "Keep pretrained vectors of words unseen in training.",
        "hidden": "LSTM hidden size (per direction).", "layers": "LSTM layers.",
        "bidirectional": "BiLSTM (else a forward LSTM).", "pooling": "last | max | mean (masked).",
        "dropout": "Dropout before the output layer.", "embed_dropout": "Dropout on the word vectors.",
        "word_dropout": "Share of training words replaced by <unk>.",
        "freeze_embeddings": "Keep the pretrained vectors fixed.", "epochs": "Maximum number of epochs.",
        "batch_size": "Examples per mini-batch.", "optimizer": "adam | adamw | sgd.", "lr": "Learning rate.",
        "patience": "Stop after this many epochs without dev improvement.",
        "dev_fraction": "Share of train held out for early stopping when there is no --dev.",
        "device": "auto | cpu | cuda.", "threads": "Torch CPU threads (0 = default).",
    }
    names = {"digits": "normalize-digits"}
    for fld in reversed(fields(ClassifierOptions)):
        default = getattr(ClassifierOptions(), fld.name)
        name = names.get(fld.name, fld.name.replace("_", "-"))
        if isinstance(default, bool):
            f = click.option(f"--{name}/--no-{name}", fld.name, default=None,
                             help=f"{helps.get(fld.name, '')} [default: {str(default).lower()}]")(f)
        elif fld.name == "pooling":
            f = click.option("--pooling", type=click.Choice(["last", "max", "mean"]), default=None,
                             help=f"{helps['pooling']} [default: {default}]")(f)
        else:
            f = click.option(f"--{name}", fld.name, type=type(default), default=None,
                             help=f"{helps.get(fld.name, '')} [default: {default}]")(f)
    return f


_CLASSIFY_FORMAT = click.option("--format", "format_", type=click.Choice(["auto", "tsv", "csv", "jsonl", "lines"]),
                                default="auto", show_default=True,
                                help="Input format (auto: by extension, else by the first line).")
_ENCODING = click.option("--encoding", default="utf-8", show_default=True,
                         help="Text encoding of the input files (e.g. latin-1).")


@main.group(cls=TaggerGroup)
def classify() -> None:
    """Sentence classification with a (Bi)LSTM: train, evaluate, predict."""


@classify.command("train")
@click.option("--train", "train_files", multiple=True, type=click.Path(dir_okay=False),
              help="Labelled data: text<TAB>label, CSV (text,label header) or JSONL. Repeatable.")
@click.option("--label-file", "label_files", multiple=True, metavar="LABEL=FILE",
              help="A file of texts (one per line) that all have LABEL, e.g. pos=rt-polarity.pos. Repeatable.")
@click.option("--dev", "dev_files", multiple=True, type=click.Path(dir_okay=False),
              help="Labelled dev data for early stopping (default: a seeded split of train).")
@click.option("--out", type=click.Path(file_okay=False), help="Model directory to write (optional with --cv).")
@click.option("--cv", type=int, default=0, help="Run K-fold stratified cross-validation and report mean ± std accuracy.")
@click.option("--cv-report", type=click.Path(dir_okay=False), help="With --cv: write the fold results as JSON here.")
@_CLASSIFY_FORMAT
@_ENCODING
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@_classifier_options
def classify_train(train_files, label_files, dev_files, out, cv, cv_report, format_, encoding, force, quiet, **flags):
    """Train a sentence classifier (or cross-validate one with --cv K)."""
    from tagger.commands.classify import ClassifierOptions, cross_validate, read_data, train_classifier
    from tagger.fsutil import atomic_write_json

    if not out and not cv:
        raise click.UsageError("--out is required (unless --cv K only cross-validates)")
    if out and Path(out).exists() and not force:
        raise TaggerError(f"{out} already exists (use --force to replace it)")
    opts = ClassifierOptions(**{k: v for k, v in flags.items() if v is not None})
    opts.validate()
    log = None if quiet else (lambda m: click.echo(m, err=True))
    examples = read_data(train_files, label_files, format_, encoding)
    if cv:
        if dev_files:
            raise click.UsageError("--dev cannot be used with --cv (each fold holds out its own dev split)")
        res = cross_validate(examples, cv, opts, log=log, progress=not quiet)
        if cv_report:
            atomic_write_json(cv_report, res)
        click.echo(f"{cv}-fold cross-validation accuracy: {res['mean_accuracy']:.4f} ± {res['std_accuracy']:.4f} "
                   f"({len(examples)} examples, {res['minutes']:.1f} min)")
        if not out:
            return
    dev = read_data(dev_files, (), format_, encoding) if dev_files else None
    clf, summary = train_classifier(examples, dev, opts, log=log, progress=not quiet)
    if cv:
        clf.config["training"]["cv"] = {k: res[k] for k in ("k", "mean_accuracy", "std_accuracy", "folds")}
    clf.save(out, force=force)
    if cv:
        atomic_write_json(Path(out) / "cv.json", res)
    if not quiet:
        best = summary["best_dev_accuracy"]
        best_txt = f"best dev accuracy {best:.4f} (epoch {summary['best_epoch']})" if best is not None else "no dev data"
        click.echo(f"trained {summary['epochs']} epochs in {summary['seconds'] / 60:.1f} min; {best_txt}; "
                   f"labels {', '.join(summary['labels'])}; model in {out}")


@classify.command("evaluate")
@click.argument("model_dir", metavar="MODEL", type=click.Path())
@click.option("--data", "data_files", multiple=True, type=click.Path(dir_okay=False),
              help="Labelled data (text<TAB>label, CSV, JSONL). Repeatable.")
@click.option("--label-file", "label_files", multiple=True, metavar="LABEL=FILE", help="Texts that all have LABEL.")
@_CLASSIFY_FORMAT
@_ENCODING
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write metrics.json and report.md here.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--batch-size", type=int, default=256, show_default=True)
def classify_evaluate(model_dir, data_files, label_files, format_, encoding, out_dir, as_json, batch_size):
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of a classifier."""
    import json

    from tagger.commands.classify import Classifier, evaluate, format_report, read_data, write_evaluation

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
@click.argument("model_dir", metavar="MODEL", type=click.Path())
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="JSONL file to write ('-' for stdout).")
@click.option("--format", "format_", type=click.Choice(["auto", "tsv", "csv", "jsonl", "lines"]), default="auto",
              show_default=True, help="Input format (auto: .jsonl/.csv/.tsv by extension, else one text per line).")
@_ENCODING
@click.option("--batch-size", type=int, default=256, show_default=True)
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


def _generator_options(f):
    from dataclasses import fields

    from tagger.commands.generate import GeneratorOptions

    helps = {
        "min_count": "Words seen fewer times become <unk>.", "max_vocab": "Keep at most this many words (0 = all).",
        "lowercase": "Lowercase words.", "digits": "Map digits to 0.",
        "embeddings": "Initial input vectors: none | glove-6b-50d | word2vec | PATH.",
        "embedding_dim": "Embedding size (without pretrained vectors).", "hidden": "LSTM hidden size.",
        "layers": "LSTM layers.", "dropout": "Dropout rate.", "tie": "Tie input and output embeddings.",
        "bptt": "Truncated BPTT length.", "batch_size": "Parallel streams per batch.", "epochs": "Maximum epochs.",
        "optimizer": "adam | adamw | sgd.", "lr": "Learning rate.",
        "lr_decay": "LR factor after an epoch without dev improvement.", "clip": "Gradient-norm clipping.",
        "max_minutes": "Stop training after this many minutes (0 = no limit).",
        "device": "auto | cpu | cuda.", "threads": "Torch CPU threads (0 = default).",
        "eval_batch_size": "Streams for dev perplexity.",
        "adaptive_softmax": "Adaptive softmax, untied (faster for vocabularies over 4000 words).",
        "dev_fraction": "Without --dev: hold out this share of the training sentences (the last ones).",
    }
    names = {"digits": "normalize-digits"}
    for fld in reversed(fields(GeneratorOptions)):
        default = getattr(GeneratorOptions(), fld.name)
        name = names.get(fld.name, fld.name.replace("_", "-"))
        if isinstance(default, bool):
            f = click.option(f"--{name}/--no-{name}", fld.name, default=None,
                             help=f"{helps.get(fld.name, '')} [default: {str(default).lower()}]")(f)
        else:
            f = click.option(f"--{name}", fld.name, type=type(default), default=None,
                             help=f"{helps.get(fld.name, '')} [default: {default}]")(f)
    return f


@main.group(cls=TaggerGroup)
def generate() -> None:
    """Word-level LSTM language model: train, sample text, evaluate perplexity."""


@generate.command("train")
@click.option("--text", "text_files", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Training text (one sentence per line) or CoNLL file. Repeatable.")
@click.option("--dev", "dev_files", multiple=True, type=click.Path(dir_okay=False),
              help="Held-out text for model selection and lr decay.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@_TEXT_FORMAT
@_TOKEN_COLUMN
@_ENCODING
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@_generator_options
def generate_train(text_files, dev_files, out, format_, token_column, encoding, force, quiet, **flags):
    """Train an LSTM language model on text."""
    from tagger.commands.generate import GeneratorOptions, read_texts, train_generator

    if Path(out).exists() and not force:
        raise TaggerError(f"{out} already exists (use --force to replace it)")
    opts = GeneratorOptions(**{k: v for k, v in flags.items() if v is not None})
    opts.validate()
    log = None if quiet else (lambda m: click.echo(m, err=True))
    train_s = read_texts(text_files, format_, encoding, token_column)
    dev_s = read_texts(dev_files, format_, encoding, token_column) if dev_files else None
    info = {"text": [str(p) for p in text_files], "dev": [str(p) for p in dev_files], "format": format_,
            "token_column": token_column, "encoding": encoding}
    gen, summary = train_generator(train_s, dev_s, opts, log=log, progress=not quiet, data_info=info)
    gen.save(out, force=force)
    if not quiet:
        best = summary["best_dev_ppl"]
        best_txt = f"best dev perplexity {best:.2f} (epoch {summary['best_epoch']})" if best is not None else "no dev text"
        click.echo(f"trained {summary['epochs']} epochs in {summary['minutes']:.1f} min; {best_txt}; "
                   f"vocabulary {summary['vocab_size']}; model in {out}")


@generate.command("sample")
@click.argument("model_dir", metavar="MODEL", type=click.Path())
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
    import json

    from tagger.commands.generate import Generator

    gen = Generator.load(model_dir)
    s = gen.sample(seed_text, words, temperature, top_k, top_p, seed, stop_at_eos, allow_unk=not no_unk)
    if s.unknown_seed and not as_json:
        click.echo(f"note: seed words unknown to the model (read as <unk>): {' '.join(s.unknown_seed)}", err=True)
    text = json.dumps(s.to_json(), ensure_ascii=False) if as_json else s.text
    click.echo(text)
    if out:
        from tagger.fsutil import atomic_write_bytes

        atomic_write_bytes(out, (text + "\n").encode("utf-8"))


@generate.command("evaluate")
@click.argument("model_dir", metavar="MODEL", type=click.Path())
@click.option("--text", "text_files", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Held-out text or CoNLL file. Repeatable.")
@_TEXT_FORMAT
@_TOKEN_COLUMN
@_ENCODING
@click.option("--baseline-train", multiple=True, type=click.Path(dir_okay=False),
              help="Also score a Kneser-Ney trigram trained on this text (same vocabulary).")
@click.option("--batch-size", type=int, default=1, show_default=True,
              help="Parallel streams (1 = every word sees its whole preceding context).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Also write metrics.json here.")
def generate_evaluate(model_dir, text_files, format_, token_column, encoding, baseline_train, batch_size, as_json,
                      out_dir):
    """Perplexity of held-out text."""
    import json

    from tagger.commands.generate import Generator, read_texts, trigram_baseline

    gen = Generator.load(model_dir)
    sentences = read_texts(text_files, format_, encoding, token_column)
    res = gen.evaluate(sentences, batch_size=max(1, batch_size))
    if baseline_train:
        base = read_texts(baseline_train, format_, encoding, token_column)
        res["trigram_perplexity"] = trigram_baseline(gen.vocab, base, sentences)["perplexity"]
    if out_dir:
        from tagger.fsutil import atomic_write_json, os_error

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


def run() -> None:  # pragma: no cover - console entry for python -m
    main(prog_name="tagger")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
