"""``tagger run``: run a pipeline of tagger commands described by a TOML file, make-style.

Usage: ``tagger run PIPELINE.toml [--set KEY=VALUE ...] [--workdir DIR] [--force [STAGE]]
[--from STAGE] [--until STAGE] [--dry-run]``; the library entry point is :func:`run_pipeline`.
The whole file is validated before any stage runs; a failing stage stops the pipeline (exit 2,
or the stage's own status) and leaves the earlier stages' outputs in place.

A pipeline file is TOML *data* (it is never evaluated as code)::

    [pipeline]
    name = "sample"                 # optional; default: the file's stem. Outputs go to runs/<name>/
    description = "..."             # optional

    [vars]                          # optional defaults of ${NAME} variables
    DATA = "../data/sample"         # a relative path here is relative to the pipeline file's directory

    [[stages]]
    name = "prepare"                # unique simple name (letters, digits, _ . -); the stage directory
                                    # is <workdir>/<name>/ (workdir: runs/<pipeline name>, or --workdir)
    command = "prepare"             # a tagger command path: "prepare", "train", "evaluate",
                                    # "annotate", "classify train", ...
    [stages.options]                # one flag each: key = value → --key value; true → --key;
    train = "${DATA}/train.conll"   # false → --no-key (or nothing for a plain flag); a list →
    embeddings = "glove-6b-50d"     # the flag repeated. Keys may use _ or -: dev_fraction = 0.1

    [[stages]]
    name = "train"
    command = "train"
    args = ["${stages.prepare.out}"]        # positional arguments, in order
    [stages.options]
    epochs = 15

    [[stages]]
    name = "annotate"
    command = "annotate"
    args = ["${stages.train.out}", "${DATA}/news.txt"]
    out = "news.jsonl"              # for commands whose --out is a file: a relative name in the
                                    # stage directory (optional for directory outputs)

Keys: top level ``pipeline``, ``vars``, ``stages``; a stage has ``name``, ``command`` and
optionally ``args``, ``options``, ``out``, ``description``. The runner itself passes
``--out`` (the stage directory, or ``<stage dir>/<out>``) and ``--force``; a stage may not set
them. Anything else is an error reported with the file and key, e.g.
``pipelines/x.toml: stages[1].options.epoch: unknown option --epoch for 'train'``.

Substitutions in ``args`` and option values (strings only; nothing is evaluated):

* ``${NAME}`` — a variable: ``--set NAME=VALUE`` wins over the environment variable ``NAME``,
  which wins over ``[vars]``. Values from ``--set`` and the environment that are relative paths
  are relative to the current directory; those from ``[vars]`` and literal paths in the file
  are relative to the pipeline file's directory.
* ``${stages.NAME.out}`` — the ``--out`` of an *earlier* stage (``${stages.NAME.dir}``: its
  directory). These references are the dependency graph; stages run in file order.
* ``$$`` — a literal ``$``.

A stage is skipped ("skipped (up to date)") when its command, resolved arguments, the SHA-256
of its input files (directories are walked; an upstream stage counts by the hash of its stamp),
and the code version (tagger version + hash of the package's sources) are unchanged since its
last successful run and its output exists. Stamps live in ``<workdir>/.stamps/<stage>.json``,
written only after success, so changing an input reruns that stage and everything downstream.
``<workdir>/summary.json`` records each stage's status, time and headline metric.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import click

from tagger import __version__
from tagger.errors import TaggerError
from tagger.fsutil import atomic_write_json, sha256_file

TOP_KEYS = ("pipeline", "vars", "stages")
PIPELINE_KEYS = ("name", "description")
STAGE_KEYS = ("name", "command", "args", "options", "out", "description")
RUNNER_OPTIONS = ("out", "force")  # set by the runner, never by a stage
# Parameters (by click name) that are input files or directories even when their click type does
# not say exists=True: they must exist before the pipeline starts (unless an earlier stage makes them).
INPUT_PARAMS = {"train", "dev", "test", "data", "text", "config", "config_file", "unlabeled_text", "input",
                "inputs", "prepared", "model", "model_dir"}
SIMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REF = re.compile(r"\$\$|\$\{([^}]*)\}")
STAGE_REF = re.compile(r"^stages\.(.+)\.(out|dir)$")
RESERVED_STAGE_NAMES = {"summary.json"}
STAMPS = ".stamps"
SUMMARY = "summary.json"


class PipelineFailed(TaggerError):
    """A stage failed; ``summary`` holds what ran so far (also in summary.json)."""

    def __init__(self, message: str, exit_code: int, summary: dict):
        super().__init__(message)
        self.exit_code = exit_code
        self.summary = summary


# --------------------------------------------------------------------------- loaded pipeline


@dataclass
class Input:
    """A path a stage reads: hashed, or (for an earlier stage's output) counted by its stamp."""

    key: str  # where it came from, e.g. options.train
    path: str
    upstream: str | None = None


@dataclass
class Stage:
    index: int
    name: str
    command: str
    cmd: click.Command
    dir: Path  # <workdir>/<name>
    out: Path | None  # what --out gets (None: the command has no --out)
    argv: list[str]
    inputs: list[Input]
    deps: list[str]  # earlier stages referenced
    pass_force: bool

    @property
    def where(self) -> str:
        return f"stages[{self.index}]"


@dataclass
class Pipeline:
    path: Path
    name: str
    description: str
    workdir: Path
    stages: list[Stage]
    variables: dict[str, str] = field(default_factory=dict)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


# --------------------------------------------------------------------------- helpers


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` → dict (a malformed item is a TaggerError)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not VAR_NAME.match(key):
            raise TaggerError(f"--set {item!r}: expected KEY=VALUE with KEY a variable name")
        out[key] = value
    return out


_CODE_VERSION: str | None = None


def code_version() -> str:
    """tagger's version plus a hash of the package's Python sources (computed once per process)."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        root = Path(__file__).resolve().parents[1]  # the tagger package
        h = hashlib.sha256()
        for p in sorted(root.rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(p.read_bytes() + b"\0")
        _CODE_VERSION = f"{__version__}+{h.hexdigest()[:16]}"
    return _CODE_VERSION


def hash_path(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a directory's (relative path, file hash) list; 'missing' if absent."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames.sort()
            for fn in sorted(filenames):
                f = Path(dirpath) / fn
                if f.is_file():
                    h.update(f.relative_to(p).as_posix().encode() + b"\0" + sha256_file(f).encode() + b"\n")
        return "dir:" + h.hexdigest()
    return "missing"


def _norm(base: str, value: str) -> str:
    return os.path.normpath(os.path.join(base, value)) if value else value


def _data_path(value: str) -> str:
    """``DIR:split`` (evaluate --data) names the directory ``DIR``."""
    if not os.path.exists(value) and ":" in value:
        base = value.rsplit(":", 1)[0]
        if base and os.path.isdir(base):
            return base
    return value


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_command(words: str) -> tuple[click.Command | None, str]:
    """A command path such as ``"classify train"`` → (leaf click command, error message)."""
    from tagger.cli import main

    cmd: click.Command = main
    parts = words.split()
    if not parts:
        return None, "empty command"
    if parts[0] == "run":
        return None, "a pipeline cannot run 'run'"
    path = []
    for w in parts:
        if not isinstance(cmd, click.Group):
            return None, f"'{' '.join(path)}' takes no subcommand {w!r}"
        sub = cmd.commands.get(w)
        if sub is None:
            names = sorted(n for n in cmd.commands if not (cmd is main and n == "run"))
            return None, (f"unknown command {' '.join([*path, w])!r}{_suggest(w, names)}; "
                          f"commands{' of ' + repr(' '.join(path)) if path else ''}: {', '.join(names)}")
        cmd = sub
        path.append(w)
    if isinstance(cmd, click.Group):
        return None, f"{words!r} needs a subcommand: {', '.join(sorted(cmd.commands))}"
    return cmd, ""


def _long(opts: Iterable[str]) -> str | None:
    longs = [o for o in opts if o.startswith("--")]
    return longs[0] if longs else None


def _runner_flag(p: click.Parameter) -> str | None:
    """'out' or 'force' for the options the runner sets (by flag: --out may be named out_dir)."""
    if isinstance(p, click.Option):
        for name in RUNNER_OPTIONS:
            if f"--{name}" in p.opts:
                return name
    return None


def _is_input(p: click.Parameter) -> bool:
    """An input file/directory parameter, by its name or its flag (--train, --data, INPUTS...)."""
    if p.name in INPUT_PARAMS:
        return True
    flag = _long(p.opts) if isinstance(p, click.Option) else None
    return bool(flag) and flag[2:].replace("-", "_") in INPUT_PARAMS


# --------------------------------------------------------------------------- loading + validation


class _Loader:
    def __init__(self, path: Path, sets: Mapping[str, str], env: Mapping[str, str], workdir):
        self.path = path
        self.sets = dict(sets)
        self.env = env
        self.workdir_given = workdir
        self.base = str(path.parent) if str(path.parent) != "." else ""
        self.file_vars: dict[str, str] = {}
        self.used_vars: set[str] = set()

    def fail(self, key: str, msg: str) -> TaggerError:
        return TaggerError(f"{self.path}: {key}: {msg}" if key else f"{self.path}: {msg}")

    # ---- variables
    def lookup(self, name: str, key: str) -> tuple[str, str]:
        """Value of ``${name}`` and the base directory its relative paths are relative to."""
        self.used_vars.add(name)
        if name in self.sets:
            return self.sets[name], ""
        if name in self.env:
            return self.env[name], ""
        if name in self.file_vars:
            return self.file_vars[name], self.base
        raise self.fail(key, f"undefined variable ${{{name}}} (define it in [vars], or give --set {name}=VALUE "
                             f"or the environment variable {name})")

    def expand(self, raw: str, key: str, stage_index: int, known: dict[str, "Stage"]):
        """→ (text, upstream stage names, base dir of a relative path in the result)."""
        refs: list[str] = []
        base = self.base
        first = True

        def sub(m: re.Match) -> str:
            nonlocal base, first
            # The first reference that starts the value (or its part after KEY=) decides the base
            # directory of a relative path in it.
            at_start = first and (m.start() == 0 or raw[:m.start()].endswith("=") and "=" not in raw[:m.start() - 1])
            first = False
            if m.group(0) == "$$":
                return "$"
            inner = m.group(1).strip()
            sm = STAGE_REF.match(inner)
            if sm:
                name, what = sm.groups()
                if name not in known:
                    if name == self.stage_names[stage_index]:
                        why = "a stage cannot use its own output"
                    elif name in self.stage_names[stage_index:]:
                        why = f"stage {name!r} comes later; a stage can only use earlier stages' outputs"
                    else:
                        why = f"no stage named {name!r}{_suggest(name, [n for n in self.stage_names if n])}"
                    raise self.fail(key, f"${{{inner}}}: {why}")
                refs.append(name)
                st = known[name]
                if at_start:
                    base = ""
                return str(st.dir if what == "dir" or st.out is None else st.out)
            if inner.startswith("stages.") or inner.startswith("stages["):
                raise self.fail(key, f"${{{inner}}}: expected ${{stages.NAME.out}} or ${{stages.NAME.dir}}")
            if not VAR_NAME.match(inner):
                raise self.fail(key, f"${{{inner}}}: not a variable name")
            value, vbase = self.lookup(inner, key)
            if at_start:
                base = vbase
            return value

        text = REF.sub(sub, raw)
        return text, refs, base

    # ---- whole file
    def load(self) -> Pipeline:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TaggerError(f"{self.path}: pipeline file not found") from None
        except IsADirectoryError:
            raise TaggerError(f"{self.path}: is a directory, not a pipeline file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TaggerError(f"{self.path}: cannot read ({exc})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TaggerError(f"{self.path}: invalid TOML ({exc})") from None

        for k in data:
            if k not in TOP_KEYS:
                raise self.fail(k, f"unknown key{_suggest(k, TOP_KEYS)} (expected {', '.join(TOP_KEYS)})")
        meta = data.get("pipeline", {})
        if not isinstance(meta, dict):
            raise self.fail("pipeline", "must be a table ([pipeline])")
        for k, v in meta.items():
            if k not in PIPELINE_KEYS:
                raise self.fail(f"pipeline.{k}", f"unknown key{_suggest(k, PIPELINE_KEYS)} "
                                                 f"(expected {', '.join(PIPELINE_KEYS)})")
            if not isinstance(v, str):
                raise self.fail(f"pipeline.{k}", f"must be a string, not {_type_name(v)}")
        name = meta.get("name", self.path.stem)
        if not SIMPLE_NAME.match(name) or name in (".", ".."):
            raise self.fail("pipeline.name" if "name" in meta else "",
                            f"pipeline name {name!r} must be a simple name (letters, digits, _ . -)")

        vars_ = data.get("vars", {})
        if not isinstance(vars_, dict):
            raise self.fail("vars", "must be a table ([vars])")
        for k, v in vars_.items():
            if not VAR_NAME.match(k):
                raise self.fail(f"vars.{k}", "not a variable name (letters, digits and _)")
            if isinstance(v, bool):
                v = str(v).lower()
            elif not isinstance(v, (str, int, float)):
                raise self.fail(f"vars.{k}", f"must be a string or number, not {_type_name(v)}")
            v = str(v)
            if "${" in v:
                raise self.fail(f"vars.{k}", "a [vars] value cannot reference other variables")
            self.file_vars[k] = v

        if self.workdir_given is not None:
            workdir = Path(os.path.normpath(str(self.workdir_given)))
        else:
            workdir = Path("runs") / name

        raw_stages = data.get("stages")
        if raw_stages is None:
            raise self.fail("stages", "no stages (add [[stages]] tables)")
        if not isinstance(raw_stages, list) or not all(isinstance(s, dict) for s in raw_stages):
            raise self.fail("stages", "must be an array of tables ([[stages]])")
        if not raw_stages:
            raise self.fail("stages", "no stages")
        self.stage_names = [s.get("name") if isinstance(s.get("name"), str) else None for s in raw_stages]
        stages: list[Stage] = []
        known: dict[str, Stage] = {}
        for i, raw in enumerate(raw_stages):
            st = self.stage(i, raw, workdir, known)
            stages.append(st)
            known[st.name] = st

        unused = sorted(k for k in self.sets if k not in self.used_vars and k not in self.file_vars)
        if unused:
            raise TaggerError(f"--set {unused[0]}: {self.path} has no variable {unused[0]}"
                              f"{_suggest(unused[0], set(self.file_vars) | self.used_vars)}")
        variables = {}
        for k in sorted(set(self.file_vars) | self.used_vars):
            variables[k] = self.lookup(k, "")[0]
        return Pipeline(self.path, name, meta.get("description", ""), workdir, stages, variables)

    def stage(self, i: int, raw: dict, workdir: Path, known: dict[str, Stage]) -> Stage:
        where = f"stages[{i}]"
        for k in raw:
            if k not in STAGE_KEYS:
                raise self.fail(f"{where}.{k}", f"unknown stage key{_suggest(k, STAGE_KEYS)} "
                                                f"(expected {', '.join(STAGE_KEYS)})")
        for k in ("name", "command"):
            if k not in raw:
                raise self.fail(where, f"missing {k!r}")
        for k in ("name", "command", "out", "description"):
            if k in raw and not isinstance(raw[k], str):
                raise self.fail(f"{where}.{k}", f"must be a string, not {_type_name(raw[k])}")
        name = raw["name"]
        if not SIMPLE_NAME.match(name) or name in RESERVED_STAGE_NAMES:
            raise self.fail(f"{where}.name", f"{name!r}: a stage name must be a simple name "
                                             "(letters, digits, _ . -; not starting with . or -)")
        if name in known:
            raise self.fail(f"{where}.name", f"duplicate stage name {name!r}")
        cmd, err = resolve_command(raw["command"])
        if cmd is None:
            raise self.fail(f"{where}.command", err)
        command = " ".join(raw["command"].split())

        out_param = next((p for p in cmd.params if _runner_flag(p) == "out"), None)
        force_param = next((p for p in cmd.params if _runner_flag(p) == "force"), None)
        stage_dir = workdir / name
        out: Path | None
        if "out" in raw:
            rel = raw["out"]
            pure = Path(rel)
            if not rel or pure.is_absolute() or ".." in pure.parts or rel.startswith("~"):
                raise self.fail(f"{where}.out", f"{rel!r}: must be a relative name inside the stage directory "
                                                "(no '..', not absolute)")
            if out_param is None:
                raise self.fail(f"{where}.out", f"{command!r} has no --out option")
            out = Path(os.path.normpath(stage_dir / rel))
        elif out_param is not None:
            t = out_param.type
            if isinstance(t, click.Path) and not t.dir_okay:
                raise self.fail(where, f"{command!r} writes its --out to a file: give the stage "
                                       f"out = \"FILE NAME\" (relative to the stage directory)")
            out = stage_dir
        else:
            out = None

        argv: list[str] = []
        inputs: list[Input] = []
        deps: list[str] = []

        def value_of(v: Any, key: str, param: click.Parameter) -> str:
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise self.fail(key, f"must be a string or number, not {_type_name(v)}")
            if isinstance(v, str):
                text, refs, base = self.expand(v, key, i, known)
            else:
                text, refs, base = str(v), [], self.base
            for r in refs:
                if r not in deps:
                    deps.append(r)
            is_path = isinstance(param.type, click.Path) or _is_input(param)
            if is_path and text and text != "-":
                text = _norm(base, text)
            elif base:  # e.g. --embeddings vectors/glove.txt or --label-file pos=data/x.pos next to the file
                key_, eq, val = text.rpartition("=") if "=" in text else ("", "", text)
                if "/" in val and not os.path.isabs(val) and os.path.exists(_norm(base, val)):
                    text = key_ + eq + _norm(base, val)
            self.check_value(text, key, param, command, refs, inputs)
            return text

        # positional arguments
        args = raw.get("args", [])
        if not isinstance(args, list):
            raise self.fail(f"{where}.args", f"must be a list, not {_type_name(args)}")
        arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
        usage = " ".join(a.human_readable_name.upper() + ("..." if a.nargs < 0 else "")
                         for a in arguments) or "no arguments"
        fixed = sum(a.nargs for a in arguments if a.nargs > 0)
        variadic = [a for a in arguments if a.nargs < 0]
        needed = sum(a.nargs for a in arguments if a.nargs > 0 and a.required) + sum(1 for a in variadic if a.required)
        if len(args) < needed or (not variadic and len(args) > fixed):
            raise self.fail(f"{where}.args", f"{command!r} takes {usage} (got {len(args)} argument"
                                             f"{'' if len(args) == 1 else 's'})")
        pos = 0
        for a in arguments:
            n = a.nargs if a.nargs > 0 else len(args) - fixed
            for _ in range(max(0, n)):
                if pos >= len(args):
                    break
                argv.append(value_of(args[pos], f"{where}.args[{pos}]", a))
                pos += 1

        # options
        options = raw.get("options", {})
        if not isinstance(options, dict):
            raise self.fail(f"{where}.options", f"must be a table ([stages.options]), not {_type_name(options)}")
        by_flag: dict[str, tuple[click.Option, bool]] = {}
        for p in cmd.params:
            if isinstance(p, click.Option):
                for o in p.opts:
                    if o.startswith("--"):
                        by_flag[o[2:]] = (p, True)
                for o in p.secondary_opts:
                    if o.startswith("--"):
                        by_flag[o[2:]] = (p, False)
        seen: dict[str, str] = {}
        for k, v in options.items():
            key = f"{where}.options.{k}"
            flag = k.replace("_", "-")
            if flag not in by_flag:
                names = [f for f, (p, prim) in by_flag.items() if prim and not _runner_flag(p)
                         and f not in ("help",)]
                raise self.fail(key, f"unknown option --{flag} for {command!r}{_suggest(flag, names)}")
            param, primary = by_flag[flag]
            if _runner_flag(param):
                extra = " (use the stage key out = \"NAME\" for a file name)" if _runner_flag(param) == "out" else ""
                raise self.fail(key, f"--{flag} is set by the pipeline runner{extra}")
            if param.name in seen:
                raise self.fail(key, f"same option as {seen[param.name]}")
            seen[param.name] = key
            long = _long(param.opts)
            if param.is_flag:
                if not isinstance(v, bool):
                    raise self.fail(key, f"--{flag} is a flag: give true or false, not {_type_name(v)}")
                on = v if primary else not v
                if on:
                    argv.append(long)
                elif param.secondary_opts:
                    argv.append(_long(param.secondary_opts))
                continue
            if getattr(param, "count", False):
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise self.fail(key, f"--{flag} counts: give a number")
                argv.extend([long] * v)
                continue
            items = v if isinstance(v, list) else [v]
            if isinstance(v, list) and not param.multiple:
                raise self.fail(key, f"--{flag} takes one value, not a list")
            if isinstance(v, bool):
                raise self.fail(key, f"--{flag} takes a value, not true/false")
            for j, item in enumerate(items):
                ikey = f"{key}[{j}]" if isinstance(v, list) else key
                argv.extend([long, value_of(item, ikey, param)])

        for p in cmd.params:
            if isinstance(p, click.Option) and p.required and not _runner_flag(p) and p.name not in seen:
                raise self.fail(f"{where}.options", f"{command!r} needs the option {_long(p.opts)}")

        if out is not None:
            argv.extend([_long(out_param.opts), str(out)])
        pass_force = bool(force_param is not None and isinstance(force_param, click.Option) and force_param.is_flag)
        if pass_force:
            argv.append(_long(force_param.opts))
        return Stage(i, name, command, cmd, stage_dir, out, argv, inputs, deps, pass_force)

    def check_value(self, text: str, key: str, param: click.Parameter, command: str, refs: list[str],
                    inputs: list[Input]) -> None:
        t = param.type
        is_path = isinstance(t, click.Path)
        must_exist = (is_path and t.exists) or _is_input(param)
        if refs:  # made by an earlier stage: checked when the pipeline runs
            inputs.append(Input(key, _data_path(text), refs[0]))
            return
        if is_path or _is_input(param):
            if text == "-":
                return
            target = _data_path(text)
            if must_exist and not os.path.exists(target):
                raise self.fail(key, f"{text}: no such file or directory")
            if os.path.exists(target):
                inputs.append(Input(key, target))
            return
        val = text.split("=", 1)[1] if "=" in text else text  # also KEY=PATH values
        if "/" in val and os.path.exists(val):
            inputs.append(Input(key, val))
        try:
            t.convert(text, param, None)
        except click.BadParameter as exc:
            raise self.fail(key, exc.format_message()) from None
        except Exception:  # a custom type that needs a context: leave it to the command
            pass


def load_pipeline(path: str | os.PathLike, sets: Mapping[str, str] | None = None, workdir=None,
                  env: Mapping[str, str] | None = None) -> Pipeline:
    """Read and validate a pipeline file: every problem is a TaggerError naming file and key."""
    return _Loader(Path(path), sets or {}, os.environ if env is None else env, workdir).load()


# --------------------------------------------------------------------------- stamps and metrics


def stamp_path(pipe: Pipeline, stage: Stage) -> Path:
    return pipe.workdir / STAMPS / f"{stage.name}.json"


def read_stamp(pipe: Pipeline, stage: Stage) -> tuple[dict | None, str | None]:
    """(stamp, SHA-256 of the stamp file) or (None, None)."""
    p = stamp_path(pipe, stage)
    try:
        data = p.read_bytes()
        return json.loads(data), hashlib.sha256(data).hexdigest()
    except (OSError, ValueError):
        return None, None


def _stage_key(stage: Stage, inputs: dict[str, str], code: str) -> str:
    blob = json.dumps({"command": stage.command, "argv": stage.argv, "inputs": inputs, "code": code},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _why(stamp: dict, stage: Stage, inputs: dict[str, str], code: str) -> str:
    if stamp.get("command") != stage.command or stamp.get("argv") != stage.argv:
        return "command or options changed"
    old = stamp.get("inputs", {})
    changed = [k for k in inputs if old.get(k) != inputs[k]] + [k for k in old if k not in inputs]
    if changed:
        return "changed: " + ", ".join(c.removeprefix("stage:") for c in changed[:3]) + (" ..." if len(changed) > 3 else "")
    if stamp.get("code") != code:
        return "code changed"
    return "changed"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def headline(stage: Stage) -> tuple[str, Any] | None:
    """(name, value) of the stage's headline figure, from the files it wrote."""
    dirs = []
    if stage.out is not None and stage.out.is_dir():
        dirs.append(stage.out)
    if stage.dir not in dirs:
        dirs.append(stage.dir)
    for d in dirs:
        m = _read_json(d / "metrics.json")
        if isinstance(m, dict):
            for scope in [m, *[v for v in m.values() if isinstance(v, dict)]]:
                for k in ("f1", "accuracy"):
                    if isinstance(scope.get(k), (int, float)):
                        return k, scope[k]
        s = _read_json(d / "train_summary.json")
        if isinstance(s, dict) and "best_dev" in s:
            return ("dev f1" if s.get("task") == "entity" else "dev accuracy"), s["best_dev"]
        p = _read_json(d / "prepare.json")
        if isinstance(p, dict) and isinstance(p.get("splits"), dict):
            return "sentences", {k: v.get("sentences") for k, v in p["splits"].items() if isinstance(v, dict)}
    return None


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
    lines = ["  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = summary.get("seconds")
    tail = f"pipeline {summary['pipeline']}: {summary['status']}"
    if total is not None:
        tail += f" in {total:.1f}s"
    if summary.get("workdir"):
        tail += f"; outputs in {summary['workdir']}"
    lines.append(tail)
    return "\n".join(lines)


# --------------------------------------------------------------------------- running


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


def _select(pipe: Pipeline, from_stage, until_stage) -> list[Stage]:
    names = [s.name for s in pipe.stages]

    def index(opt: str, name: str) -> int:
        if name not in names:
            raise TaggerError(f"{opt} {name}: {pipe.path} has no stage {name!r}{_suggest(name, names)} "
                              f"(stages: {', '.join(names)})")
        return names.index(name)

    lo = index("--from", from_stage) if from_stage else 0
    hi = index("--until", until_stage) if until_stage else len(names) - 1
    if lo > hi:
        raise TaggerError(f"--from {from_stage} comes after --until {until_stage}")
    return pipe.stages[lo:hi + 1]


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
) -> dict:
    """Validate and run a pipeline file; returns the summary (also written to <workdir>/summary.json).

    ``force``: True reruns every selected stage; a stage name (or names) reruns those (their
    downstream stages then rerun because their inputs changed). ``from_stage``/``until_stage``
    limit the range (file order). ``dry_run`` validates and reports what would run, running
    nothing. A failing stage raises :class:`PipelineFailed` (a TaggerError with the stage's
    exit code) after writing the summary; earlier stages' outputs stay in place.
    """
    say = log or (lambda m: click.echo(m, err=True))
    t_start = time.perf_counter()
    pipe = load_pipeline(path, sets, workdir, env)
    selected = _select(pipe, from_stage, until_stage)
    selected_names = {s.name for s in selected}
    names = [s.name for s in pipe.stages]
    if force is True:
        forced = set(selected_names)
    elif not force:
        forced = set()
    else:
        forced = {force} if isinstance(force, str) else set(force)
        for f in sorted(forced):
            if f not in names:
                raise TaggerError(f"--force {f}: {pipe.path} has no stage {f!r}{_suggest(f, names)} "
                                  f"(stages: {', '.join(names)})")
            if f not in selected_names:
                raise TaggerError(f"--force {f}: stage {f!r} is outside the --from/--until range")

    code = code_version()
    summary: dict = {
        "pipeline": pipe.name, "file": str(pipe.path), "workdir": str(pipe.workdir),
        "status": "dry run" if dry_run else "running", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_version": code, "variables": pipe.variables, "seconds": None, "stages": [],
    }
    records = {s.name: {"name": s.name, "command": s.command, "status": "not selected", "seconds": None,
                        "reason": None, "out": None if s.out is None else str(s.out),
                        "argv": ["tagger", *s.command.split(), *s.argv], "metric": None}
               for s in pipe.stages}
    summary["stages"] = [records[n] for n in names]
    would_run: set[str] = set()
    n_sel = len(selected)

    def finish(status: str) -> None:
        summary["status"] = status
        summary["seconds"] = round(time.perf_counter() - t_start, 2)
        if not dry_run:
            pipe.workdir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(pipe.workdir / SUMMARY, summary)

    for k, stage in enumerate(selected, 1):
        rec = records[stage.name]
        head = f"[{k}/{n_sel}] {stage.name}"
        inputs: dict[str, str] = {}
        pending = None
        for inp in stage.inputs:
            if inp.upstream is not None:
                up = pipe.stage(inp.upstream)
                if dry_run and inp.upstream in would_run:
                    pending = inp.upstream
                    continue
                stamp, h = read_stamp(pipe, up)
                if stamp is None or (up.out is not None and not up.out.exists()):
                    raise TaggerError(f"{pipe.path}: stage {stage.name!r} needs the output of {up.name!r}, "
                                      f"which has not run successfully (run the pipeline without --from)")
                inputs[f"stage:{up.name}"] = h
            else:
                inputs[inp.path] = hash_path(inp.path)
        stamp, _ = read_stamp(pipe, stage)
        key = None if pending else _stage_key(stage, inputs, code)
        if stage.name in forced:
            reason = "forced"
        elif pending:
            reason = f"{pending} reruns"
        elif stamp is None:
            reason = "no previous run"
        elif stage.out is not None and not stage.out.exists():
            reason = "output missing"
        elif stamp.get("key") != key:
            reason = _why(stamp, stage, inputs, code)
        else:
            reason = None
        rec["reason"] = reason
        shown = shlex.join(["tagger", *stage.command.split(), *stage.argv])

        if dry_run:
            if reason is None:
                rec["status"] = "up to date"
                say(f"{head}: up to date")
            else:
                rec["status"] = "would run"
                would_run.add(stage.name)
                say(f"{head}: would run ({reason}): {shown}")
            rec["metric"] = _metric(stage)
            continue
        if reason is None:
            rec["status"], rec["seconds"] = "skipped", 0.0
            rec["metric"] = _metric(stage)
            say(f"{head}: skipped (up to date)")
            continue

        say(f"{head}: running ({reason}): {shown}")
        sp = stamp_path(pipe, stage)
        try:
            sp.unlink(missing_ok=True)  # no stamp until this run succeeds
            pipe.workdir.mkdir(parents=True, exist_ok=True)
            if stage.out is not None and stage.out != stage.dir:
                stage.out.parent.mkdir(parents=True, exist_ok=True)
            if stage.out is not None and not stage.pass_force and stage.out.exists():
                shutil.rmtree(stage.out) if stage.out.is_dir() else stage.out.unlink()
        except OSError as exc:
            raise TaggerError(f"{pipe.workdir}: cannot prepare the stage directory ({exc})") from None
        t0 = time.perf_counter()
        try:
            status, message = _invoke(stage)
        except KeyboardInterrupt:
            rec["status"], rec["seconds"] = "interrupted", round(time.perf_counter() - t0, 2)
            finish("interrupted")
            raise
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        if status != 0:
            rec["status"], rec["error"] = "failed", message
            for later in selected[k:]:
                records[later.name]["status"] = "not run"
            finish("failed")
            say(f"{head}: failed after {rec['seconds']:.1f}s")
            raise PipelineFailed(f"{pipe.path}: stage {stage.name!r} ({stage.command}) failed: {message}",
                                 status if status > 0 else 2, summary)
        rec["status"] = "ran"
        rec["metric"] = _metric(stage)
        sp.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(sp, {
            "stage": stage.name, "command": stage.command, "argv": stage.argv, "inputs": inputs, "code": code,
            "key": key, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": rec["seconds"],
            "nonce": os.urandom(8).hex(),
        })
        say(f"{head}: done in {rec['seconds']:.1f}s")

    finish("dry run" if dry_run else "ok")
    return summary


def _metric(stage: Stage) -> dict | None:
    m = headline(stage)
    return None if m is None else {"name": m[0], "value": m[1]}
