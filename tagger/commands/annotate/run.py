"""Running ``tagger annotate``: inputs read as events, predicted in chunks, written in input order.

Streaming: input is read lazily and predicted in chunks of ``chunk_size`` sentences, output is
written as it comes, in input order; memory does not grow with the input. With ``workers`` > 1
the chunks are predicted in worker processes (:mod:`~tagger.commands.annotate.engine`); with one
worker, a reader thread prepares the next chunk while the current one is predicted.

Nothing is lost: each input record gives exactly one output record. A file that cannot be read
at all (missing, undecodable text, malformed CoNLL-U) fails on its own and the run goes on with
the next; :class:`~tagger.commands.annotate.options.AnnotateSummary` counts the problems.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from tagger.collector import collect_young, paused_gc
from tagger.commands.annotate.engine import ChunkPredictor, reads_ahead
from tagger.commands.annotate.items import Item, document_key, read_items
from tagger.commands.annotate.jobs import Job, Sink, open_input, output_path, plan_jobs, remove_stale
from tagger.commands.annotate.options import AnnotateOptions, AnnotateSummary
from tagger.commands.annotate.render import Renderer, resolve_output_format
from tagger.context import ContextStream
from tagger.errors import InputError, ModelError, TaggerError
from tagger.formats.detect import sniff
from tagger.prediction import Tagger, model_inputs
from tagger.runtime import load_predictor
from tagger.training.progress import progress_bar

#: The formats ``--input-format auto`` chooses from, the fallback last.
SNIFFED = ("jsonl", "conllu", "conll", "tokens", "text")


class _Start:
    """An input begins: its output sink, renderer and name for messages."""

    __slots__ = ("sink", "renderer", "label")

    def __init__(self, sink: Sink, renderer: Renderer, label: str) -> None:
        self.sink, self.renderer, self.label = sink, renderer, label


class _End:
    """An input ends: completely (``error`` None) or failed."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error


class _Skip:
    """An input not processed: failed to open (``error``) or skipped by --resume."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error


def token_column(config: dict, options: AnnotateOptions) -> int:
    """The token column of CoNLL input: the option, else that of the training data of the model
    whose ``config.json`` is ``config``."""
    if options.token_column is not None:
        return options.token_column
    column = (config.get("data") or {}).get("token_column") or 0
    if not isinstance(column, int) or isinstance(column, bool):
        raise ModelError(f"model config.json: data.token_column must be an integer, got {column!r}")
    return column


@dataclass(frozen=True)
class InputColumns:
    """The columns annotate reads from CoNLL / CoNLL-U input: the tokens', and the model's feature columns."""

    token: int = 0
    features: tuple[str, ...] = ()
    context: int = 0  # tokens of document context the model reads on each side of a sentence


def input_columns(config: dict, options: AnnotateOptions) -> InputColumns:
    """The input columns for the model whose ``config.json`` is ``config`` (see :func:`token_column`)."""
    features, context = model_inputs(config)
    return InputColumns(token_column(config, options), tuple(features), context)


def _job_events(job: Job, options: AnnotateOptions, sources: set[Path], columns: InputColumns) -> Iterator:
    """Start, Item... and End (or one Skip) for one input; an input error ends it as failed."""
    label = job.source if job.source != "-" else "<stdin>"
    try:
        fh, head = open_input(job)
    except TaggerError as exc:
        yield _Skip(exc)
        return
    with contextlib.ExitStack() as stack:
        if job.stream_in is None:
            stack.callback(fh.close)
        fin = options.input_format
        if fin == "auto":
            fin = sniff(head, "" if job.source == "-" else job.source, SNIFFED, options.encoding)
        fout = resolve_output_format(fin, options.output_format)
        out = output_path(job, fin, fout)
        if job.out_dir and out is not None and options.resume:
            if out.exists():
                yield _Skip()
                return
            remove_stale(out)
        if out is not None and out.resolve() in sources:
            yield _Skip(TaggerError(f"{label}: the output {out} would overwrite an input file: skipped"))
            return
        yield _Start(Sink(out, job.stream_out), Renderer(fin, fout, options, options.encoding), label)
        try:
            items = read_items(fin, fh, label, options.encoding, columns.token, options.max_chars, columns.features)
            yield from ContextStream(columns.context, document_key(fin))(items) if columns.context else items
        except TaggerError as exc:
            yield _End(exc)
            return
        except OSError as exc:
            yield _End(InputError(label, None, exc.strerror or str(exc)))
            return
        yield _End()


def _events(jobs: list[Job], options: AnnotateOptions, columns: InputColumns) -> Iterator:
    """The events of every job, in order."""
    sources = {Path(j.source).resolve() for j in jobs if j.stream_in is None}
    for job in jobs:
        yield from _job_events(job, options, sources, columns)


def _chunks(events: Iterator, size: int) -> Generator[tuple[list, list[list[str]]], None, None]:
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


def _prefetch(it: Generator, depth: int = 2) -> Generator:
    """Run ``it`` in a background thread, ``depth`` items ahead.

    Reading and tokenising (Python) then overlap with prediction (torch releases the GIL).
    Closing the returned generator stops the thread.
    """
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
            it.close()


class _Writer:
    """Writes a group of events with their predictions to the sinks, in order, and counts them."""

    def __init__(self, summary: AnnotateSummary) -> None:
        self.summary = summary
        self.current: _Start | None = None
        self.open_sinks: list[Sink] = []

    def write(self, group: list, preds: list) -> None:
        k = 0
        for ev in group:
            if type(ev) is Item:
                n = len(ev.sents)
                self._item(ev, preds[k : k + n])
                k += n
            elif type(ev) is _Start:
                self.current = ev
                ev.sink.open()
                self.open_sinks.append(ev.sink)
            elif type(ev) is _Skip:
                self._skip(ev)
            else:
                self._end(ev)
        if self.current is not None and self.current.sink.path is None:
            self.current.sink.flush()  # streaming to stdout: let the reader see each chunk

    def _item(self, ev: Item, preds: list) -> None:
        st, s = self.current, self.summary
        assert st is not None
        st.sink.write(st.renderer.render(ev, preds))
        s.records += 1
        if ev.error is not None:
            s.errors += 1
            s.problem(f"{st.label}:{ev.line}: {ev.error}")
        s.sentences += len(ev.sents)
        s.tokens += sum(len(x) for x in ev.sents)

    def _skip(self, ev: _Skip) -> None:
        if ev.error is None:
            self.summary.files_skipped += 1
        else:
            self.summary.files_failed += 1
            self.summary.problem(str(ev.error))

    def _end(self, ev: _End) -> None:
        st, s = self.current, self.summary
        assert st is not None
        if ev.error is None:
            st.sink.commit()
            s.files += 1
            if st.sink.path is not None:
                s.outputs.append(str(st.sink.path))
        else:
            st.sink.abort()
            s.files_failed += 1
            s.problem(str(ev.error))
        self.open_sinks.remove(st.sink)
        self.current = None

    def abort(self) -> None:
        """Remove the temporary files of outputs not finished."""
        for sink in self.open_sinks:
            sink.abort()


def run_jobs(predictor: Tagger, jobs: list[Job], options: AnnotateOptions,
             model_dir: str | None = None, fork_safe: bool = False) -> AnnotateSummary:
    """Annotate planned jobs; returns the summary (the caller reports it)."""
    options.validate()
    if options.nbest and not predictor.has_crf:
        raise TaggerError("--nbest needs a model with a CRF layer")
    summary = AnnotateSummary()
    t0 = time.perf_counter()
    engine = ChunkPredictor(predictor, options, model_dir, fork_safe, summary.notes)
    summary.threads = engine.threads
    writer = _Writer(summary)
    bar = progress_bar("annotate", " sent", enabled=options.progress, leave=True, smoothing=0.1)

    def finish(group: list, sents: list[list[str]], handle) -> None:
        preds, nsplit = engine.result(handle, sents) if sents else ([], 0)
        summary.split += nsplit
        writer.write(group, preds)
        bar.update(len(sents))

    # Smaller chunks with several workers: a file of a few thousand sentences still keeps them all busy.
    chunk_size = options.chunk_size or (4096 if options.workers == 1 else 1024)
    chunks = _chunks(_events(jobs, options, input_columns(predictor.config, options)), chunk_size)
    if reads_ahead(options):
        chunks = _prefetch(chunks)
    pending: deque = deque()
    ok = False
    try:
        with paused_gc():  # a chunk's objects are not walked over and over (tagger.collector)
            finished = False
            for group, sents in chunks:
                if finished:  # cycles of finished chunks go before the next one (none after the last)
                    collect_young()
                    finished = False
                pending.append((group, sents, engine.submit(sents) if sents else None))
                while len(pending) >= engine.window:
                    finish(*pending.popleft())
                    finished = True
            while pending:
                finish(*pending.popleft())
        ok = True
    finally:
        chunks.close()
        bar.close()
        engine.close(ok)
        writer.abort()
    summary.seconds = time.perf_counter() - t0
    return summary


def _as_predictor(model, options: AnnotateOptions) -> tuple[Tagger, str | None]:
    """The predictor and, if it was loaded here, its model directory (workers without fork load it)."""
    if not isinstance(model, (str, os.PathLike)):
        return model, None  # a Predictor or an OnnxPredictor
    if options.workers == 1:
        return load_predictor(model, options.runtime), str(model)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # load without starting OpenMP threads: forked workers stay safe
    try:
        return load_predictor(model, options.runtime), str(model)
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
    workers may use several threads each (the CLI sets it; see
    :class:`~tagger.commands.annotate.engine.ChunkPredictor`).
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
    job = Job("-" if name == "-" else name, None, stream_in=fh_in, stream_out=fh_out)
    return run_jobs(predictor, [job], options, model_dir)


def annotate_text(model, text: str, options: AnnotateOptions | None = None) -> list[dict]:
    """Tag a raw text in memory: the JSONL records (one per sentence) as dicts."""
    options = options or AnnotateOptions()
    opts = dataclasses.replace(options, input_format="text", output_format="jsonl", progress=False, workers=1)
    buf = io.BytesIO()
    annotate_stream(model, io.BytesIO(text.encode("utf-8", "replace")), buf, opts)
    return [json.loads(line) for line in buf.getvalue().decode("utf-8").splitlines()]
