"""Batch annotation: tag files, directories or stdin with a trained model (``tagger annotate``).

Input formats (``--input-format``; ``auto`` picks by extension, then by sniffing the content):

* ``text``   raw text, split into sentences and CoNLL-2003-like tokens (:mod:`tagger.formats.text`);
  offsets are character offsets into the decoded file read with ``newline=''``
  (``open(path, encoding=..., newline='').read()[start:end]`` is the token / entity text).
* ``tokens`` one pre-tokenised sentence per line, tokens separated by whitespace.
* ``conll``  column files; the token is the first column. The predicted tag is added as a new
  last column; every other byte (other columns, ``-DOCSTART-``, comments, blank lines, line
  endings, the encoding) is copied unchanged.
* ``conllu`` CoNLL-U; the prediction goes into MISC (``NER=B-PER`` appended; ``misc:KEY`` picks
  another key) or replaces UPOS / XPOS. Everything else is copied unchanged.
* ``jsonl``  one JSON object per line with ``text`` (raw) or ``tokens`` (a list); other fields
  are passed through. ``tokens``/``tags``/``entities``/``offsets``/``sentences``/``nbest`` are
  (over)written. Blank lines are not records and are skipped.

Output formats: ``conll`` (``token tag`` lines, or the input columns plus the prediction for
CoNLL/CoNLL-U input) and ``jsonl`` (one object per sentence, or per record for JSONL input;
entities as ``{"start", "end", "label", "text", "score", "token_start", "token_end"}`` with
character offsets for raw text and token offsets otherwise). The default (``auto``) is ``conll``
for CoNLL/CoNLL-U input and ``jsonl`` otherwise.

Output files are named after the input plus the output suffix: ``a.txt`` → ``a.txt.jsonl`` or
``a.txt.conll`` (``.conllu`` for CoNLL-U input written as ``conll``). A directory input is
mirrored below ``--out``. Each file is written to a hidden temporary file beside the target and
renamed only when complete, so a finished-looking file is always complete (``--resume`` relies
on this and skips inputs whose output exists).

Nothing is lost: each input record gives exactly one output record. Bad records (invalid JSON,
undecodable lines) give a record with an ``error`` field; sentences longer than ``max_length``
tokens are tagged in pieces and rejoined. :class:`AnnotateSummary` counts the problems; a file
that cannot be read at all (missing, undecodable text, malformed CoNLL-U) fails on its own and
the run goes on with the next.

Streaming: input is read lazily and predicted in chunks of ``chunk_size`` sentences, output is
written as it comes, in input order; memory does not grow with the input. With ``workers`` > 1,
chunks go to forked worker processes (a bounded number in flight) and come back in order; with
one worker, a reader thread prepares the next chunk while the current one is predicted.

Prediction is :meth:`tagger.predict.Predictor.predict` (without per-token scores, which no
output format carries).

Library use::

    import tagger
    from tagger.commands.annotate import AnnotateOptions, annotate_paths, annotate_text

    summary = annotate_paths(tagger.load("model"), ["corpus/"], "out/", AnnotateOptions(glob="*.txt"))
    records = annotate_text("model", "Peter lives in Paris.")
"""

from __future__ import annotations

import codecs
import contextlib
import fnmatch
import io
import json
import multiprocessing
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator, Sequence

import torch

from tagger import schemes
from tagger.formats.corpus import CONLLU_SKIP_PATTERN
from tagger.errors import InputError, TaggerError
from tagger.predict import Entity, Prediction, Predictor
from tagger.formats.text import TextSentence, iter_pieces, iter_text_sentences, split_sentences

INPUT_FORMATS = ("auto", "text", "tokens", "conll", "conllu", "jsonl")
OUTPUT_FORMATS = ("auto", "conll", "jsonl")
SCHEME_CHOICES = ("model", "iob2", "bioes", "iob1")
CONLLU_FIELDS = {"upos": 3, "xpos": 4, "misc": 9}
EXTENSIONS = {
    ".txt": "text", ".text": "text", ".tok": "tokens", ".tokens": "tokens",
    ".conll": "conll", ".conll03": "conll", ".iob": "conll", ".bio": "conll", ".bioes": "conll",
    ".conllu": "conllu", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}
DOCSTART = b"-DOCSTART-"
MAX_PROBLEMS = 20


@dataclass
class AnnotateOptions:
    """Everything ``tagger annotate`` can be told (the CLI maps its flags onto this)."""

    input_format: str = "auto"
    output_format: str = "auto"
    batch_size: int = 256
    workers: int = 1
    nbest: int = 0
    glob: str = "*"
    max_length: int = 1000
    scheme: str = "model"
    conllu_field: str = "misc"
    resume: bool = False
    encoding: str = "utf-8"
    chunk_size: int = 0  # sentences predicted (and held in memory) at a time; 0 = 4096, 1024 with workers
    threads: int = 0  # torch threads per process; 0 = default_threads(workers)
    progress: bool | None = None  # tqdm: None = only on a terminal
    max_chars: int = 100_000  # raw text handed to the tokenizer at once (a paragraph is cut beyond)
    prefetch: bool = True  # with one worker, read and tokenise in a thread while predicting

    def validate(self) -> None:
        checks = [
            (self.input_format in INPUT_FORMATS, f"unknown --input-format {self.input_format!r}"),
            (self.output_format in OUTPUT_FORMATS, f"unknown --output-format {self.output_format!r}"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.nbest >= 0, "--nbest must be >= 0"),
            (self.max_length >= 1, "--max-length must be at least 1"),
            (self.scheme in SCHEME_CHOICES, f"unknown --scheme {self.scheme!r}: choose {', '.join(SCHEME_CHOICES)}"),
            (self.chunk_size >= 0, "chunk size must be >= 0"),
            (self.threads >= 0, "--threads must be >= 0"),
            (bool(self.glob), "--glob must not be empty"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TaggerError(msg)
        _conllu_target(self.conllu_field)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise TaggerError(f"unknown encoding {self.encoding!r}") from None


@dataclass
class AnnotateSummary:
    """What a run did: counts, problems (record errors, failed files) and notes."""

    files: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    records: int = 0
    sentences: int = 0
    tokens: int = 0
    errors: int = 0  # records written with an "error" field
    split: int = 0  # sentences longer than max_length, tagged in pieces
    seconds: float = 0.0
    threads: int = 0  # torch threads per predicting process
    outputs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the first MAX_PROBLEMS messages
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.files_failed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    def format(self) -> str:
        rate = self.tokens / self.seconds if self.seconds > 0 else 0.0
        head = (f"annotated {self.files} file(s): {self.records:,} records, {self.sentences:,} sentences, "
                f"{self.tokens:,} tokens in {self.seconds:.1f}s ({rate:,.0f} tokens/s)")
        lines = [head]
        if self.files_skipped:
            lines.append(f"skipped {self.files_skipped} file(s) whose output already exists (--resume)")
        if self.split:
            lines.append(f"{self.split} sentence(s) longer than --max-length were tagged in pieces and rejoined")
        lines.extend(self.notes)
        if not self.ok:
            lines.append(f"problems: {self.errors} record(s) with errors, {self.files_failed} file(s) failed")
            more = self.errors + self.files_failed - len(self.problems)
            lines.extend(f"  {p}" for p in self.problems)
            if more > 0:
                lines.append(f"  ... and {more} more")
        return "\n".join(lines)


# =========================================================================== prediction engine


class Engine:
    """Predicts chunks of sentences: splits over-long ones, rejoins, converts the tag scheme."""

    def __init__(self, predictor: Predictor, options: AnnotateOptions) -> None:
        self.predictor = predictor
        self.options = options
        self.entity = predictor.task == "entity"
        self.scheme = predictor.scheme
        target = options.scheme
        self.target = None if (target == "model" or not self.entity or target == self.scheme) else target

    def predict(self, sentences: Sequence[Sequence[str]]) -> tuple[list[Prediction], int]:
        """Predictions in input order and the number of sentences that had to be split."""
        o = self.options
        limit = o.max_length
        pieces: list[Sequence[str]] = []
        plan: list[tuple[int, int]] = []
        nsplit = 0
        for s in sentences:
            if len(s) <= limit:
                plan.append((len(pieces), 1))
                pieces.append(s)
            else:
                first = len(pieces)
                pieces.extend(s[i : i + limit] for i in range(0, len(s), limit))
                plan.append((first, len(pieces) - first))
                nsplit += 1
        preds = self.predictor.predict(pieces, batch_size=o.batch_size, nbest=o.nbest, token_scores=False)
        if nsplit:
            preds = [preds[a] if m == 1 else self._rejoin(preds[a : a + m]) for a, m in plan]
        if self.target is not None:
            for p in preds:
                p.tags = schemes.convert(p.tags, self.scheme, self.target)[0]
                p.nbest = [(schemes.convert(t, self.scheme, self.target)[0], pr) for t, pr in p.nbest]
        return preds, nsplit

    def _rejoin(self, parts: list[Prediction]) -> Prediction:
        tokens: list[str] = []
        tags: list[str] = []
        scores: list[float] = []
        shifted: list[Entity] = []
        for p in parts:
            off = len(tokens)
            shifted.extend(Entity(e.label, e.start + off, e.end + off, e.score) for e in p.entities)
            tokens.extend(p.tokens)
            tags.extend(p.tags)
            scores.extend(p.scores)
        joined = Prediction(tokens, tags, scores)
        if self.entity:
            # Spans as the joined tags read (a piece boundary may continue an entity).
            known = {(e.label, e.start, e.end): e.score for e in shifted}
            for sp in schemes.to_spans(tags, self.scheme):
                score = known.get((sp.label, sp.start, sp.end))
                if score is None:
                    score = 1.0
                    for e in shifted:
                        if e.start < sp.end and sp.start < e.end:
                            score *= e.score
                joined.entities.append(Entity(sp.label, sp.start, sp.end, score))
        k = min((len(p.nbest) for p in parts), default=0)
        for q in range(k):  # the q-th best of every piece (an approximation of the joint n-best)
            prob = 1.0
            ts: list[str] = []
            for p in parts:
                ts.extend(p.nbest[q][0])
                prob *= p.nbest[q][1]
            joined.nbest.append((ts, prob))
        return joined


_WORKER_ENGINE: Engine | None = None


def _worker_init(threads: int, predictor, options: AnnotateOptions) -> None:
    """Set up a worker: its torch threads and its engine (``predictor`` may be a model directory)."""
    global _WORKER_ENGINE
    torch.set_num_threads(threads)
    if not isinstance(predictor, Predictor):
        predictor = Predictor.load(predictor)
    _WORKER_ENGINE = Engine(predictor, options)


def _worker_predict(sentences: list[list[str]]):
    preds, nsplit = _WORKER_ENGINE.predict(sentences)  # type: ignore[union-attr]
    for p in preds:
        p.tokens = []  # the parent has them: do not send them back
    return preds, nsplit


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(workers: int) -> int:
    """Torch threads per process: ``max(1, cores // workers)``, fewer when the machine is busy.

    OpenMP threads that must share a core with other busy processes slow down by an order
    of magnitude (they spin-wait for each other), so cores kept busy by other processes
    (the 1-minute load average) are not counted.
    """
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average
        busy = 0.0
    free = max(1, int(cores - busy + 0.5))
    return max(1, min(cores, free) // workers)


class _Predictions:
    """Ordered chunk predictions, in this process or in a pool of workers.

    Workers are forked (Linux) and share the loaded model copy-on-write. GNU OpenMP, torch's
    thread pool, is not fork-safe: a forked child running multi-threaded ops hangs for ever
    if the parent had run multi-threaded ops before. So workers get several threads only when
    ``fork_safe`` (the caller knows this process never did, as the CLI does) or when
    ``options.threads`` asks for them explicitly; otherwise one thread each.
    """

    def __init__(self, predictor: Predictor, options: AnnotateOptions, model_dir: str | None,
                 fork_safe: bool = False, notes: list[str] | None = None) -> None:
        self.options = options
        self.pool = None
        threads = options.threads or default_threads(options.workers)
        if options.workers == 1 and options.prefetch and not options.threads and threads > 1:
            threads -= 1  # leave a core to the reader thread (OpenMP threads must not share cores)
        self.threads = threads
        if options.workers == 1:
            self._old_threads = torch.get_num_threads()
            torch.set_num_threads(threads)
            self.engine = Engine(predictor, options)
            return
        from concurrent.futures import ProcessPoolExecutor

        if "fork" in multiprocessing.get_all_start_methods():
            if threads > 1 and not (fork_safe or options.threads):
                if notes is not None:
                    notes.append(f"workers used 1 torch thread each instead of {threads}: this process ran torch "
                                 "before forking them (see tagger.commands.annotate._Predictions)")
                threads = 1
                self.threads = 1
            # Forked workers inherit the loaded model (initargs are not pickled with fork).
            ctx = multiprocessing.get_context("fork")
            source = predictor
        else:  # pragma: no cover - no fork (Windows, macOS): each worker loads the model
            ctx = multiprocessing.get_context("spawn")
            source = model_dir if model_dir is not None else predictor
        # A pool that notices dead workers (BrokenProcessPool) instead of waiting for ever.
        self.pool = ProcessPoolExecutor(options.workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(threads, source, options))

    @property
    def window(self) -> int:
        return 1 if self.pool is None else 2 * self.options.workers

    def submit(self, sentences: list[list[str]]):
        if self.pool is None:
            return self.engine.predict(sentences)
        return self.pool.submit(_worker_predict, sentences)

    def result(self, handle, sentences: list[list[str]]) -> tuple[list[Prediction], int]:
        if self.pool is None:
            return handle
        from concurrent.futures.process import BrokenProcessPool

        try:
            preds, nsplit = handle.result()
        except BrokenProcessPool:
            raise TaggerError("a worker process died (out of memory? try fewer --workers)") from None
        for p, s in zip(preds, sentences):
            p.tokens = list(s)
        return preds, nsplit

    def close(self, ok: bool) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            if not ok:
                for proc in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(Exception):
                        proc.terminate()
            pool.shutdown(wait=True, cancel_futures=not ok)
        elif hasattr(self, "_old_threads"):
            torch.set_num_threads(self._old_threads)


# =========================================================================== reading


class Item:
    """One input record: the sentences to tag and what its renderer needs."""

    __slots__ = ("sents", "data", "line", "error")

    def __init__(self, sents: list, data=None, line: int = 0, error: str | None = None) -> None:
        self.sents = sents
        self.data = data
        self.line = line
        self.error = error


def _check_line_encoding(encoding: str) -> None:
    try:
        ok = "a\n".encode(encoding) == b"a\n"
    except (LookupError, UnicodeError):
        ok = False
    if not ok:
        raise TaggerError(f"encoding {encoding!r} is not supported for line-based input: convert the file to UTF-8")


def binary_lines(fh: IO[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """``(content, line_ending)`` for each line; ``\\n``, ``\\r\\n`` and lone ``\\r`` end lines."""
    for raw in fh:
        if raw.endswith(b"\r\n"):
            content, eol = raw[:-2], b"\r\n"
        elif raw.endswith(b"\n"):
            content, eol = raw[:-1], b"\n"
        else:
            content, eol = raw, b""
        if b"\r" in content:
            parts = content.split(b"\r")
            for part in parts[:-1]:
                yield part, b"\r"
            content = parts[-1]
            if not content and not eol:
                continue
        yield content, eol


def _decode_error(exc: UnicodeDecodeError, encoding: str, raw: bytes) -> str:
    return (f"cannot decode byte {raw[exc.start:exc.start + 1]!r} at column {exc.start + 1} as {encoding} "
            f"(use --encoding)")


def _line_endings(text: str, after_cr: bool = False) -> int:
    """How many line endings (``\n``, ``\r\n``, lone ``\r``) ``text`` holds; ``after_cr``: the text before it ended in ``\r``."""
    return text.count("\n") + text.count("\r") - text.count("\r\n") - (after_cr and text.startswith("\n"))


class _StrictTextReader:
    """``read(n)`` → decoded ``str`` of a binary stream (no newline translation); a decoding error
    becomes an :class:`InputError` naming the exact line of the bad byte."""

    def __init__(self, fh: IO[bytes], path: str, encoding: str) -> None:
        self.fh, self.path, self.encoding = fh, path, encoding
        self.decoder = codecs.getincrementaldecoder(encoding)("strict")
        self.lines = 0  # line endings in the text returned so far
        self.after_cr = False  # that text ended with "\r" (a "\n" next belongs to the same ending)
        self.eof = False

    def read(self, n: int) -> str:
        while not self.eof:
            raw = self.fh.read(n)
            self.eof = not raw
            try:
                text = self.decoder.decode(raw, final=self.eof)
            except UnicodeDecodeError as exc:
                raise self._error(exc) from None
            if text:
                self.lines += _line_endings(text, self.after_cr)
                self.after_cr = text.endswith("\r")
                return text
        return ""

    def _error(self, exc: UnicodeDecodeError) -> InputError:
        # exc.object is the decoder's pending bytes plus this block: the text before the bad byte is valid
        before = codecs.decode(exc.object[:exc.start], self.encoding, "replace")
        line = self.lines + _line_endings(before, self.after_cr) + 1
        bad = exc.object[exc.start:exc.start + 1]
        return InputError(self.path, line, f"cannot decode byte {bad!r} as {self.encoding} ({exc.reason}; use --encoding)")


def read_text(fh: IO[bytes], path: str, encoding: str = "utf-8", max_chars: int = 100_000) -> Iterator[Item]:
    """Raw text → one :class:`Item` per sentence (``data`` is a :class:`TextSentence`)."""
    for s in iter_text_sentences(iter_pieces(_StrictTextReader(fh, path, encoding)), max_chars=max_chars):
        yield Item([s.tokens], s, s.line)


def _decoded_lines(fh: IO[bytes], encoding: str) -> Iterator[tuple[int, str, str | None]]:
    """``(line number, text, error)`` per line: an undecodable line comes with its error and its
    text decoded with replacement characters, so the caller can keep it as an error record."""
    _check_line_encoding(encoding)
    for lineno, (raw, _) in enumerate(binary_lines(fh), 1):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            yield lineno, raw.decode(encoding, "replace"), _decode_error(exc, encoding, raw)
            continue
        yield lineno, text.lstrip("\ufeff") if lineno == 1 else text, None


def read_tokens(fh: IO[bytes], path: str, encoding: str = "utf-8") -> Iterator[Item]:
    """One sentence per line, whitespace-separated tokens; an empty line is an empty record."""
    for lineno, text, error in _decoded_lines(fh, encoding):
        if error is not None:
            yield Item([], text, lineno, error)
            continue
        tokens = text.split()
        yield Item([tokens] if tokens else [], tokens, lineno)


class ConllBlock:
    """Raw lines of a CoNLL/CoNLL-U file up to a sentence end; ``rows[i][2]`` is the token index or -1."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[bytes, bytes, int]]) -> None:
        self.rows = rows


def _token_text(raw: bytes, encoding: str) -> str:
    return raw.decode(encoding, "replace")


def read_conll(fh: IO[bytes], path: str, encoding: str = "utf-8") -> Iterator[Item]:
    """CoNLL column lines grouped into sentences; every line is kept (``data`` is a :class:`ConllBlock`).

    Token lines are the non-blank lines other than ``-DOCSTART-`` and ``#`` comments (a line
    starting with ``#`` whose column count differs from the token lines'); the token is column 1.
    """
    _check_line_encoding(encoding)
    rows: list[tuple[bytes, bytes, int]] = []
    tokens: list[str] = []
    first = 0
    ncols: int | None = None
    bom = codecs.BOM_UTF8 if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else None
    for lineno, (raw, eol) in enumerate(binary_lines(fh), 1):
        cols = raw.split()
        if lineno == 1 and bom and cols and cols[0].startswith(bom):
            cols[0] = cols[0][len(bom):]
            if not cols[0]:
                cols.pop(0)
        if not cols:
            rows.append((raw, eol, -1))
            if tokens:
                yield Item([tokens], ConllBlock(rows), first)
                rows, tokens = [], []
            continue
        if cols[0] == DOCSTART:
            if tokens:  # a document break ends the sentence
                yield Item([tokens], ConllBlock(rows), first)
                rows, tokens = [], []
            rows.append((raw, eol, -1))
            continue
        if cols[0].startswith(b"#") and (ncols is None or len(cols) != ncols):
            rows.append((raw, eol, -1))  # a comment: kept in place
            continue
        if ncols is None:
            ncols = len(cols)
        if not tokens:
            first = lineno
        rows.append((raw, eol, len(tokens)))
        tokens.append(_token_text(cols[0], encoding))
    if rows:
        yield Item([tokens] if tokens else [], ConllBlock(rows), first)


_CONLLU_RANGE_OR_EMPTY = re.compile(CONLLU_SKIP_PATTERN.encode("ascii"))


def read_conllu(fh: IO[bytes], path: str, encoding: str = "utf-8") -> Iterator[Item]:
    """CoNLL-U sentences; comments, multiword ranges and empty nodes are kept in place."""
    _check_line_encoding(encoding)
    rows: list[tuple[bytes, bytes, int]] = []
    tokens: list[str] = []
    first = 0
    for lineno, (raw, eol) in enumerate(binary_lines(fh), 1):
        if not raw.strip():
            rows.append((raw, eol, -1))
            if tokens:
                yield Item([tokens], ConllBlock(rows), first)
                rows, tokens = [], []
            continue
        if raw.startswith(b"#") or (lineno == 1 and raw.startswith(codecs.BOM_UTF8 + b"#")):
            rows.append((raw, eol, -1))
            continue
        cols = raw.split(b"\t")
        if len(cols) != 10:
            raise InputError(path, lineno, f"expected 10 tab-separated CoNLL-U fields but found {len(cols)}")
        ident = cols[0].lstrip(codecs.BOM_UTF8) if lineno == 1 else cols[0]
        if _CONLLU_RANGE_OR_EMPTY.fullmatch(ident):  # a multiword range or an empty node: kept in place
            rows.append((raw, eol, -1))
            continue
        if not ident.isdigit():
            raise InputError(path, lineno, f"bad token ID {ident.decode(encoding, 'replace')!r}")
        if not tokens:
            first = lineno
        rows.append((raw, eol, len(tokens)))
        tokens.append(_token_text(cols[1], encoding))
    if rows:
        yield Item([tokens] if tokens else [], ConllBlock(rows), first)


class JsonRecord:
    """A parsed JSONL record and how it was tokenised."""

    __slots__ = ("obj", "text", "offsets", "bounds")

    def __init__(self, obj: dict, text: str | None, offsets: list[tuple[int, int]] | None, bounds: list[int]) -> None:
        self.obj = obj
        self.text = text
        self.offsets = offsets
        self.bounds = bounds  # token index where each sentence starts, plus the total


def read_jsonl(fh: IO[bytes], path: str, encoding: str = "utf-8") -> Iterator[Item]:
    """One record per non-blank line; bad lines become error items (never dropped)."""
    for lineno, line, error in _decoded_lines(fh, encoding):
        if error is not None:
            yield Item([], line, lineno, error)
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, integers of > 4300 digits
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else (
                "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0])
            msg = f"invalid JSON ({why})"
            yield Item([], line, lineno, msg)
            continue
        if not isinstance(obj, dict):
            yield Item([], line, lineno, f"expected a JSON object, found {type(obj).__name__}")
            continue
        tokens = obj.get("tokens")
        text = obj.get("text")
        if tokens is not None:
            if not isinstance(tokens, list) or not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
                yield Item([], line, lineno, "'tokens' must be a list of non-blank strings")
                continue
            yield Item([tokens] if tokens else [], JsonRecord(obj, None, None, [0, len(tokens)]), lineno)
        elif isinstance(text, str):
            sents = split_sentences(text)
            bounds = [0]
            for s in sents:
                bounds.append(bounds[-1] + len(s))
            offsets = [o for s in sents for o in s]
            yield Item([[text[a:b] for a, b in s] for s in sents], JsonRecord(obj, text, offsets, bounds), lineno)
        else:
            yield Item([], line, lineno, "no 'text' (string) or 'tokens' (list) field")


READERS: dict[str, Callable[..., Iterator[Item]]] = {
    "text": read_text, "tokens": read_tokens, "conll": read_conll, "conllu": read_conllu, "jsonl": read_jsonl,
}


def sniff_format(head: bytes, name: str = "") -> str:
    """Guess the input format from a file name and its first bytes."""
    suffix = Path(name).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(head) >= 65536 and lines:
        lines = lines[:-1]  # maybe cut in the middle
    nonblank = [ln for ln in lines if ln.strip()][:200]
    if not nonblank:
        return "text"
    first = nonblank[0].lstrip()
    if first.startswith("{"):
        return "jsonl"
    if any(ln.startswith(("# sent_id", "# text =", "# newdoc", "# newpar")) for ln in nonblank):
        return "conllu"
    data = [ln for ln in nonblank if not ln.startswith("#")]
    if data and sum(len(ln.split("\t")) == 10 and ln.split("\t")[0].replace("-", "").replace(".", "").isdigit()
                    for ln in data) >= 0.9 * len(data):
        return "conllu"
    if first.split()[0] == "-DOCSTART-":
        return "conll"
    counts = [len(ln.split()) for ln in data]
    has_blank = any(not ln.strip() for ln in lines)
    if counts and has_blank and max(counts) <= 20 and len(set(counts)) == 1 and len(counts) >= 2 * sum(not ln.strip() for ln in lines):
        return "conll"  # the same few columns on every line, blank lines between sentences
    import re

    attached = len(re.findall(r"\w[,.;:!?]+(?:\s|$)|\w['’](?:s|t|re|ve|ll|d|m)\b", text))
    detached = len(re.findall(r"\s[,.;:!?]+(?:\s|$)| (?:'s|n't|'re|'ve|'ll|'d|'m)\b", text))
    return "tokens" if detached > attached else "text"


# =========================================================================== rendering


def _conllu_target(spec: str) -> tuple[int, str | None]:
    """``misc`` / ``misc:KEY`` / ``upos`` / ``xpos`` → (column, MISC key or None)."""
    name, _, key = spec.partition(":")
    name = name.lower()
    if name not in CONLLU_FIELDS or (key and name != "misc"):
        raise TaggerError(f"unknown --conllu-field {spec!r}: choose misc, misc:KEY, upos or xpos")
    if name == "misc":
        key = key or "NER"
        if not key or any(c in key for c in "|=\t ") :
            raise TaggerError(f"bad MISC key {key!r}")
        return 9, key
    return CONLLU_FIELDS[name], None


def _entity_json(e: Entity, text: str) -> dict:
    return {"start": e.start, "end": e.end, "label": e.label, "text": text, "score": round(e.score, 6),
            "token_start": e.start, "token_end": e.end}


def _char_entity_json(e: Entity, offsets: Sequence[tuple[int, int]], text: str, base: int) -> dict:
    cs, ce = offsets[e.start][0], offsets[e.end - 1][1]
    return {"start": cs, "end": ce, "label": e.label, "text": text[cs - base : ce - base],
            "score": round(e.score, 6), "token_start": e.start, "token_end": e.end}


def _nbest_json(p: Prediction) -> list[dict]:
    return [{"tags": t, "prob": round(pr, 6)} for t, pr in p.nbest]


def _dumps(obj) -> bytes:
    try:
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (from \ud800-style JSON escapes): keep them escaped
        return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


def _conll_token(t: str) -> str:
    return "_".join(t.split()) if (" " in t or "\t" in t or not t) else t


def _conll_lines(tokens: Sequence[str], tags: Sequence[str]) -> str:
    return "".join(f"{_conll_token(t)} {g}\n" for t, g in zip(tokens, tags))


class Renderer:
    """Turns items and their predictions into output bytes for one (input, output) format pair."""

    def __init__(self, input_format: str, output_format: str, options: AnnotateOptions, encoding: str) -> None:
        self.fin = input_format
        self.fout = output_format
        self.nbest = options.nbest > 0
        self.encoding = encoding
        self.col, self.key = _conllu_target(options.conllu_field)
        self._tag_bytes: dict[str, bytes] = {}
        self.render = getattr(self, f"_{input_format}_{output_format}")

    def _tb(self, tag: str) -> bytes:
        b = self._tag_bytes.get(tag)
        if b is None:
            b = self._tag_bytes[tag] = tag.encode(self.encoding, "replace")
        return b

    def _error(self, item: Item) -> bytes:
        if self.fout == "jsonl":
            return _dumps({"line": item.line, "error": item.error, "input": item.data})
        return f"# line {item.line}: error: {item.error}\n\n".encode("utf-8", "replace")

    # ---- text
    def _text_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        s: TextSentence = item.data
        p = preds[0]
        base = s.start
        rec = {"line": s.line, "start": base, "end": s.end, "text": s.text, "tokens": s.tokens,
               "offsets": [list(o) for o in s.offsets], "tags": p.tags,
               "entities": [_char_entity_json(e, s.offsets, s.text, base) for e in p.entities]}
        if self.nbest:
            rec["nbest"] = _nbest_json(p)
        return _dumps(rec)

    def _text_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        return (_conll_lines(item.data.tokens, preds[0].tags) + "\n").encode("utf-8", "replace")

    # ---- tokens
    def _tokens_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        tokens = item.data
        p = preds[0] if preds else Prediction([], [], [])
        rec = {"line": item.line, "tokens": tokens, "tags": p.tags,
               "entities": [_entity_json(e, " ".join(tokens[e.start:e.end])) for e in p.entities]}
        if self.nbest:
            rec["nbest"] = _nbest_json(p)
        return _dumps(rec)

    def _tokens_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        if not preds:
            return b"\n"
        return (_conll_lines(item.data, preds[0].tags) + "\n").encode("utf-8", "replace")

    # ---- conll / conllu
    def _block_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        if not preds:
            return b""
        p = preds[0]
        tokens = item.sents[0]
        rec = {"line": item.line, "tokens": tokens, "tags": p.tags,
               "entities": [_entity_json(e, " ".join(tokens[e.start:e.end])) for e in p.entities]}
        if self.nbest:
            rec["nbest"] = _nbest_json(p)
        return _dumps(rec)

    _conll_jsonl = _block_jsonl
    _conllu_jsonl = _block_jsonl

    def _conll_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        tags = preds[0].tags if preds else []
        parts = []
        tb = self._tb
        for raw, eol, i in item.data.rows:
            if i < 0:
                parts.append(raw + eol)
            else:
                sep = b"\t" if (b"\t" in raw and b" " not in raw.strip()) else b" "
                parts.append(raw + sep + tb(tags[i]) + eol)
        return b"".join(parts)

    def _conllu_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        tags = preds[0].tags if preds else []
        parts = []
        col, key = self.col, self.key
        for raw, eol, i in item.data.rows:
            if i < 0:
                parts.append(raw + eol)
                continue
            cols = raw.split(b"\t")
            tag = self._tb(tags[i])
            if key is None:
                cols[col] = tag
            else:
                kb = key.encode(self.encoding)
                old = [] if cols[9] in (b"_", b"") else [x for x in cols[9].split(b"|") if x.split(b"=", 1)[0] != kb]
                cols[9] = b"|".join([*old, kb + b"=" + tag])
            parts.append(b"\t".join(cols) + eol)
        return b"".join(parts)

    # ---- jsonl
    def _jsonl_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        r: JsonRecord = item.data
        rec = dict(r.obj)
        tokens = [t for p in preds for t in p.tokens] if r.text is not None else rec["tokens"]
        tags: list[str] = []
        ents = []
        nbest_rows = []
        for k, p in enumerate(preds):
            off = r.bounds[k]
            tags.extend(p.tags)
            for e in p.entities:
                e2 = Entity(e.label, e.start + off, e.end + off, e.score)
                if r.text is not None:
                    ents.append(_char_entity_json(e2, r.offsets, r.text, 0))
                else:
                    ents.append(_entity_json(e2, " ".join(tokens[e2.start:e2.end])))
            if self.nbest:
                nbest_rows.append(_nbest_json(p))
        rec["tokens"] = tokens
        rec["tags"] = tags
        rec["entities"] = ents
        if r.text is not None:
            rec["offsets"] = [list(o) for o in r.offsets]
            rec["sentences"] = [[r.bounds[k], r.bounds[k + 1]] for k in range(len(r.bounds) - 1)]
        if self.nbest:
            # one n-best list per sentence (a tokens record is a single sentence)
            rec["nbest"] = nbest_rows[0] if (r.text is None and nbest_rows) else nbest_rows
        return _dumps(rec)

    def _jsonl_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        if not preds:
            return b"\n"
        return "".join(_conll_lines(p.tokens, p.tags) + "\n" for p in preds).encode("utf-8", "replace")


def output_suffix(input_format: str, output_format: str) -> str:
    if output_format == "conll":
        return ".conllu" if input_format == "conllu" else ".conll"
    return ".jsonl"


def resolve_output_format(input_format: str, output_format: str) -> str:
    if output_format != "auto":
        return output_format
    return "conll" if input_format in ("conll", "conllu") else "jsonl"


# =========================================================================== files and sinks


class _Sink:
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

    def write(self, data: bytes) -> None:
        if data:
            self.fh.write(data)  # type: ignore[union-attr]

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def commit(self) -> None:
        if self.path is None:
            self.fh.flush()  # type: ignore[union-attr]
            return
        try:
            self.fh.flush()  # type: ignore[union-attr]
            os.fsync(self.fh.fileno())  # type: ignore[union-attr]
            self.fh.close()  # type: ignore[union-attr]
            os.replace(self.tmp, self.path)  # type: ignore[arg-type]
        except OSError as exc:
            self.abort()
            raise TaggerError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        self.fh = None

    def abort(self) -> None:
        if self.path is None:
            with contextlib.suppress(Exception):
                self.fh.flush()  # type: ignore[union-attr]
            return
        if self.fh is not None:
            with contextlib.suppress(OSError):
                self.fh.close()
            self.fh = None
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink()


@dataclass
class _Job:
    """One input (file or stream) and where its output goes."""

    source: str  # path or "-"
    out: Path | None  # None: stream
    stream_in: IO[bytes] | None = None
    stream_out: IO[bytes] | None = None
    out_dir: bool = False  # out is the directory + relative name (suffix still to add)
    rel: str = ""  # name relative to the output directory (mirror)


def _open_input(source: str, stream: IO[bytes] | None) -> tuple[IO[bytes], bytes]:
    """The input as a binary stream positioned at the start, and its first bytes (for sniffing)."""
    if stream is not None:
        head = stream.read(65536) or b""
        return io.BufferedReader(_Chain(head, stream), 1 << 16), head
    try:
        fh = open(source, "rb")
    except FileNotFoundError:
        raise InputError(source, None, "file not found") from None
    except IsADirectoryError:
        raise InputError(source, None, "is a directory, expected a file") from None
    except PermissionError:
        raise InputError(source, None, "permission denied") from None
    except OSError as exc:
        raise InputError(source, None, exc.strerror or str(exc)) from None
    head = fh.read(65536)
    fh.seek(0)
    return fh, head


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
              stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> list[_Job]:
    """Map inputs to outputs; raises :class:`TaggerError` for usage mistakes (nothing written yet)."""
    if not inputs:
        raise TaggerError("no input given")
    if "-" in inputs and len(inputs) > 1:
        raise TaggerError("'-' (stdin) must be the only input")
    to_stdout = out == "-"
    if list(inputs) == ["-"]:
        if not to_stdout and Path(out).is_dir():
            raise TaggerError(f"--out {out} is a directory: give a file name (or '-') when reading stdin")
        return [_Job("-", None if to_stdout else Path(out), stream_in=stdin or sys.stdin.buffer,
                     stream_out=(stdout or sys.stdout.buffer) if to_stdout else None)]
    paths = [Path(i) for i in inputs]
    for p in paths:
        if not p.exists():
            raise TaggerError(f"{p}: no such file or directory")
    single_file = len(paths) == 1 and paths[0].is_file()
    if to_stdout:
        if not single_file:
            raise TaggerError("--out - (stdout) needs a single input file")
        return [_Job(str(paths[0]), None, stream_out=stdout or sys.stdout.buffer)]
    out_p = Path(out)
    out_r = out_p.resolve()
    for p in paths:
        if p.is_dir() and _inside(out_r, p.resolve()):
            raise TaggerError(f"--out {out} is inside the input directory {p}: write the output somewhere else")
        if p.is_file() and out_r == p.resolve():
            raise TaggerError(f"--out {out} is the input file itself")
    if single_file and not (out_p.is_dir() or out.endswith(("/", os.sep))):
        return [_Job(str(paths[0]), out_p)]
    if out_p.exists() and not out_p.is_dir():
        raise TaggerError(f"--out {out} exists and is not a directory (several inputs or a directory need one)")
    jobs: list[_Job] = []
    seen: dict[str, str] = {}
    for p in paths:
        if p.is_dir():
            prefix = "" if len(paths) == 1 else (p.resolve().name + "/")
            files = _walk(p, options.glob)
            for f in files:
                rel = prefix + f.relative_to(p).as_posix()
                jobs.append(_Job(str(f), out_p, out_dir=True, rel=rel))
        else:
            jobs.append(_Job(str(p), out_p, out_dir=True, rel=p.name))
    for j in jobs:
        if j.rel in seen:
            raise TaggerError(f"{j.source} and {seen[j.rel]} would both be written to {out_p / j.rel}")
        seen[j.rel] = j.source
    if not jobs:
        raise TaggerError(f"no input files match --glob {options.glob!r}")
    return jobs


# =========================================================================== the run


class _Start:
    __slots__ = ("job", "sink", "renderer", "label")

    def __init__(self, job, sink, renderer, label) -> None:
        self.job, self.sink, self.renderer, self.label = job, sink, renderer, label


class _End:
    __slots__ = ("error",)

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error


class _Skip:
    """An input not processed: failed to open (``error``) or skipped by --resume."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error


def _events(jobs: list[_Job], options: AnnotateOptions) -> Iterator:
    """Start / Item... / End (or Skip) events for every job, in order; input errors end a job as failed."""
    sources = {Path(j.source).resolve() for j in jobs if j.stream_in is None}
    for job in jobs:
        label = job.source if job.source != "-" else "<stdin>"
        try:
            fh, head = _open_input(job.source, job.stream_in)
        except TaggerError as exc:
            yield _Skip(exc)
            continue
        with contextlib.ExitStack() as stack:
            if job.stream_in is None:
                stack.callback(fh.close)
            fin = options.input_format
            if fin == "auto":
                fin = sniff_format(head, "" if job.source == "-" else job.source)
            fout = resolve_output_format(fin, options.output_format)
            out = job.out
            if job.out_dir and out is not None:
                out = out / (job.rel + output_suffix(fin, fout))
                if options.resume and out.exists():
                    yield _Skip()
                    continue
                if options.resume and out.parent.is_dir():  # the temporary file of a killed run
                    for stale in out.parent.iterdir():
                        if stale.name.startswith(f".{out.name}.tmp-"):
                            with contextlib.suppress(OSError):
                                stale.unlink()
            if out is not None and out.resolve() in sources:
                yield _Skip(TaggerError(f"{label}: the output {out} would overwrite an input file: skipped"))
                continue
            sink = _Sink(out, job.stream_out)
            yield _Start(job, sink, Renderer(fin, fout, options, options.encoding), label)
            reader = READERS[fin]
            try:
                if fin == "text":
                    it = reader(fh, label, options.encoding, options.max_chars)
                else:
                    it = reader(fh, label, options.encoding)
                yield from it
            except TaggerError as exc:
                yield _End(exc)
                continue
            except OSError as exc:
                yield _End(InputError(label, None, exc.strerror or str(exc)))
                continue
            yield _End()


def _chunks(events: Iterator, size: int) -> Iterator[tuple[list, list[list[str]]]]:
    """Group events so that each group holds about ``size`` sentences (bounded memory)."""
    group: list = []
    sents: list[list[str]] = []
    for ev in events:
        group.append(ev)
        if type(ev) is Item and ev.sents:
            sents.extend(ev.sents)
        if len(sents) >= size or len(group) >= 4 * size:
            yield group, sents
            group, sents = [], []
    if group:
        yield group, sents


def _prefetch(it: Iterator, depth: int = 2) -> Iterator:
    """Run ``it`` in a background thread, ``depth`` items ahead.

    Reading and tokenising (Python) then overlap with prediction (torch releases the GIL).
    Closing the returned generator stops the thread.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for x in it:
                while not stop.is_set():
                    try:
                        q.put((x, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer
            q.put((done, exc))

    th = threading.Thread(target=produce, name="annotate-reader", daemon=True)
    th.start()
    try:
        while True:
            x, exc = q.get()
            if x is done:
                if exc is not None:
                    raise exc
                return
            yield x
    finally:
        stop.set()
        while th.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        th.join()
        with contextlib.suppress(Exception):
            it.close()  # type: ignore[attr-defined]


def _progress(enabled: bool | None):
    from tqdm import tqdm

    return tqdm(unit=" sent", disable=None if enabled is None else not enabled, file=sys.stderr,
                desc="annotate", dynamic_ncols=True, smoothing=0.1)


def run_jobs(predictor: Predictor, jobs: list[_Job], options: AnnotateOptions,
             model_dir: str | None = None, fork_safe: bool = False) -> AnnotateSummary:
    """Annotate planned jobs; returns the summary (the caller reports it)."""
    options.validate()
    if options.nbest and predictor.model.crf is None:
        raise TaggerError("--nbest needs a model with a CRF layer")
    summary = AnnotateSummary()
    t0 = time.perf_counter()
    engine = _Predictions(predictor, options, model_dir, fork_safe, summary.notes)
    summary.threads = engine.threads
    bar = _progress(options.progress)
    current: list = [None]  # the open _Start
    open_sinks: list[_Sink] = []
    pending: deque = deque()
    ok = False

    def finish(group: list, sents: list[list[str]], handle) -> None:
        preds, nsplit = engine.result(handle, sents) if sents else ([], 0)
        summary.split += nsplit
        k = 0
        for ev in group:
            if type(ev) is Item:
                n = len(ev.sents)
                st = current[0]
                st.sink.write(st.renderer.render(ev, preds[k : k + n]))
                k += n
                summary.records += 1
                if ev.error is not None:
                    summary.errors += 1
                    summary.problem(f"{st.label}:{ev.line}: {ev.error}")
                summary.sentences += n
                summary.tokens += sum(len(s) for s in ev.sents)
            elif type(ev) is _Start:
                current[0] = ev
                ev.sink.open()
                open_sinks.append(ev.sink)
            elif type(ev) is _Skip:
                if ev.error is None:
                    summary.files_skipped += 1
                else:
                    summary.files_failed += 1
                    summary.problem(str(ev.error))
            else:
                st = current[0]
                if ev.error is None:
                    st.sink.commit()
                    summary.files += 1
                    if st.sink.path is not None:
                        summary.outputs.append(str(st.sink.path))
                else:
                    st.sink.abort()
                    summary.files_failed += 1
                    summary.problem(str(ev.error))
                open_sinks.remove(st.sink)
                current[0] = None
        if current[0] is not None and current[0].sink.path is None:
            current[0].sink.flush()  # streaming to stdout: let the reader see each chunk
        bar.update(len(sents))

    # Smaller chunks with several workers: a file of a few thousand sentences still keeps them all busy.
    chunk_size = options.chunk_size or (4096 if options.workers == 1 else 1024)
    chunks = _chunks(_events(jobs, options), chunk_size)
    if options.workers == 1 and options.prefetch:
        chunks = _prefetch(chunks)
    try:
        for group, sents in chunks:
            pending.append((group, sents, engine.submit(sents) if sents else None))
            while len(pending) >= engine.window:
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
        ok = True
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
        bar.close()
        engine.close(ok)
        for s in open_sinks:
            s.abort()
    summary.seconds = time.perf_counter() - t0
    return summary


def _as_predictor(model, options: AnnotateOptions) -> tuple[Predictor, str | None]:
    if isinstance(model, Predictor):
        return model, None
    if options.workers == 1:
        return Predictor.load(model), str(model)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # load without starting OpenMP threads: forked workers stay safe
    try:
        return Predictor.load(model), str(model)
    finally:
        torch.set_num_threads(old)


def annotate_paths(model, inputs: Sequence[str], out: str, options: AnnotateOptions | None = None,
                   stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None,
                   fork_safe: bool = False) -> AnnotateSummary:
    """Annotate files / directories / ``-`` (stdin) into ``out`` (a file, a directory or ``-``).

    ``model`` is a :class:`Predictor` or a model directory. Usage errors raise
    :class:`TaggerError` before anything is written; record and file problems are counted in
    the returned :class:`AnnotateSummary` (``summary.exit_code`` is 1 if there were any).
    ``fork_safe``: this process has not run multi-threaded torch operations yet, so forked
    workers may use several threads each (the CLI sets it; see :class:`_Predictions`).
    """
    options = options or AnnotateOptions()
    options.validate()
    jobs = plan_jobs([str(i) for i in inputs], str(out), options, stdin, stdout)
    predictor, model_dir = _as_predictor(model, options)
    return run_jobs(predictor, jobs, options, model_dir, fork_safe=fork_safe and model_dir is not None)


def annotate_stream(model, fh_in: IO[bytes], fh_out: IO[bytes], options: AnnotateOptions | None = None,
                    name: str = "-") -> AnnotateSummary:
    """Annotate a binary input stream into a binary output stream (``name`` helps format detection)."""
    options = options or AnnotateOptions()
    options.validate()
    predictor, model_dir = _as_predictor(model, options)
    job = _Job("-" if name == "-" else name, None, stream_in=fh_in, stream_out=fh_out)
    return run_jobs(predictor, [job], options, model_dir)


def annotate_text(model, text: str, options: AnnotateOptions | None = None) -> list[dict]:
    """Tag a raw text in memory: the JSONL records (one per sentence) as dicts."""
    options = options or AnnotateOptions()
    opts = AnnotateOptions(**{**options.__dict__, "input_format": "text", "output_format": "jsonl",
                              "progress": False, "workers": 1})
    buf = io.BytesIO()
    annotate_stream(model, io.BytesIO(text.encode("utf-8", "replace")), buf, opts)
    return [json.loads(line) for line in buf.getvalue().decode("utf-8").splitlines()]
