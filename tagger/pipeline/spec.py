"""Pipeline files: parse and validate the TOML file into stages with resolved command lines.

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

The files a stage reads are the values of the parameters its command declares as inputs (see
:mod:`tagger.declare`); they must exist before anything runs, unless an earlier stage makes them.
How a stage is skipped when nothing changed is described in :mod:`tagger.pipeline.stamps`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import tomllib

from tagger.errors import TaggerError
from tagger.pipeline.command import CommandLine, Input, long_flag, resolve_command, runner_flag, suggest, type_name

TOP_KEYS = ("pipeline", "vars", "stages")
PIPELINE_KEYS = ("name", "description")
STAGE_KEYS = ("name", "command", "args", "options", "out", "description")
SIMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REF = re.compile(r"\$\$|\$\{([^}]*)\}")
STAGE_REF = re.compile(r"^stages\.(.+)\.(out|dir)$")
RESERVED_STAGE_NAMES = {"summary.json"}


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


def load_pipeline(path: str | os.PathLike, sets: Mapping[str, str] | None = None, workdir=None,
                  env: Mapping[str, str] | None = None, *, commands: click.Group) -> Pipeline:
    """Read and validate a pipeline file whose stages run ``commands`` (the tagger command group).

    Every problem is a TaggerError naming the file and key.
    """
    loader = _Loader(Path(path), sets or {}, os.environ if env is None else env)
    data = loader.read()
    name, description = loader.meta(data.get("pipeline", {}))
    loader.read_vars(data.get("vars", {}))
    workdir = Path(os.path.normpath(str(workdir))) if workdir is not None else Path("runs") / name
    stages: list[Stage] = []
    known: dict[str, Stage] = {}
    for i, raw in enumerate(loader.raw_stages(data.get("stages"))):
        st = loader.stage(i, raw, workdir, known, commands)
        stages.append(st)
        known[st.name] = st
    return Pipeline(loader.path, name, description, workdir, stages, loader.variables())


class _Loader:
    """The file, its variables and the ``${...}`` substitutions of its values."""

    def __init__(self, path: Path, sets: Mapping[str, str], env: Mapping[str, str]):
        self.path = path
        self.sets = dict(sets)
        self.env = env
        self.base = str(path.parent) if str(path.parent) != "." else ""  # for relative paths in the file
        self.file_vars: dict[str, str] = {}
        self.used_vars: set[str] = set()
        self.stage_names: list[str | None] = []

    def fail(self, key: str, msg: str) -> TaggerError:
        return TaggerError(f"{self.path}: {key}: {msg}" if key else f"{self.path}: {msg}")

    def read(self) -> dict:
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
                raise self.fail(k, f"unknown key{suggest(k, TOP_KEYS)} (expected {', '.join(TOP_KEYS)})")
        return data

    def meta(self, meta: Any) -> tuple[str, str]:
        """The pipeline's (name, description) from its ``[pipeline]`` table."""
        if not isinstance(meta, dict):
            raise self.fail("pipeline", "must be a table ([pipeline])")
        for k, v in meta.items():
            if k not in PIPELINE_KEYS:
                raise self.fail(f"pipeline.{k}", f"unknown key{suggest(k, PIPELINE_KEYS)} "
                                                 f"(expected {', '.join(PIPELINE_KEYS)})")
            if not isinstance(v, str):
                raise self.fail(f"pipeline.{k}", f"must be a string, not {type_name(v)}")
        name = meta.get("name", self.path.stem)
        if not SIMPLE_NAME.match(name) or name in (".", ".."):
            raise self.fail("pipeline.name" if "name" in meta else "",
                            f"pipeline name {name!r} must be a simple name (letters, digits, _ . -)")
        return name, meta.get("description", "")

    def read_vars(self, vars_: Any) -> None:
        if not isinstance(vars_, dict):
            raise self.fail("vars", "must be a table ([vars])")
        for k, v in vars_.items():
            if not VAR_NAME.match(k):
                raise self.fail(f"vars.{k}", "not a variable name (letters, digits and _)")
            if isinstance(v, bool):
                v = str(v).lower()
            elif not isinstance(v, (str, int, float)):
                raise self.fail(f"vars.{k}", f"must be a string or number, not {type_name(v)}")
            v = str(v)
            if "${" in v:
                raise self.fail(f"vars.{k}", "a [vars] value cannot reference other variables")
            self.file_vars[k] = v

    def raw_stages(self, raw_stages: Any) -> list[dict]:
        if raw_stages is None:
            raise self.fail("stages", "no stages (add [[stages]] tables)")
        if not isinstance(raw_stages, list) or not all(isinstance(s, dict) for s in raw_stages):
            raise self.fail("stages", "must be an array of tables ([[stages]])")
        if not raw_stages:
            raise self.fail("stages", "no stages")
        self.stage_names = [s.get("name") if isinstance(s.get("name"), str) else None for s in raw_stages]
        return raw_stages

    def stage(self, i: int, raw: dict, workdir: Path, known: dict[str, Stage], commands: click.Group) -> Stage:
        """Stage ``i`` of the file, its command line resolved and checked."""
        where = f"stages[{i}]"
        self._check_stage_table(where, raw, known)
        cmd, err = resolve_command(commands, raw["command"])
        if cmd is None:
            raise self.fail(f"{where}.command", err)
        command = " ".join(raw["command"].split())
        out_param = next((p for p in cmd.params if runner_flag(p) == "out"), None)
        force_param = next((p for p in cmd.params if runner_flag(p) == "force"), None)
        stage_dir = workdir / raw["name"]
        out = self._out(where, raw, command, out_param, stage_dir)
        line = CommandLine(cmd, command, where, lambda text, key: self.expand(text, key, i, known), self.fail,
                           self.base)
        line.add_args(raw.get("args", []))
        line.add_options(raw.get("options", {}))
        if out is not None and out_param is not None:
            line.argv.extend([str(long_flag(out_param.opts)), str(out)])
        pass_force = False
        if isinstance(force_param, click.Option) and force_param.is_flag:
            line.argv.append(str(long_flag(force_param.opts)))
            pass_force = True
        return Stage(i, raw["name"], command, cmd, stage_dir, out, line.argv, line.inputs, line.deps, pass_force)

    def _check_stage_table(self, where: str, raw: dict, known: dict[str, Stage]) -> None:
        for k in raw:
            if k not in STAGE_KEYS:
                raise self.fail(f"{where}.{k}", f"unknown stage key{suggest(k, STAGE_KEYS)} "
                                                f"(expected {', '.join(STAGE_KEYS)})")
        for k in ("name", "command"):
            if k not in raw:
                raise self.fail(where, f"missing {k!r}")
        for k in ("name", "command", "out", "description"):
            if k in raw and not isinstance(raw[k], str):
                raise self.fail(f"{where}.{k}", f"must be a string, not {type_name(raw[k])}")
        name = raw["name"]
        if not SIMPLE_NAME.match(name) or name in RESERVED_STAGE_NAMES:
            raise self.fail(f"{where}.name", f"{name!r}: a stage name must be a simple name "
                                             "(letters, digits, _ . -; not starting with . or -)")
        if name in known:
            raise self.fail(f"{where}.name", f"duplicate stage name {name!r}")

    def _out(self, where: str, raw: dict, command: str, out_param: click.Parameter | None,
             stage_dir: Path) -> Path | None:
        """What the stage's ``--out`` gets: its directory, or a file named by the stage's ``out`` key."""
        if "out" in raw:
            rel = raw["out"]
            pure = Path(rel)
            if not rel or pure.is_absolute() or ".." in pure.parts or rel.startswith("~"):
                raise self.fail(f"{where}.out", f"{rel!r}: must be a relative name inside the stage directory "
                                                "(no '..', not absolute)")
            if out_param is None:
                raise self.fail(f"{where}.out", f"{command!r} has no --out option")
            return Path(os.path.normpath(stage_dir / rel))
        if out_param is None:
            return None
        if isinstance(out_param.type, click.Path) and not out_param.type.dir_okay:
            raise self.fail(where, f"{command!r} writes its --out to a file: give the stage "
                                   f"out = \"FILE NAME\" (relative to the stage directory)")
        return stage_dir

    def variables(self) -> dict[str, str]:
        """Every variable's value; a ``--set`` of a variable the file does not use is an error."""
        unused = sorted(k for k in self.sets if k not in self.used_vars and k not in self.file_vars)
        if unused:
            raise TaggerError(f"--set {unused[0]}: {self.path} has no variable {unused[0]}"
                              f"{suggest(unused[0], set(self.file_vars) | self.used_vars)}")
        return {k: self.lookup(k, "")[0] for k in sorted(set(self.file_vars) | self.used_vars)}

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

    def expand(self, raw: str, key: str, stage_index: int, known: dict[str, Stage]) -> tuple[str, list[str], str]:
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
            if STAGE_REF.match(inner):
                text, name = self._stage_ref(inner, key, stage_index, known)
                refs.append(name)
                if at_start:
                    base = ""
                return text
            if inner.startswith("stages.") or inner.startswith("stages["):
                raise self.fail(key, f"${{{inner}}}: expected ${{stages.NAME.out}} or ${{stages.NAME.dir}}")
            if not VAR_NAME.match(inner):
                raise self.fail(key, f"${{{inner}}}: not a variable name")
            value, vbase = self.lookup(inner, key)
            if at_start:
                base = vbase
            return value

        return REF.sub(sub, raw), refs, base

    def _stage_ref(self, inner: str, key: str, stage_index: int, known: dict[str, Stage]) -> tuple[str, str]:
        """``stages.NAME.out|dir`` → (its path, NAME)."""
        sm = STAGE_REF.match(inner)
        assert sm is not None
        name, what = sm.groups()
        if name not in known:
            if name == self.stage_names[stage_index]:
                why = "a stage cannot use its own output"
            elif name in self.stage_names[stage_index:]:
                why = f"stage {name!r} comes later; a stage can only use earlier stages' outputs"
            else:
                why = f"no stage named {name!r}{suggest(name, [n for n in self.stage_names if n])}"
            raise self.fail(key, f"${{{inner}}}: {why}")
        st = known[name]
        return str(st.dir if what == "dir" or st.out is None else st.out), name
