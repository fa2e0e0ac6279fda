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
    from tagger.prepare import PrepareOptions, format_summary, prepare as run_prepare

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

    from tagger.train import TrainOptions

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
    from tagger.train import TrainOptions, train as run_train

    given = {k: v for k, v in flags.items() if v is not None}
    opts = TrainOptions.from_toml(config_file, **given) if config_file else TrainOptions(**given)
    log = None if quiet else (lambda m: click.echo(m, err=True))
    summary = run_train(prepared, out, opts, resume=resume, force=force, log=log, progress=not quiet)
    if not quiet:
        best = summary["best_dev"]
        metric = "F1" if summary["task"] == "entity" else "accuracy"
        best_txt = f"best dev {metric} {best:.4f} (epoch {summary['best_epoch']})" if best is not None else "no dev split"
        click.echo(f"trained {summary['epochs']} epochs in {summary['minutes']:.1f} min; {best_txt}; model in {out}")


def run() -> None:  # pragma: no cover - console entry for python -m
    main(prog_name="tagger")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
