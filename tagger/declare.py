"""What a command declares about itself to ``tagger run``: the files it reads and its headline figure.

The pipeline runner reads these declarations instead of guessing from option names or values:

* a parameter whose click type is :class:`InputPath` names a file or directory the command reads:
  the runner resolves it against the pipeline file, checks it exists before any stage runs and
  hashes it to decide whether the stage is up to date;
* a command of class :class:`Command` may carry a :class:`Headline`, which names the JSON file
  under its ``--out`` directory and the key whose value the pipeline summary shows, and may say
  that no pipeline stage runs it (``tagger run`` itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


class InputPath(click.Path):
    """A click path naming a file or directory that the command reads.

    ``keyed``: the value is ``NAME=PATH`` (``--label-file pos=x.txt``). ``split_suffix``: a value
    that is not itself a path may be ``PATH:NAME`` (``--data prepared:dev``). ``or_name``: the
    value may instead be a name (``--embeddings glove-6b-50d``), so a path that does not exist is
    left to the command to judge.
    """

    def __init__(self, *, keyed: bool = False, split_suffix: bool = False, or_name: bool = False,
                 **path_options: Any) -> None:
        super().__init__(**path_options)
        self.keyed = keyed
        self.split_suffix = split_suffix
        self.or_name = or_name

    def readings(self, value: str) -> list[tuple[str, str, str]]:
        """The ways ``value`` reads as ``(prefix, path, suffix)``, the likeliest first."""
        if self.keyed:
            name, sep, path = value.partition("=")
            return [(name + sep, path, "")] if sep else [("", value, "")]
        readings = [("", value, "")]
        if self.split_suffix and ":" in value:
            head, _, tail = value.rpartition(":")
            if head:
                readings.append(("", head, ":" + tail))
        return readings


class Headline:
    """The figure a pipeline summary shows for a stage: a value in a JSON file the command writes.

    ``file`` is relative to the command's ``--out`` directory; ``keys`` are dotted paths tried in
    order (the first present wins), where ``*`` maps over a table (``splits.*.sentences`` gives
    ``{split: sentences}``); ``label`` names the figure (default: the key), or computes the name
    from the JSON document.
    """

    def __init__(self, file: str, *keys: str, label: str | Callable[[dict], str] | None = None):
        self.file, self.keys, self.label = file, keys, label

    def read(self, out_dir: Path) -> tuple[str, Any] | None:
        """``(label, value)`` from ``out_dir/file``, or ``None`` when the file or the keys are absent."""
        try:
            doc = json.loads((out_dir / self.file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        for key in self.keys:
            try:
                value = _lookup(doc, key.split("."))
            except (KeyError, TypeError):
                continue
            label = self.label(doc) if callable(self.label) else (self.label or key)
            return label, value
        return None


class Command(click.Command):
    """A click command with what ``tagger run`` reads of it: its ``headline``, and whether a stage may run it.

    Use it as ``@click.command(cls=Command, headline=Headline(...))``.
    """

    def __init__(self, *args: Any, headline: Headline | None = None, stage: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.headline = headline
        self.stage = stage


def _lookup(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    head, rest = parts[0], parts[1:]
    if not isinstance(doc, dict):
        raise TypeError(head)
    if head == "*":
        return {k: _lookup(v, rest) for k, v in doc.items() if isinstance(v, dict)}
    return _lookup(doc[head], rest)
