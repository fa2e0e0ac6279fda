"""Corpus-scale annotation on Ray Data (``tagger annotate ... --engine ray [--ray-address ADDR]``).

The pipeline, built from the pieces single-process ``annotate`` runs, so that the records are the
same by construction:

1. **read** (Ray tasks, one per input file): the file is opened (a local path, or any URI a
   :mod:`pyarrow.fs` filesystem reads: ``s3://``, ``gs://``, ``hdfs://``...), its format sniffed
   and its items read by the shared readers (:func:`~tagger.commands.annotate.items.read_items`,
   through :func:`~tagger.commands.annotate.run._job_events`), then grouped into chunks exactly
   as :func:`~tagger.commands.annotate.run._chunks` groups them in one process (a chunk's items
   travel to the actors as a Python-object column: Ray's own serialisation, inside the cluster; no
   file is ever unpickled). A Parquet file's
   rows (a ``text`` or ``tokens`` column; other columns pass through) are read as JSONL records;
2. **predict and render** (``map_batches`` into a pool of actors, one chunk per call): each actor
   loads the model once (shipped from the driver through the object store: the nodes need no copy
   of the model directory) and runs the same :class:`~tagger.commands.annotate.engine.Engine` and
   :class:`~tagger.commands.annotate.render.Renderer` over the chunk;
3. **write** (a datasink, :mod:`~tagger.commands.annotate.rayparts`): part files ``part-*.jsonl``
   or ``part-*.parquet``, one per write task,
   under a temporary prefix; when every part is written the output is committed (a local
   directory is renamed into place; on an object store the parts are moved under ``OUT/`` and the
   ``_SUCCESS`` marker is written last). A directory without ``_SUCCESS`` is not complete.

Every output row carries ``source`` (the input file), ``index`` (the record's position in that
file, from 0) and ``line``; rows are in no particular order across parts. ``record`` is what
single-process ``annotate`` writes for the record, byte for byte: in a JSONL part the line is that
JSON object with ``"source"`` and ``"index"`` put first (CoNLL output: ``{"source", "index",
"line", "conll"}``); in Parquet the columns are ``source, index, line, record`` (binary) and
``error``. :func:`assemble` puts the records of each source back together in order: the bytes of
``tagger annotate FILE --out F`` (a chunk is predicted as in one process, so even the scores agree
to the last digit; a single-process run over *several* files groups sentences of neighbouring
files into one chunk, which moves about 1% of entity scores in the 6th decimal, as ``--workers``
does).

Every input record gives one output row (a bad record carries ``error``); a file that cannot be
read at all, or fails half-way (malformed CoNLL-U), adds one row with ``index`` -1 and ``error``
and counts as failed in the summary. Unlike single-process ``annotate``, which discards the output
of a file that fails half-way, the rows of the records read before the failure stay in the parts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from tagger.commands.annotate.items import Item
from tagger.commands.annotate.jobs import Job, _walk
from tagger.commands.annotate.options import AnnotateOptions, AnnotateSummary
from tagger.commands.annotate.rayparts import _abort, _commit, _datasink, _is_uri, _prepare_out, assemble, read_rows
from tagger.commands.annotate.run import InputColumns, input_columns
from tagger.errors import InputError, TaggerError
from tagger.formats.lines import open_binary

PART_FORMATS = ("jsonl", "parquet")
#: Files of a model directory that prediction does not read (not shipped to the actors).
TRAINING_ONLY = ("checkpoint.safetensors", "metrics.jsonl", "train_summary.json", "train.toml")
#: The columns of an output row (and of a Parquet part).
COLUMNS = ("source", "index", "line", "record", "error")
#: The columns of the rows the actors return: the output columns and the counts of the summary.
ROW_COLUMNS = (*COLUMNS, "fout", "sentences", "tokens", "split")


def OUT_SCHEMA() -> Any:  # noqa: N802 - a constant, built when pyarrow is imported
    """The schema of the rows the actors return (the output columns and the counts of the summary)."""
    import pyarrow as pa

    return pa.schema([("source", pa.string()), ("index", pa.int64()), ("line", pa.int64()), ("record", pa.binary()),
                      ("error", pa.string()), ("fout", pa.string()), ("sentences", pa.int64()),
                      ("tokens", pa.int64()), ("split", pa.int64())])


def require_ray() -> Any:
    """The ``ray`` module, or a usage error that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise TaggerError("--engine ray needs Ray Data: pip install 'tagger[ray]'") from None
    return ray


# --------------------------------------------------------------------------- inputs


def list_inputs(inputs: Sequence[str], glob: str) -> list[str]:
    """The input files: files as given, directories walked (``glob`` on the names), URIs listed."""
    files: list[str] = []
    for given in inputs:
        if given == "-":
            raise TaggerError("--engine ray reads files (or URIs), not stdin")
        if _is_uri(given):
            from fnmatch import fnmatch

            from pyarrow import fs as pafs

            try:
                filesystem, root = pafs.FileSystem.from_uri(given)
                info = filesystem.get_file_info(root)
            except Exception as exc:  # pyarrow raises many kinds: name the URI
                raise TaggerError(f"{given}: cannot read ({exc})") from None
            scheme = given.split("://", 1)[0]
            if info.type == pafs.FileType.File:
                files.append(given)
            elif info.type == pafs.FileType.Directory:
                found = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
                files.extend(f"{scheme}://{f.path}" for f in sorted(found, key=lambda f: f.path)
                             if f.type == pafs.FileType.File and fnmatch(f.base_name, glob)
                             and not f.base_name.startswith("."))
            else:
                raise TaggerError(f"{given}: no such file or directory")
            continue
        p = Path(given)
        if p.is_dir():
            files.extend(str(f) for f in _walk(p, glob))
        elif p.exists():
            files.append(str(p))
        else:
            raise TaggerError(f"{p}: no such file or directory")
    if not files:
        raise TaggerError(f"no input files match --glob {glob!r}")
    return files


def _open(source: str) -> IO[bytes]:
    if not _is_uri(source):
        return open_binary(source)
    from pyarrow import fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(source)
        return filesystem.open_input_stream(path)  # read(n) is all the readers ask of it
    except Exception as exc:
        raise InputError(source, None, str(exc)) from None


def _parquet_as_jsonl(source: str) -> IO[bytes]:
    """A Parquet file's rows as JSON lines (a ``text`` or ``tokens`` column; other columns pass through)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(source)
    except Exception as exc:
        raise InputError(source, None, f"unreadable Parquet file ({exc})") from None
    if "text" not in table.column_names and "tokens" not in table.column_names:
        raise InputError(source, None, "Parquet input needs a 'text' or a 'tokens' column")
    buf = io.BytesIO()
    for batch in table.to_batches(max_chunksize=65536):
        for row in batch.to_pylist():
            buf.write((json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogatepass"))
    buf.seek(0)
    return buf


def _read_chunks(source: str, options: AnnotateOptions, columns: InputColumns, chunk_size: int) -> Iterator[dict]:
    """The chunk rows of one input file (read as one process reads it), then its status row."""
    from tagger.commands.annotate.run import _chunks, _End, _job_events, _Skip, _Start

    opts = options
    stream: IO[bytes] | None = None
    error: str | None = None
    try:
        if source.lower().endswith(".parquet"):
            stream = _parquet_as_jsonl(source)
            opts = dataclasses.replace(options, input_format="jsonl")
        else:
            stream = _open(source)
    except TaggerError as exc:
        error = str(exc)
    index, k = 0, 0
    fin = fout = ""
    if stream is not None:
        with stream:
            job = Job(source, None, stream_in=stream)
            for group, _sents in _chunks(_job_events(job, opts, set(), columns), chunk_size):
                items: list[Item] = []
                for ev in group:
                    if type(ev) is Item:
                        items.append(ev)
                    elif type(ev) is _Start:
                        fin, fout = ev.renderer.fin, ev.renderer.fout
                    elif type(ev) in (_End, _Skip) and ev.error is not None:
                        error = str(ev.error)
                if items:
                    yield {"source": source, "chunk": k, "first": index, "fin": fin, "fout": fout,
                           "items": items, "status": ""}
                    index += len(items)
                    k += 1
    yield {"source": source, "chunk": k, "first": -1, "fin": fin, "fout": fout, "items": None,
           "status": "failed: " + error if error else "ok"}


# --------------------------------------------------------------------------- the model on the actors


def pack_model(model_dir: str | os.PathLike) -> dict[str, bytes]:
    """The files of a model directory (what an actor needs to load it anywhere)."""
    root = Path(model_dir)
    if _is_uri(str(model_dir)):
        raise TaggerError("--engine ray: give the model as a local directory (it is shipped to the actors)")
    if not root.is_dir():
        raise TaggerError(f"{root}: not a model directory")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name not in TRAINING_ONLY}


class Annotator:
    """A Ray actor: loads the model once, then predicts and renders one chunk per call."""

    def __init__(self, model: list, options: AnnotateOptions) -> None:
        import ray

        from tagger.commands.annotate.engine import Engine
        from tagger.runtime import load_predictor

        files = model[0]
        if isinstance(files, ray.ObjectRef):
            files = ray.get(files)
        self._dir = tempfile.mkdtemp(prefix="tagger-model-")
        for name, data in files.items():
            path = Path(self._dir) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        predictor = load_predictor(self._dir, options.runtime)  # a model directory or an ONNX export
        predictor.threads = options.threads or 1
        self.engine = Engine(predictor, options)
        self.options = options
        self._renderers: dict = {}

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            shutil.rmtree(self._dir)

    def _renderer(self, fin: str, fout: str):
        from tagger.commands.annotate.render import Renderer

        r = self._renderers.get((fin, fout))
        if r is None:
            r = self._renderers[(fin, fout)] = Renderer(fin, fout, self.options, self.options.encoding)
        return r

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        out: dict[str, list] = {c: [] for c in ROW_COLUMNS}

        def add(source: str, index: int, line: int, record: bytes, error: str | None, fout: str,
                sentences: int = 0, tokens: int = 0, split: int = 0) -> None:
            for key, value in zip(ROW_COLUMNS, (source, index, line, record, error, fout, sentences, tokens, split),
                                  strict=True):
                out[key].append(value)

        for row in batch.to_pylist():
            source, first, status, fin, fout = row["source"], row["first"], row["status"], row["fin"], row["fout"]
            if first < 0:  # the status row of a file
                add(source, -1, 0, b"", None if status == "ok" else status[len("failed: "):], fout)
                continue
            items: list[Item] = row["items"]
            sents = [s for it in items for s in it.sents]
            preds, nsplit = self.engine.predict(sents) if sents else ([], 0)
            render = self._renderer(fin, fout).render
            k = 0
            for j, it in enumerate(items):
                n = len(it.sents)
                add(source, first + j, it.line, render(it, preds[k : k + n]), it.error, fout, n,
                    sum(len(s) for s in it.sents), nsplit if j == 0 else 0)
                k += n
        return pa.table(out, schema=OUT_SCHEMA())


# --------------------------------------------------------------------------- the run


def annotate_ray(model: str | os.PathLike, inputs: Sequence[str], out: str, options: AnnotateOptions | None = None,
                 *, address: str | None = None, actors: int | None = None, part_format: str = "jsonl",
                 readers: int | None = None, num_cpus: int | None = None,
                 log: Callable[[str], None] | None = None) -> AnnotateSummary:
    """Annotate ``inputs`` (files, directories, URIs) with the model directory ``model`` on Ray Data.

    ``address``: join that Ray cluster (``ray://host:10001``, ``host:6379`` or ``auto``); without it
    a local Ray is started (``num_cpus`` cores), unless this process already runs one.
    ``actors``: the actor pool's size (default ``options.workers``); ``readers``: how many files are
    read at once (default: as many as actors; a reader asks Ray for no CPU of its own, as it mostly
    feeds the actors). ``part_format``: ``jsonl`` or ``parquet``. Returns the summary; the parts
    and ``_SUCCESS`` are under ``out`` (see the module).
    """
    ray = require_ray()
    options = options or AnnotateOptions()
    options.validate()
    say = log or (lambda m: None)
    if part_format not in PART_FORMATS:
        raise TaggerError(f"--parts must be one of {', '.join(PART_FORMATS)}")
    if options.resume:
        raise TaggerError("--resume is not supported with --engine ray (a finished output has _SUCCESS)")
    if options.nbest:
        from tagger.modeldir import read_config

        if not read_config(model, "tagger").get("model", {}).get("use_crf", True):
            raise TaggerError("--nbest needs a model with a CRF layer")
    files = list_inputs([str(i) for i in inputs], options.glob)
    packed = pack_model(model)
    columns = _input_columns(packed, options)
    chunk_size = options.chunk_size or 4096  # as one process with one worker: the same chunks
    actors = actors or options.workers
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "log_to_driver": False, "include_dashboard": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
        started = True
    t0 = time.perf_counter()
    tmp = _prepare_out(out)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = bool(options.progress)
        ctx.execution_options.verbose_progress = False
        model_ref = ray.put(packed)
        say(f"annotating {len(files)} file(s) with {actors} actor(s) on Ray "
            f"({ray.cluster_resources().get('CPU', 0):g} CPUs)")
        ds = (ray.data.from_items([{"source": f} for f in files], override_num_blocks=len(files))
              .flat_map(_reader(options, columns, chunk_size), num_cpus=0,
                        compute=ray.data.TaskPoolStrategy(size=min(len(files), readers or actors)))
              .map_batches(Annotator, batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(
                  size=actors), fn_constructor_args=([model_ref], options), num_cpus=1))
        sink = _datasink(tmp, part_format)
        ds.write_datasink(sink)
        summary = _summary(sink.returns, len(files), time.perf_counter() - t0, options, out)
        manifest = {"parts": sorted(p for r in sink.returns for p in r["parts"]),
                    "inputs": files, "part_format": part_format, "summary": dataclasses.asdict(summary)}
        _commit(tmp, out, manifest)
    except BaseException:
        _abort(tmp)
        raise
    finally:
        if started:
            ray.shutdown()
    summary.seconds = time.perf_counter() - t0
    return summary


def _reader(options: AnnotateOptions, columns: InputColumns, chunk_size: int) -> Callable[[dict], Iterator[dict]]:
    def read(row: dict) -> Iterator[dict]:
        return _read_chunks(str(row["source"]), options, columns, chunk_size)

    return read


def _input_columns(packed: dict[str, bytes], options: AnnotateOptions) -> InputColumns:
    """The input columns, from the packed model's config.json (as in :func:`run.input_columns`)."""
    try:
        config = json.loads(packed["config.json"])
    except (KeyError, ValueError):
        raise TaggerError("model directory without a readable config.json") from None
    if not isinstance(config, dict):
        raise TaggerError("model directory's config.json is not a JSON object")
    return input_columns(config, options)


def _summary(returns: list[dict], n_files: int, seconds: float, options: AnnotateOptions,
             out: str) -> AnnotateSummary:
    s = AnnotateSummary(threads=options.threads or 1, seconds=seconds)
    failed: set[str] = set()
    for r in returns:
        s.records += r["records"]
        s.errors += r["errors"]
        s.sentences += r["sentences"]
        s.tokens += r["tokens"]
        s.split += r["split"]
        failed.update(r["failed"])
        for p in r["problems"]:
            s.problem(p)
        s.outputs.extend(f"{out.rstrip('/')}/{p}" for p in r["parts"])
    s.files_failed = len(failed)
    s.files = n_files - s.files_failed
    return s


__all__ = ["annotate_ray", "assemble", "list_inputs", "pack_model", "read_rows"]
