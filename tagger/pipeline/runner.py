"""``tagger run``: run a validated pipeline's stages in order, skipping those that are up to date.

Usage: ``tagger run PIPELINE.toml [--set KEY=VALUE ...] [--workdir DIR] [--force [STAGE]]
[--from STAGE] [--until STAGE] [--dry-run]``; the library entry point is :func:`run_pipeline`.
The file format is described in :mod:`tagger.pipeline.spec`, the skip rule in
:mod:`tagger.pipeline.stamps`. The whole file is validated before any stage runs; a failing
stage stops the pipeline (exit 2, or the stage's own status) and leaves the earlier stages'
outputs in place. ``<workdir>/summary.json`` records each stage's status, time and headline
metric (the figure its command declares, see :mod:`tagger.declare`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from tagger.declare import Command
from tagger.errors import TaggerError
from tagger.fsutil import atomic_write_json
from tagger.pipeline.command import suggest
from tagger.pipeline.spec import Pipeline, Stage, load_pipeline
from tagger.pipeline.stamps import Decision, code_version, decide, stamp_path, write_stamp

SUMMARY = "summary.json"


class PipelineFailed(TaggerError):
    """A stage failed; ``summary`` holds what ran so far (also in summary.json)."""

    def __init__(self, message: str, exit_code: int, summary: dict):
        super().__init__(message)
        self.exit_code = exit_code
        self.summary = summary


def run_pipeline(
    path: str | os.PathLike,
    sets: Mapping[str, str] | None = None,
    workdir: str | os.PathLike | None = None,
    force: bool | str | Iterable[str] = False,
    from_stage: str | None = None,
    until_stage: str | None = None,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    *,
    commands: click.Group,
) -> dict:
    """Validate and run a pipeline file of ``commands`` (the tagger command group); returns the summary.

    The summary is also written to ``<workdir>/summary.json``. ``force``: True reruns every
    selected stage; a stage name (or names) reruns those (their downstream stages then rerun
    because their inputs changed). ``from_stage``/``until_stage`` limit the range (file order).
    ``dry_run`` validates and reports what would run, running nothing. A failing stage raises
    :class:`PipelineFailed` (a TaggerError with the stage's exit code) after writing the
    summary; earlier stages' outputs stay in place.
    """
    t_start = time.perf_counter()
    pipe = load_pipeline(path, sets, workdir, env, commands=commands)
    selected = _select(pipe, from_stage, until_stage)
    forced = _forced(pipe, selected, force)
    run = _Run(pipe, dry_run, log or (lambda m: click.echo(m, err=True)), t_start)
    for k, stage in enumerate(selected, 1):
        run.step(stage, f"[{k}/{len(selected)}] {stage.name}", stage.name in forced, selected[k:])
    run.finish("dry run" if dry_run else "ok")
    return run.summary


def _select(pipe: Pipeline, from_stage: str | None, until_stage: str | None) -> list[Stage]:
    names = [s.name for s in pipe.stages]

    def index(opt: str, name: str) -> int:
        if name not in names:
            raise TaggerError(f"{opt} {name}: {pipe.path} has no stage {name!r}{suggest(name, names)} "
                              f"(stages: {', '.join(names)})")
        return names.index(name)

    lo = index("--from", from_stage) if from_stage else 0
    hi = index("--until", until_stage) if until_stage else len(names) - 1
    if lo > hi:
        raise TaggerError(f"--from {from_stage} comes after --until {until_stage}")
    return pipe.stages[lo:hi + 1]


def _forced(pipe: Pipeline, selected: list[Stage], force: bool | str | Iterable[str]) -> set[str]:
    selected_names = {s.name for s in selected}
    if force is True:
        return selected_names
    if not force:
        return set()
    forced = {force} if isinstance(force, str) else set(force)
    names = [s.name for s in pipe.stages]
    for f in sorted(forced):
        if f not in names:
            raise TaggerError(f"--force {f}: {pipe.path} has no stage {f!r}{suggest(f, names)} "
                              f"(stages: {', '.join(names)})")
        if f not in selected_names:
            raise TaggerError(f"--force {f}: stage {f!r} is outside the --from/--until range")
    return forced


class _Run:
    """One run of a pipeline: the summary it builds and the stages it runs or skips."""

    def __init__(self, pipe: Pipeline, dry_run: bool, say: Callable[[str], None], t_start: float):
        self.pipe, self.dry_run, self.say, self.t_start = pipe, dry_run, say, t_start
        self.code = code_version()
        self.would_run: set[str] = set()
        self.records: dict[str, dict[str, Any]] = {
            s.name: {"name": s.name, "command": s.command, "status": "not selected", "seconds": None, "reason": None,
                     "out": None if s.out is None else str(s.out), "argv": ["tagger", *s.command.split(), *s.argv],
                     "metric": None}
            for s in pipe.stages}
        self.summary: dict = {
            "pipeline": pipe.name, "file": str(pipe.path), "workdir": str(pipe.workdir),
            "status": "dry run" if dry_run else "running",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "code_version": self.code, "variables": pipe.variables, "seconds": None,
            "stages": [self.records[s.name] for s in pipe.stages],
        }

    def finish(self, status: str) -> None:
        self.summary["status"] = status
        self.summary["seconds"] = round(time.perf_counter() - self.t_start, 2)
        if not self.dry_run:
            self.pipe.workdir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.pipe.workdir / SUMMARY, self.summary)

    def step(self, stage: Stage, head: str, forced: bool, later: list[Stage]) -> None:
        """Report, skip or run one selected stage (``later``: the selected stages after it)."""
        rec = self.records[stage.name]
        decision = decide(self.pipe, stage, self.code, forced, self.would_run if self.dry_run else set())
        rec["reason"] = decision.reason
        shown = shlex.join(["tagger", *stage.command.split(), *stage.argv])
        if self.dry_run:
            if decision.reason is None:
                rec["status"] = "up to date"
                self.say(f"{head}: up to date")
            else:
                rec["status"] = "would run"
                self.would_run.add(stage.name)
                self.say(f"{head}: would run ({decision.reason}): {shown}")
            rec["metric"] = _metric(stage)
        elif decision.reason is None:
            rec["status"], rec["seconds"] = "skipped", 0.0
            rec["metric"] = _metric(stage)
            self.say(f"{head}: skipped (up to date)")
        else:
            self.say(f"{head}: running ({decision.reason}): {shown}")
            self._execute(stage, rec, head, decision, later)

    def _execute(self, stage: Stage, rec: dict, head: str, decision: Decision, later: list[Stage]) -> None:
        _clear_output(self.pipe, stage)
        t0 = time.perf_counter()
        try:
            status, message = _invoke(stage)
        except KeyboardInterrupt:
            rec["status"], rec["seconds"] = "interrupted", round(time.perf_counter() - t0, 2)
            self.finish("interrupted")
            raise
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        if status != 0:
            rec["status"], rec["error"] = "failed", message
            for st in later:
                self.records[st.name]["status"] = "not run"
            self.finish("failed")
            self.say(f"{head}: failed after {rec['seconds']:.1f}s")
            raise PipelineFailed(f"{self.pipe.path}: stage {stage.name!r} ({stage.command}) failed: {message}",
                                 status if status > 0 else 2, self.summary)
        rec["status"] = "ran"
        rec["metric"] = _metric(stage)
        write_stamp(self.pipe, stage, decision, self.code, rec["seconds"])
        self.say(f"{head}: done in {rec['seconds']:.1f}s")


def _clear_output(pipe: Pipeline, stage: Stage) -> None:
    """Remove the stage's stamp (there is none until this run succeeds) and make room for its output."""
    try:
        stamp_path(pipe, stage).unlink(missing_ok=True)
        pipe.workdir.mkdir(parents=True, exist_ok=True)
        if stage.out is not None and stage.out != stage.dir:
            stage.out.parent.mkdir(parents=True, exist_ok=True)
        if stage.out is not None and not stage.pass_force and stage.out.exists():
            shutil.rmtree(stage.out) if stage.out.is_dir() else stage.out.unlink()
    except OSError as exc:
        raise TaggerError(f"{pipe.workdir}: cannot prepare the stage directory ({exc})") from None


def _invoke(stage: Stage) -> tuple[int, str]:
    """Run one stage's command in this process → (exit code, error message)."""
    prog = f"tagger {stage.command}"
    try:
        rv = stage.cmd.main(args=list(stage.argv), prog_name=prog, standalone_mode=False)
    except TaggerError as exc:
        return exc.exit_code, str(exc)
    except click.exceptions.Exit as exc:
        return exc.exit_code, "" if exc.exit_code == 0 else f"exited with status {exc.exit_code}"
    except click.ClickException as exc:
        return exc.exit_code, exc.format_message()
    except click.exceptions.Abort:
        raise KeyboardInterrupt from None
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, "" if code == 0 else f"exited with status {exc.code}"
    except Exception as exc:  # a bug in the command: show where, stop the pipeline
        traceback.print_exc(file=sys.stderr)
        return 1, f"crashed: {type(exc).__name__}: {exc}"
    if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
        return rv, f"exited with status {rv}"
    return 0, ""


# --------------------------------------------------------------------------- summary


def _metric(stage: Stage) -> dict | None:
    """The headline figure the stage's command declares, read from its --out directory."""
    headline = stage.cmd.headline if isinstance(stage.cmd, Command) else None
    if headline is None or stage.out is None or not stage.out.is_dir():
        return None
    m = headline.read(stage.out)
    return None if m is None else {"name": m[0], "value": m[1]}


def format_metric(metric: tuple[str, Any] | dict | None) -> str:
    if not metric:
        return ""
    name, value = (metric["name"], metric["value"]) if isinstance(metric, dict) else metric
    if isinstance(value, dict):
        return f"{name} " + "/".join(f"{v:,}" if isinstance(v, int) else str(v) for v in value.values()) + \
            f" ({'/'.join(value)})"
    if isinstance(value, float):
        return f"{name} {value:.4f}"
    return f"{name} {value}"


def format_summary(summary: dict) -> str:
    """The summary as a table: stage, command, status, seconds, headline metric."""
    rows = [("stage", "command", "status", "seconds", "metric")]
    for s in summary["stages"]:
        secs = f"{s['seconds']:.1f}" if s.get("seconds") is not None else ""
        rows.append((s["name"], s["command"], s["status"], secs, format_metric(s.get("metric"))))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.rjust(w) if i == 3 else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = summary.get("seconds")
    tail = f"pipeline {summary['pipeline']}: {summary['status']}"
    if total is not None:
        tail += f" in {total:.1f}s"
    if summary.get("workdir"):
        tail += f"; outputs in {summary['workdir']}"
    lines.append(tail)
    return "\n".join(lines)
