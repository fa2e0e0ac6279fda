"""What the commands share: the error-handling group, common options and small value helpers."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from typing import NoReturn

import click

from tagger.errors import TaggerError
from tagger.options import flag_name
from tagger.training.resume import RESUME_OVERRIDES


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


FORCE = click.option("--force", is_flag=True, help="Replace --out if it exists.")
QUIET = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
ENCODING = click.option("--encoding", default="utf-8", show_default=True,
                        help="Text encoding of the input files (e.g. latin-1).")


def stderr_log(quiet: bool, prefix: str = "") -> Callable[[str], None] | None:
    """A log callback printing to stderr, or None with --quiet."""
    return None if quiet else (lambda m: click.echo(prefix + m, err=True))


def best_text(what: str, value: float | None, epoch: object, missing: str, digits: int = 4) -> str:
    """``best dev F1 0.9012 (epoch 7)`` for a training summary line, or ``missing`` without dev data."""
    return f"best dev {what} {value:.{digits}f} (epoch {epoch})" if value is not None else missing


def label_column(value: str) -> int | str:
    """A --label-column value: a column number, or (for --dataset) a field name."""
    try:
        return int(value)
    except ValueError:
        return value


def resume_option(options_cls: type, where: str = "--out") -> Callable:
    """``--resume``, with the options of ``options_cls`` that may change on resuming named in its help."""
    changeable = [flag_name(f) for f in dataclasses.fields(options_cls) if f.name in RESUME_OVERRIDES]
    return click.option("--resume", is_flag=True,
                        help=f"Continue an interrupted run in {where} from its last checkpoint (options given again "
                             f"must equal the saved ones, except {', '.join(changeable)}).")


NPROC = click.option("--nproc", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Train data-parallel in N processes on this host: runs this command under "
                          "`torchrun --standalone --nproc_per_node N` (several hosts: run torchrun yourself, see "
                          "the README).")


def command_args(ctx: click.Context, skip: tuple[str, ...] = ()) -> list[str]:
    """The command line that gives ``ctx``'s command the values it has now (except ``skip``)."""
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        if name in skip or value is None or value == () or value is False and not param.secondary_opts:
            continue
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        if isinstance(param, click.Argument):
            args.extend(str(v) for v in values)
        elif isinstance(param, click.Option) and param.is_flag:
            if value is True or not param.secondary_opts:
                args.append(param.opts[0])
            else:
                args.append(param.secondary_opts[0])
        else:
            for v in values:
                args.extend([param.opts[0], str(v)])
    return args


def launch_ranks(ctx: click.Context, nproc: int) -> NoReturn:
    """``--nproc N``: run this very command in N processes under torchrun; exit with its status."""
    from tagger.training import distributed

    if distributed.launched():
        raise TaggerError("--nproc: this process was already started by torchrun (drop --nproc)")
    path = ctx.command_path.split()[1:]  # "tagger classify train" -> classify train
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "tagger", *path, *command_args(ctx, skip=("nproc",))]
    try:
        code = subprocess.call(cmd)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
