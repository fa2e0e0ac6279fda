"""Planning ``tagger annotate``: which inputs go to which outputs, and writing outputs safely.

Output files are named after the input plus the output suffix: ``a.txt`` → ``a.txt.jsonl`` or
``a.txt.conll`` (``.conllu`` for CoNLL-U input written as ``conll``). A directory input is
mirrored below ``--out``. Each file is written to a hidden temporary file beside the target and
renamed only when complete, so a finished-looking file is always complete (``--resume`` relies
on this and skips inputs whose output exists).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tagger.commands.annotate.options import AnnotateOptions
from tagger.commands.annotate.render import output_suffix
from tagger.errors import InputError, TaggerError
from tagger.formats.detect import HEAD_BYTES
from tagger.formats.lines import open_binary


@dataclass
class Job:
    """One input (file or stream) and where its output goes."""

    source: str  # path or "-"
    out: Path | None  # None: stream
    stream_in: IO[bytes] | None = None
    stream_out: IO[bytes] | None = None
    out_dir: bool = False  # out is the directory + relative name (suffix still to add)
    rel: str = ""  # name relative to the output directory (mirror)


class Sink:
    """An output file written through a hidden temporary file, renamed when complete; or stdout."""

    def __init__(self, path: Path | None, stream: IO[bytes] | None = None) -> None:
        self.path = path
        self.stream = stream
        self.tmp: Path | None = None
        self.fh: IO[bytes] | None = None

    def open(self) -> None:
        if self.path is None:
            self.fh = self.stream
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            self.fh = open(self.tmp, "wb", buffering=1 << 20)
        except OSError as exc:
            raise TaggerError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def _open_fh(self) -> IO[bytes]:
        if self.fh is None:
            raise RuntimeError("output file is not open")
        return self.fh

    def write(self, data: bytes) -> None:
        if data:
            self._open_fh().write(data)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def commit(self) -> None:
        fh = self._open_fh()
        if self.path is None or self.tmp is None:  # stdout
            fh.flush()
            return
        try:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise TaggerError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self.fh = None

    def abort(self) -> None:
        if self.path is None:
            with contextlib.suppress(Exception):
                self._open_fh().flush()
            return
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink()


def open_input(job: Job) -> tuple[IO[bytes], bytes]:
    """The job's input as a binary stream positioned at the start, and its first bytes (for sniffing)."""
    if job.stream_in is not None:
        head = job.stream_in.read(HEAD_BYTES) or b""
        return io.BufferedReader(_Chain(head, job.stream_in), 1 << 16), head
    fh = open_binary(job.source)
    try:
        head = fh.read(HEAD_BYTES)
        fh.seek(0)
    except OSError as exc:
        fh.close()
        raise InputError(job.source, None, exc.strerror or str(exc)) from None
    return fh, head


def output_path(job: Job, input_format: str, output_format: str) -> Path | None:
    """Where the job's output goes (``None``: a stream): a directory output is named after the input."""
    if job.out_dir and job.out is not None:
        return job.out / (job.rel + output_suffix(input_format, output_format))
    return job.out


def remove_stale(out: Path) -> None:
    """Remove the temporary files a killed run left beside ``out``."""
    if out.parent.is_dir():
        for stale in out.parent.iterdir():
            if stale.name.startswith(f".{out.name}.tmp-"):
                with contextlib.suppress(OSError):
                    stale.unlink()


class _Chain(io.RawIOBase):
    """A binary stream that replays ``head`` and then reads ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head.nbytes:
            n = min(len(b), self._head.nbytes)
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        n = len(data or b"")
        b[:n] = data or b""
        return n

    def close(self) -> None:  # the caller owns the underlying stream
        super().close()


def _walk(root: Path, pattern: str) -> list[Path]:
    """Files below ``root`` matching ``pattern`` (on the name, or the relative path if it has a '/')."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if fnmatch.fnmatch(rel if "/" in pattern else name, pattern):
                found.append(p)
    return found


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def plan_jobs(inputs: Sequence[str], out: str, options: AnnotateOptions,
              stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> list[Job]:
    """Map inputs to outputs; raises :class:`TaggerError` for usage mistakes (nothing written yet)."""
    if not inputs:
        raise TaggerError("no input given")
    if "-" in inputs and len(inputs) > 1:
        raise TaggerError("'-' (stdin) must be the only input")
    to_stdout = out == "-"
    if list(inputs) == ["-"]:
        if not to_stdout and Path(out).is_dir():
            raise TaggerError(f"--out {out} is a directory: give a file name (or '-') when reading stdin")
        return [Job("-", None if to_stdout else Path(out), stream_in=stdin or sys.stdin.buffer,
                     stream_out=(stdout or sys.stdout.buffer) if to_stdout else None)]
    paths = [Path(i) for i in inputs]
    for p in paths:
        if not p.exists():
            raise TaggerError(f"{p}: no such file or directory")
    single_file = len(paths) == 1 and paths[0].is_file()
    if to_stdout:
        if not single_file:
            raise TaggerError("--out - (stdout) needs a single input file")
        return [Job(str(paths[0]), None, stream_out=stdout or sys.stdout.buffer)]
    out_p = Path(out)
    out_r = out_p.resolve()
    for p in paths:
        if p.is_dir() and _inside(out_r, p.resolve()):
            raise TaggerError(f"--out {out} is inside the input directory {p}: write the output somewhere else")
        if p.is_file() and out_r == p.resolve():
            raise TaggerError(f"--out {out} is the input file itself")
    if single_file and not (out_p.is_dir() or out.endswith(("/", os.sep))):
        return [Job(str(paths[0]), out_p)]
    if out_p.exists() and not out_p.is_dir():
        raise TaggerError(f"--out {out} exists and is not a directory (several inputs or a directory need one)")
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for p in paths:
        if p.is_dir():
            prefix = "" if len(paths) == 1 else (p.resolve().name + "/")
            files = _walk(p, options.glob)
            for f in files:
                rel = prefix + f.relative_to(p).as_posix()
                jobs.append(Job(str(f), out_p, out_dir=True, rel=rel))
        else:
            jobs.append(Job(str(p), out_p, out_dir=True, rel=p.name))
    for j in jobs:
        if j.rel in seen:
            raise TaggerError(f"{j.source} and {seen[j.rel]} would both be written to {out_p / j.rel}")
        seen[j.rel] = j.source
    if not jobs:
        raise TaggerError(f"no input files match --glob {options.glob!r}")
    return jobs
