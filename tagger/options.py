"""Option dataclasses described once: help, choices and bounds live in the field metadata.

A field declared with :func:`option` carries everything the rest of the program needs to know
about it, so that nothing is written out twice:

* :func:`check_fields` validates an instance (choices, bounds, patterns) with messages that name
  the command-line flag;
* :func:`bounds` gives a field's range to code that checks the same value elsewhere (a model
  directory's ``config.json`` is checked against the bounds of the options that trained it);
* :func:`from_toml` / :func:`to_toml` read and write a ``[table]`` of options, type-checked;
* :func:`click_options` makes one click option per field (default ``None``, so that a command
  can tell a value the user gave from a default; the help shows the dataclass default).
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import tomllib

from tagger.errors import TaggerError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
Number = int | float


def option(
    default: Any = MISSING,
    *,
    help: str,
    choices: Sequence[str] | None = None,
    min: Number | None = None,
    max: Number | None = None,
    above: Number | None = None,
    below: Number | None = None,
    pattern: str | None = None,
    flag: str | None = None,
    cli: bool = True,
    click_type: Any = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its help text and constraints.

    ``min``/``max`` are inclusive bounds, ``above``/``below`` exclusive ones; ``pattern`` is a
    regular expression the whole (string) value must match; ``flag`` overrides the flag name
    (``--name-with-dashes`` by default); ``cli=False`` keeps the field off the command line;
    ``click_type`` replaces the click type the field's annotation implies (e.g. a
    :class:`tagger.declare.InputPath` for a file the command reads).
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "min": min, "max": max,
            "above": above, "below": below, "pattern": pattern, "flag": flag, "cli": cli,
            "click_type": click_type}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_name(f: Field) -> str:
    """The command-line spelling of a field: ``--batch-size`` for ``batch_size``."""
    return "--" + (f.metadata.get("flag") or f.name.replace("_", "-"))


def _field(cls_or_obj: Any, name: str) -> Field:
    for f in dataclasses.fields(cls_or_obj):
        if f.name == name:
            return f
    raise KeyError(name)


def bounds(cls: type, name: str) -> tuple[Number | None, Number | None]:
    """The inclusive ``(min, max)`` of a field (``None`` where unbounded)."""
    m = _field(cls, name).metadata
    return m.get("min"), m.get("max")


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def field_problem(f: Field, value: Any, name: str | None = None) -> str | None:
    """Why ``value`` is not allowed for field ``f`` (called ``name``, default its flag), or ``None``."""
    m = f.metadata
    name = name or flag_name(f)
    if m.get("choices") and value not in m["choices"]:
        return f"{name} must be one of {', '.join(m['choices'])} (got {value!r})"
    if m.get("pattern") and not (isinstance(value, str) and re.fullmatch(m["pattern"], value)):
        return f"{name}: invalid value {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, above, below = m.get("min"), m.get("max"), m.get("above"), m.get("below")
        # written as what is allowed, so that NaN (never within a bound) is refused
        within = (lo is None or value >= lo) and (above is None or value > above) and \
            (hi is None or value <= hi) and (below is None or value < below)
        if not within:
            return f"{name} must be {_range_text(lo, hi, above, below)} (got {value})"
    return None


def _range_text(lo: Number | None, hi: Number | None, above: Number | None, below: Number | None) -> str:
    if (lo is None and above is None) or (hi is None and below is None):  # one-sided
        if lo is not None:
            return f"at least {lo}"
        if above is not None:
            return "positive" if above == 0 else f"greater than {above}"
        return f"at most {hi}" if hi is not None else f"less than {below}"
    left = f"[{lo}" if lo is not None else f"({above}"
    right = f"{hi}]" if hi is not None else f"{below})"
    return f"in {left}, {right}"


def check_fields(obj: Any) -> None:
    """Raise :class:`TaggerError` for the first field whose value breaks its constraints."""
    for f in dataclasses.fields(obj):
        why = field_problem(f, getattr(obj, f.name))
        if why:
            raise TaggerError(why)


# --------------------------------------------------------------------------- TOML


def _scalar_type(tp: Any) -> Any:
    """``int`` for ``int``, ``str`` for ``str | None``; unions of several scalars stay unions."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tuple(args)
    return tp


def coerce(tp: Any, value: Any) -> Any:
    """``value`` converted to the field type ``tp``, or ``ValueError``."""
    tp = _scalar_type(tp)
    kinds = tp if isinstance(tp, tuple) else (tp,)
    for kind in kinds:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if typing.get_origin(kind) is list and isinstance(value, list):
            item = typing.get_args(kind)[0]
            return [coerce(item, x) for x in value]
    names = "/".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise ValueError(f"must be of type {names}")


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Type-checked field values of ``cls`` from ``data`` (keys may use dashes); errors name ``where``."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise TaggerError(f"{where}: unknown option {key!r}")
        try:
            out[name] = coerce(hints[name], value)
        except ValueError as exc:
            raise TaggerError(f"{where}: option {key!r} {exc}") from None
    return out


def read_toml(path: str | Path, cls: type[T], table: str) -> dict[str, Any]:
    """The options of ``[table]`` (or of a flat file) in ``path``, type-checked against ``cls``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaggerError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise TaggerError(f"{path}: is a directory, not a config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TaggerError(f"{path}: invalid TOML ({exc})") from None
    data = data.get(table, data)
    if not isinstance(data, dict):
        raise TaggerError(f"{path}: [{table}] must be a table of options")
    return from_mapping(cls, data, str(path))


def from_toml(cls: type[T], path: str | Path, table: str, **overrides: Any) -> T:
    """An instance of ``cls`` from a TOML file; ``overrides`` win over the file."""
    return cls(**{**read_toml(path, cls, table), **overrides})


def to_toml(obj: Any, table: str, comment: str = "") -> str:
    """``obj``'s fields as a TOML table that :func:`from_toml` reads back exactly."""
    lines = [f"# {comment}"] if comment else []
    lines.append(f"[{table}]")
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if v is not None:
            lines.append(f"{f.name} = {_fmt(v) if isinstance(v, bool) else json.dumps(v, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- click


def _click_type(tp: Any, f: Field) -> Any:
    if f.metadata.get("click_type") is not None:
        return f.metadata["click_type"]
    if f.metadata.get("choices"):
        return click.Choice(list(f.metadata["choices"]))
    tp = _scalar_type(tp)
    if isinstance(tp, tuple):  # e.g. int | str: the command converts
        return str
    return tp


def click_options(cls: type, skip: Sequence[str] = (), only: Sequence[str] | None = None
                  ) -> Callable[[Callable], Callable]:
    """A decorator adding one click option per field of ``cls`` (``only`` those, except ``skip`` and ``cli=False``).

    Every option defaults to ``None`` so that the command sees only what the user gave; the
    help text ends with the dataclass default.
    """
    hints = typing.get_type_hints(cls)

    def decorate(func: Callable) -> Callable:
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip or (only is not None and f.name not in only) or not f.metadata.get("cli", True) \
                    or "help" not in f.metadata:
                continue
            name = flag_name(f)
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else None)
            shown = "" if default in (None, []) else f" [default: {_fmt(default)}]"
            help_text = f.metadata["help"] + shown
            tp = _scalar_type(hints[f.name])
            if tp is bool:
                opt = click.option(f"{name}/--no-{name[2:]}", f.name, default=None, help=help_text)
            elif typing.get_origin(tp) is list:
                item = typing.get_args(tp)[0]
                opt = click.option(name, f.name, multiple=True, default=None, help=help_text,
                                   type=f.metadata.get("click_type") or item)
            else:
                opt = click.option(name, f.name, type=_click_type(hints[f.name], f), default=None, help=help_text)
            func = opt(func)
        return func

    return decorate


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options a user gave: click passes ``None`` (or ``()`` for repeatable ones) otherwise."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if v is not None and v != ()}
