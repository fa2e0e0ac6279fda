"""A stage's command: the click command it names, its argument vector and the files it reads.

Which values name files is what the command declares (:class:`tagger.declare.InputPath`
parameters), never a guess from a value's look.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import click

from tagger.declare import Command, InputPath
from tagger.errors import TaggerError

RUNNER_OPTIONS = ("out", "force")  # set by the runner, never by a stage

# (raw value, key) → (text, upstream stage names, base directory of a relative path in the text)
Expand = Callable[[str, str], tuple[str, list[str], str]]
Fail = Callable[[str, str], TaggerError]


@dataclass
class Input:
    """A path a stage reads: hashed, or (for an earlier stage's output) counted by its stamp."""

    key: str  # where it came from, e.g. stages[0].options.train
    path: str
    upstream: str | None = None


def type_name(v: Any) -> str:
    """How an error message names the TOML type of ``v``."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_command(group: click.Group, words: str) -> tuple[click.Command | None, str]:
    """A command path such as ``"classify train"`` in ``group`` → (leaf click command, error message)."""
    cmd: click.Command = group
    parts = words.split()
    if not parts:
        return None, "empty command"
    path: list[str] = []
    for w in parts:
        if not isinstance(cmd, click.Group):
            return None, f"'{' '.join(path)}' takes no subcommand {w!r}"
        sub = cmd.commands.get(w)
        if sub is None:
            names = sorted(n for n, c in cmd.commands.items() if _stage_able(c))
            return None, (f"unknown command {' '.join([*path, w])!r}{suggest(w, names)}; "
                          f"commands{' of ' + repr(' '.join(path)) if path else ''}: {', '.join(names)}")
        if not _stage_able(sub):
            return None, f"a pipeline cannot run {' '.join([*path, w])!r}"
        cmd = sub
        path.append(w)
    if isinstance(cmd, click.Group):
        return None, f"{words!r} needs a subcommand: {', '.join(sorted(cmd.commands))}"
    return cmd, ""


def _stage_able(cmd: click.Command) -> bool:
    return not isinstance(cmd, Command) or cmd.stage


def long_flag(opts: Iterable[str]) -> str | None:
    """The first ``--long`` spelling of an option."""
    longs = [o for o in opts if o.startswith("--")]
    return longs[0] if longs else None


def runner_flag(p: click.Parameter) -> str | None:
    """'out' or 'force' for the options the runner sets (by flag: --out may be named out_dir)."""
    if isinstance(p, click.Option):
        for name in RUNNER_OPTIONS:
            if f"--{name}" in p.opts:
                return name
    return None


def _norm(base: str, value: str) -> str:
    return os.path.normpath(os.path.join(base, value)) if value else value


class CommandLine:
    """Builds one stage's argument vector from its ``args`` and ``options``, collecting its inputs.

    ``expand`` substitutes the ``${...}`` references of a raw string; ``fail`` makes the error
    for a key; ``base`` is the directory literal relative paths are relative to.
    """

    def __init__(self, cmd: click.Command, command: str, where: str, expand: Expand, fail: Fail, base: str):
        self.cmd, self.command, self.where = cmd, command, where
        self.expand, self.fail, self.base = expand, fail, base
        self.argv: list[str] = []
        self.inputs: list[Input] = []
        self.deps: list[str] = []

    # ---- positional arguments and options
    def add_args(self, args: Any) -> None:
        key = f"{self.where}.args"
        if not isinstance(args, list):
            raise self.fail(key, f"must be a list, not {type_name(args)}")
        arguments = [p for p in self.cmd.params if isinstance(p, click.Argument)]
        usage = " ".join(a.human_readable_name.upper() + ("..." if a.nargs < 0 else "")
                         for a in arguments) or "no arguments"
        fixed = sum(a.nargs for a in arguments if a.nargs > 0)
        variadic = [a for a in arguments if a.nargs < 0]
        needed = sum(a.nargs for a in arguments if a.nargs > 0 and a.required) + sum(1 for a in variadic if a.required)
        if len(args) < needed or (not variadic and len(args) > fixed):
            raise self.fail(key, f"{self.command!r} takes {usage} (got {len(args)} argument"
                                 f"{'' if len(args) == 1 else 's'})")
        pos = 0
        for a in arguments:
            n = a.nargs if a.nargs > 0 else len(args) - fixed
            for _ in range(max(0, n)):
                if pos >= len(args):
                    break
                self.argv.append(self.value(args[pos], f"{key}[{pos}]", a))
                pos += 1

    def _flags(self) -> dict[str, tuple[click.Option, bool]]:
        """``flag`` (without ``--``) → (option, whether it is the primary spelling, not ``--no-x``)."""
        by_flag: dict[str, tuple[click.Option, bool]] = {}
        for p in self.cmd.params:
            if isinstance(p, click.Option):
                by_flag.update({o[2:]: (p, True) for o in p.opts if o.startswith("--")})
                by_flag.update({o[2:]: (p, False) for o in p.secondary_opts if o.startswith("--")})
        return by_flag

    def add_options(self, options: Any) -> None:
        if not isinstance(options, dict):
            raise self.fail(f"{self.where}.options", f"must be a table ([stages.options]), not {type_name(options)}")
        by_flag = self._flags()
        seen: dict[str, str] = {}
        for k, v in options.items():
            key = f"{self.where}.options.{k}"
            flag = k.replace("_", "-")
            if flag not in by_flag:
                names = [f for f, (p, prim) in by_flag.items() if prim and not runner_flag(p) and f != "help"]
                raise self.fail(key, f"unknown option --{flag} for {self.command!r}{suggest(flag, names)}")
            param, primary = by_flag[flag]
            if runner_flag(param):
                extra = " (use the stage key out = \"NAME\" for a file name)" if runner_flag(param) == "out" else ""
                raise self.fail(key, f"--{flag} is set by the pipeline runner{extra}")
            if param.name in seen:
                raise self.fail(key, f"same option as {seen[param.name]}")
            seen[str(param.name)] = key
            self._option(param, primary, flag, key, v)
        for p in self.cmd.params:
            if isinstance(p, click.Option) and p.required and not runner_flag(p) and p.name not in seen:
                raise self.fail(f"{self.where}.options", f"{self.command!r} needs the option {long_flag(p.opts)}")

    def _option(self, param: click.Option, primary: bool, flag: str, key: str, v: Any) -> None:
        long = str(long_flag(param.opts))
        if param.is_flag:
            if not isinstance(v, bool):
                raise self.fail(key, f"--{flag} is a flag: give true or false, not {type_name(v)}")
            if v if primary else not v:
                self.argv.append(long)
            elif param.secondary_opts:
                self.argv.append(str(long_flag(param.secondary_opts)))
            return
        if param.count:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise self.fail(key, f"--{flag} counts: give a number")
            self.argv.extend([long] * v)
            return
        if isinstance(v, list) and not param.multiple:
            raise self.fail(key, f"--{flag} takes one value, not a list")
        if isinstance(v, bool):
            raise self.fail(key, f"--{flag} takes a value, not true/false")
        items = v if isinstance(v, list) else [v]
        for j, item in enumerate(items):
            self.argv.extend([long, self.value(item, f"{key}[{j}]" if isinstance(v, list) else key, param)])

    # ---- one value
    def value(self, v: Any, key: str, param: click.Parameter) -> str:
        """The command-line text of a TOML value for ``param``, checked; its inputs are recorded."""
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise self.fail(key, f"must be a string or number, not {type_name(v)}")
        if isinstance(v, str):
            text, refs, base = self.expand(v, key)
        else:
            text, refs, base = str(v), [], self.base
        self.deps.extend(r for r in refs if r not in self.deps)
        t = param.type
        if isinstance(t, InputPath):
            return self._input(text, key, t, refs, base)
        if isinstance(t, click.Path):  # a path the command writes or only names
            text = _norm(base, text) if text != "-" else text
            if t.exists and not refs and not os.path.exists(text):
                raise self.fail(key, f"{text}: no such file or directory")
        elif not refs:
            try:
                t.convert(text, param, None)
            except click.BadParameter as exc:
                raise self.fail(key, exc.format_message()) from None
            except Exception:  # a custom type that needs a context: leave it to the command
                pass
        if refs:  # made by an earlier stage: counted by that stage's stamp
            self.inputs.append(Input(key, text, refs[0]))
        return text

    def _input(self, text: str, key: str, t: InputPath, refs: list[str], base: str) -> str:
        """An input file or directory: resolved against ``base``; it must exist unless an earlier stage makes it."""
        if text == "-" and t.allow_dash:
            return text
        readings = [(pre, _norm(base, path), suf) for pre, path, suf in t.readings(text)]
        if refs:
            pre, path, suf = readings[0]
            self.inputs.append(Input(key, path, refs[0]))
            return pre + path + suf
        for pre, path, suf in readings:
            if os.path.exists(path):
                self.inputs.append(Input(key, path))
                return pre + path + suf
        if t.or_name:  # a name such as glove-6b-50d: the command judges it
            return text
        pre, path, suf = readings[0]
        raise self.fail(key, f"{pre + path + suf}: no such file or directory")
