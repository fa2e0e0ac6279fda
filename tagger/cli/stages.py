"""The tagger's stages: prepare → train → evaluate → annotate, and ``run`` for a pipeline of them."""

from __future__ import annotations

import json
import sys

import click

from tagger.cli.common import FORCE, NPROC, QUIET, best_text, label_column, launch_ranks, resume_option, stderr_log
from tagger.commands.annotate.options import AnnotateOptions
from tagger.commands.prepare import PrepareOptions
from tagger.commands.train import TrainOptions
from tagger.declare import Command, Headline, InputPath
from tagger.options import click_options, given, read_toml

FORMAT_FIELDS = ("format", "token_column", "label_column", "label_field", "encoding")


@click.command(cls=Command, headline=Headline("prepare.json", "splits.*.sentences", label="sentences"))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Prepared directory to write.")
@click_options(PrepareOptions)
@FORCE
@QUIET
def prepare(out, force, quiet, **flags):
    """Read corpora, build vocabularies and embeddings, write a prepared directory."""
    from tagger.commands.prepare import format_summary
    from tagger.commands.prepare import prepare as run_prepare

    values = given(flags)
    if "label_column" in values:
        values["label_column"] = label_column(values["label_column"])
    manifest = run_prepare(PrepareOptions(**values), out, force=force, log=stderr_log(quiet, "[prepare] "),
                           progress=not quiet)
    if not quiet:
        click.echo(format_summary(manifest))
        click.echo(f"wrote {out} in {manifest['seconds']:.1f}s")


def _dev_label(summary: dict) -> str:
    return "dev f1" if summary.get("task") == "entity" else "dev accuracy"


@click.command(cls=Command, headline=Headline("train_summary.json", "best_dev", label=_dev_label))
@click.argument("prepared", type=InputPath(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--config", "config_file", type=InputPath(dir_okay=False), help="TOML file of training options.")
@resume_option(TrainOptions)
@FORCE
@QUIET
@NPROC
@click_options(TrainOptions)
@click.pass_context
def train(ctx, prepared, out, config_file, resume, force, quiet, nproc, **flags):
    """Train a BiLSTM-CRF on a prepared directory.

    Under torchrun (or with --nproc N) it trains data-parallel: each process takes its share of
    every epoch's batches and rank 0 writes the model directory.
    """
    from tagger.commands.train import train as run_train
    from tagger.training import distributed

    if nproc and nproc > 1:
        launch_ranks(ctx, nproc)
    quiet = quiet or distributed.env_rank() != 0
    user = {**(read_toml(config_file, TrainOptions, "train") if config_file else {}), **given(flags)}
    summary = run_train(prepared, out, TrainOptions(**user), given=user, resume=resume, force=force,
                        log=stderr_log(quiet), progress=not quiet)
    if not quiet:
        metric = "F1" if summary["task"] == "entity" else "accuracy"
        best_txt = best_text(metric, summary["best_dev"], summary["best_epoch"], "no dev split")
        click.echo(f"trained {summary['epochs']} epochs in {summary['minutes']:.1f} min; {best_txt}; model in {out}")
    distributed.shutdown()


@click.command(cls=Command, headline=Headline("metrics.json", "f1", "accuracy"))
@click.argument("model_dir", type=InputPath())
@click.option("--data", required=True, type=InputPath(split_suffix=True), metavar="FILE|PREPARED_DIR[:split]",
              help="Gold data: a corpus file, or a prepared directory and split [default split: test].")
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory for metrics.json, predictions.conll, report.md and the plots.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json instead of the summary table.")
@click_options(PrepareOptions, only=FORMAT_FIELDS)
@click.option("--batch-size", type=int, default=256, show_default=True, help="Sentences per prediction batch.")
@click.option("--threads", type=int, default=0, show_default=True,
              help="CPU threads for prediction (0 = the cores other processes leave free).")
@click.option("--device", default="cpu", show_default=True, help="auto | cpu | cuda.")
@click.option("--runtime", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="onnx: MODEL_DIR is a directory written by tagger export --format onnx, run with onnxruntime.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (and --json output).")
def evaluate(model_dir, data, out, as_json, batch_size, threads, device, runtime, quiet, **formats):
    """Score a model on gold data: strict and conlleval figures, error analysis, report and plots.

    Format options default to those the model was trained with.
    """
    from tagger.commands.evaluate.report import format_summary
    from tagger.commands.evaluate.run import evaluate as run_evaluate

    if formats["label_column"] is not None:
        formats["label_column"] = label_column(formats["label_column"])
    result = run_evaluate(model_dir, data, out, batch_size=batch_size, threads=threads, device=device,
                          log=stderr_log(quiet), runtime=runtime, **formats)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    elif not quiet:
        click.echo(format_summary(result))
        if out:
            click.echo(f"wrote {out} ({', '.join(result['files'])}) in {result['seconds']:.1f}s")
        else:
            click.echo(f"evaluated in {result['seconds']:.1f}s")


@click.command()
@click.argument("model_dir", type=InputPath(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=InputPath(allow_dash=True))
@click.option("--out", required=True,
              help="Output file, '-' for stdout, or (several inputs / a directory) a directory mirroring the inputs.")
@click_options(AnnotateOptions)
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process (and --workers forked ones); ray: a Ray Data pipeline with an actor pool "
                   "of --workers actors, writing part files to the directory --out (see README).")
@click.option("--ray-address", metavar="ADDR",
              help="With --engine ray: join this Ray cluster (ray://HOST:10001, HOST:6379 or auto) instead of "
                   "starting a local Ray.")
@click.option("--parts", "part_format", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True,
              help="With --engine ray: the format of the part files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary (problems are still reported).")
def annotate(model_dir, inputs, out, engine, ray_address, part_format, quiet, **flags):
    """Tag files, directories (recursively) or '-' (stdin) with a trained model.

    Exit status: 0 when every record was tagged, 1 when some records or files failed (they are
    listed on stderr; failed records still get an output record with an "error" field), 2 for
    usage errors.
    """
    from tagger.commands.annotate import annotate_paths

    opts = AnnotateOptions(**given(flags), progress=False if quiet else None)
    if engine != "ray" and (ray_address or part_format != "jsonl"):
        raise click.UsageError("--ray-address and --parts go with --engine ray")
    if engine == "ray":
        from tagger.commands.annotate.raydata import annotate_ray

        summary = annotate_ray(model_dir, list(inputs), out, opts, address=ray_address, part_format=part_format,
                               log=stderr_log(quiet))
        if not quiet or not summary.ok:
            click.echo(summary.format(), err=True)
        sys.exit(summary.exit_code)
    # A fresh process: the model is loaded single-threaded, so forked workers may use threads.
    summary = annotate_paths(model_dir, list(inputs), out, opts, fork_safe=True)
    if not quiet or not summary.ok:
        click.echo(summary.format(), err=True)
    sys.exit(summary.exit_code)


@click.command("run", cls=Command, stage=False)
@click.argument("pipeline_file", metavar="PIPELINE.toml", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a pipeline variable ${KEY} (wins over the environment and [vars]); repeatable.")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Directory for the stage outputs [default: runs/<pipeline name>].")
@click.option("--force", "force", is_flag=False, flag_value="*", default=None, metavar="[STAGE]",
              help="Rerun every stage, or only STAGE (stages downstream of it rerun as their inputs change).")
@click.option("--from", "from_stage", metavar="STAGE",
              help="Start at this stage (earlier outputs are used as they are).")
@click.option("--until", "until_stage", metavar="STAGE", help="Stop after this stage.")
@click.option("--dry-run", is_flag=True, help="Validate and show what would run; run nothing.")
@click.pass_context
def run(ctx, pipeline_file, sets, workdir, force, from_stage, until_stage, dry_run):
    """Run a pipeline of tagger commands from a TOML file, skipping stages that are up to date.

    See tagger/pipeline/spec.py for the file format; pipelines/sample.toml is an example.
    """
    from tagger.pipeline.runner import PipelineFailed, format_summary, run_pipeline
    from tagger.pipeline.spec import parse_sets

    if pipeline_file is None and force not in (None, "*"):
        pipeline_file, force = force, "*"  # `tagger run --force PIPELINE.toml`
    if pipeline_file is None:
        raise click.UsageError("missing argument PIPELINE.toml")
    try:
        summary = run_pipeline(pipeline_file, parse_sets(sets), workdir=workdir,
                               force=True if force == "*" else (force or False),
                               from_stage=from_stage, until_stage=until_stage, dry_run=dry_run,
                               commands=ctx.find_root().command)
    except PipelineFailed as exc:
        click.echo(format_summary(exc.summary))
        raise
    click.echo(format_summary(summary))


COMMANDS = (prepare, train, evaluate, annotate, run)
