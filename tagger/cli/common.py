"""What the commands share: the error-handling group, common options and small value helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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
