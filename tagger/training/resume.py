"""Which options a resumed run uses: the saved ones, plus the few a user may change.

A user resumes by re-running the same command with ``--resume`` added. Every option given
again with its saved value is accepted; only the options in :data:`RESUME_OVERRIDES` may take
a new value (they extend, shorten or move a run without changing what it computes); any other
new value is an error that names the saved one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tagger.errors import TaggerError
from tagger.options import flag_name, from_toml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

#: Options whose value a resumed run may change.
RESUME_OVERRIDES = ("epochs", "max_minutes", "patience", "device", "threads", "eval_batch_size")


def given_options(opts: Any) -> dict[str, Any]:
    """The fields of an options object that differ from the defaults (what a caller "gave")."""
    defaults = type(opts)()
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)
            if getattr(opts, f.name) != getattr(defaults, f.name)}


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def resumed_options(cls: type[T], saved: str | Path, table: str, given: Mapping[str, Any]) -> T:
    """The options saved in ``saved`` (a ``[table]`` TOML file) with the allowed values of ``given``."""
    opts = from_toml(cls, saved, table)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in given.items():
        if name not in fields:
            raise TaggerError(f"unknown option {name!r}")
        old = getattr(opts, name)
        if name in RESUME_OVERRIDES or value == old:
            continue
        f = fields[name]
        flag = (flag_name(f) if value or not isinstance(value, bool) else "--no-" + flag_name(f)[2:])
        shown = "" if isinstance(value, bool) else f" {value}"
        raise TaggerError(
            f"{flag}{shown} conflicts with the saved configuration ({name} = {_show(old)}) in {saved}; "
            "--resume continues that run (only " + ", ".join(flag_name(fields[k]) for k in RESUME_OVERRIDES
                                                           if k in fields) + " may change)")
    return dataclasses.replace(opts, **{k: v for k, v in given.items() if k in RESUME_OVERRIDES})
