"""Stamps: whether a stage is up to date.

A stage is skipped ("skipped (up to date)") when its command, resolved arguments, the SHA-256
of its input files (directories are walked; an upstream stage counts by the hash of its stamp),
and the code version (tagger version + hash of the package's sources) are unchanged since its
last successful run and its output exists. Stamps live in ``<workdir>/.stamps/<stage>.json``,
written only after success, so changing an input reruns that stage and everything downstream.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tagger import __version__
from tagger.errors import TaggerError
from tagger.fsutil import atomic_write_json, sha256_file
from tagger.pipeline.spec import Pipeline, Stage

STAMPS = ".stamps"

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


def stamp_path(pipe: Pipeline, stage: Stage) -> Path:
    return pipe.workdir / STAMPS / f"{stage.name}.json"


def read_stamp(pipe: Pipeline, stage: Stage) -> tuple[dict | None, str | None]:
    """(stamp, SHA-256 of the stamp file) or (None, None)."""
    try:
        data = stamp_path(pipe, stage).read_bytes()
        return json.loads(data), hashlib.sha256(data).hexdigest()
    except (OSError, ValueError):
        return None, None


@dataclass
class Decision:
    """Whether a stage must run: ``reason`` is None when it is up to date."""

    inputs: dict[str, str]  # input path (or stage:NAME) → hash
    key: str | None  # hash of command, argv, inputs and code (None: an upstream stage would rerun first)
    reason: str | None


def decide(pipe: Pipeline, stage: Stage, code: str, forced: bool, would_run: set[str]) -> Decision:
    """Hash the stage's inputs and compare with its stamp; ``would_run``: upstream stages a dry run would run."""
    inputs: dict[str, str] = {}
    pending = None
    for inp in stage.inputs:
        if inp.upstream is None:
            inputs[inp.path] = hash_path(inp.path)
            continue
        if inp.upstream in would_run:
            pending = inp.upstream
            continue
        up = pipe.stage(inp.upstream)
        up_stamp, h = read_stamp(pipe, up)
        if up_stamp is None or (up.out is not None and not up.out.exists()):
            raise TaggerError(f"{pipe.path}: stage {stage.name!r} needs the output of {up.name!r}, "
                              f"which has not run successfully (run the pipeline without --from)")
        inputs[f"stage:{up.name}"] = str(h)
    stamp, _ = read_stamp(pipe, stage)
    key = None if pending else _stage_key(stage, inputs, code)
    if forced:
        reason: str | None = "forced"
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
    return Decision(inputs, key, reason)


def write_stamp(pipe: Pipeline, stage: Stage, decision: Decision, code: str, seconds: float) -> None:
    """Record a successful run (the stamp's own hash is what downstream stages see of it)."""
    sp = stamp_path(pipe, stage)
    sp.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(sp, {
        "stage": stage.name, "command": stage.command, "argv": stage.argv, "inputs": decision.inputs, "code": code,
        "key": decision.key, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": seconds,
        "nonce": os.urandom(8).hex(),  # a rerun with equal outputs still changes the stamp: downstream reruns
    })


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
        more = " ..." if len(changed) > 3 else ""
        return "changed: " + ", ".join(c.removeprefix("stage:") for c in changed[:3]) + more
    if stamp.get("code") != code:
        return "code changed"
    return "changed"
