"""The output of ``tagger annotate --engine ray``: part files under a temporary prefix, the commit,
and reading the parts back (:func:`read_rows`, :func:`assemble`).

Every row carries ``source`` (the input file), ``index`` (the record's position in that file, from
0) and ``line``; in a JSONL part the line is the record single-process ``annotate`` writes with
``"source"`` and ``"index"`` put first (CoNLL output: ``{"source", "index", "line", "conll"}``); in
Parquet the columns are ``source, index, line, record`` (binary) and ``error``. A directory
without ``_SUCCESS`` is not complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from tagger.commands.annotate.options import MAX_PROBLEMS
from tagger.errors import TaggerError

SUCCESS = "_SUCCESS"


def _is_uri(path: str) -> bool:
    return "://" in path


# --------------------------------------------------------------------------- writing


def _head(source: str, index: int) -> bytes:
    """``{"source": ..., "index": N, `` : how a JSONL part's line begins."""
    from tagger.commands.annotate.render import dumps

    return dumps({"source": source, "index": index})[:-2] + b", "


def _json_line(row: dict) -> bytes:
    """A JSONL part's line: the record with its source and index put first (CoNLL text in ``conll``)."""
    from tagger.commands.annotate.render import dumps

    record, error = row["record"], row["error"]
    if row["index"] < 0:
        return dumps({"source": row["source"], "index": -1, "line": 0, "error": error})
    if row["fout"] == "jsonl":
        return _head(row["source"], row["index"]) + record[1:] if record else b""
    conll = {"line": row["line"], "conll": record.decode("utf-8", "surrogateescape")}
    return _head(row["source"], row["index"]) + dumps(conll)[1:]


class PartSink:
    """Writes output rows as part files under ``tmp`` (a local directory or a URI); counts them."""

    def __init__(self, tmp: str, part_format: str) -> None:
        self.tmp = tmp
        self.part_format = part_format

    def write(self, blocks, ctx) -> dict:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyarrow import fs as pafs

        stats: dict[str, Any] = {"records": 0, "errors": 0, "sentences": 0, "tokens": 0, "split": 0,
                                 "failed": [], "problems": [], "parts": []}
        tables = []
        for block in blocks:
            t = block if isinstance(block, pa.Table) else pa.Table.from_pandas(block)
            if t.num_rows:
                tables.append(t)
        if not tables:
            return stats
        table = pa.concat_tables(tables)
        rows = table.to_pylist()
        keep = []
        for row in rows:
            if row["index"] < 0:
                if row["error"] is None:  # a file's end marker: counted from the inputs
                    continue
                stats["failed"].append(row["source"])
                stats["problems"].append(str(row["error"]))
            else:
                stats["records"] += 1
                stats["sentences"] += row["sentences"]
                stats["tokens"] += row["tokens"]
                stats["split"] += row["split"]
                if row["error"] is not None:
                    stats["errors"] += 1
                    if len(stats["problems"]) < MAX_PROBLEMS:
                        stats["problems"].append(f"{row['source']}:{row['line']}: {row['error']}")
            keep.append(row)
        if not keep:
            return stats
        name = f"part-{ctx.task_idx:05d}-{uuid.uuid4().hex[:8]}.{self.part_format}"
        filesystem, root = (pafs.FileSystem.from_uri(self.tmp) if _is_uri(self.tmp)
                            else (pafs.LocalFileSystem(), self.tmp))
        path = f"{root.rstrip('/')}/{name}"
        if self.part_format == "parquet":
            out = pa.table({"source": [r["source"] for r in keep], "index": [r["index"] for r in keep],
                            "line": [r["line"] for r in keep], "record": [r["record"] for r in keep],
                            "error": [r["error"] for r in keep]},
                           schema=pa.schema([("source", pa.string()), ("index", pa.int64()), ("line", pa.int64()),
                                             ("record", pa.binary()), ("error", pa.string())]))
            pq.write_table(out, path, filesystem=filesystem)
        else:
            with filesystem.open_output_stream(path) as fh:
                fh.write(b"".join(_json_line(r) for r in keep))
        stats["parts"].append(name)
        return stats


def _datasink(tmp: str, part_format: str):
    """A Ray Data datasink around :class:`PartSink` (built here: ``ray`` is imported lazily)."""
    from ray.data import Datasink

    class _Sink(Datasink):
        def __init__(self) -> None:
            self.sink = PartSink(tmp, part_format)
            self.returns: list[dict] = []

        def write(self, blocks, ctx) -> dict:
            return self.sink.write(blocks, ctx)

        def on_write_complete(self, write_result) -> None:
            returns = getattr(write_result, "write_returns", write_result)
            self.returns = [r for r in returns if isinstance(r, dict)]

        def get_name(self) -> str:
            return "TaggerParts"

    return _Sink()


def _commit(tmp: str, out: str, manifest: dict) -> None:
    """Move the finished parts to ``out`` and write ``_SUCCESS`` (a local directory: one rename)."""
    data = (json.dumps(manifest, indent=1) + "\n").encode()
    if not _is_uri(out):
        (Path(tmp) / SUCCESS).write_bytes(data)
        os.replace(tmp, out)
        return
    from pyarrow import fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(out)
    _, troot = pafs.FileSystem.from_uri(tmp)
    for part in manifest["parts"]:
        filesystem.move(f"{troot}/{part}", f"{root}/{part}")
    with contextlib.suppress(Exception):
        filesystem.delete_dir(troot)
    with filesystem.open_output_stream(f"{root}/{SUCCESS}") as fh:
        fh.write(data)


def _prepare_out(out: str) -> str:
    """Check ``out`` (it must not exist) and make the temporary prefix the parts are written under."""
    tag = uuid.uuid4().hex[:12]
    if _is_uri(out):
        from pyarrow import fs as pafs

        filesystem, root = pafs.FileSystem.from_uri(out)
        if filesystem.get_file_info(f"{root}/{SUCCESS}").type != pafs.FileType.NotFound:
            raise TaggerError(f"--out {out} already holds a finished output")
        tmp = f"{out.rstrip('/')}/_temporary-{tag}"
        filesystem.create_dir(pafs.FileSystem.from_uri(tmp)[1], recursive=True)
        return tmp
    p = Path(out)
    if p.exists():
        raise TaggerError(f"--out {out} already exists: give a new directory (the parts are written there)")
    if not p.parent.is_dir():
        p.parent.mkdir(parents=True, exist_ok=True)
    local = p.with_name(f".{p.name}.tmp-{tag}")
    local.mkdir()
    return str(local)


def _abort(tmp: str) -> None:
    with contextlib.suppress(Exception):
        if _is_uri(tmp):
            from pyarrow import fs as pafs

            filesystem, root = pafs.FileSystem.from_uri(tmp)
            filesystem.delete_dir(root)
        else:
            shutil.rmtree(tmp)



# --------------------------------------------------------------------------- reading the output back


def read_rows(out: str | os.PathLike) -> list[dict]:
    """The rows of a finished output directory (``source``, ``index``, ``line``, ``record``, ``error``)."""
    root = Path(out)
    if not (root / SUCCESS).is_file():
        raise TaggerError(f"{out}: not a finished --engine ray output (no {SUCCESS})")
    manifest = json.loads((root / SUCCESS).read_text())
    rows: list[dict] = []
    for part in manifest["parts"]:
        path = root / part
        if part.endswith(".parquet"):
            import pyarrow.parquet as pq

            rows.extend(pq.read_table(path).to_pylist())
            continue
        for line in path.read_bytes().splitlines(keepends=True):
            obj = json.loads(line)
            source, index = obj.pop("source"), obj.pop("index")
            if index < 0:
                rows.append({"source": source, "index": index, "line": 0, "record": b"", "error": obj["error"]})
            elif "conll" in obj and set(obj) == {"line", "conll"}:
                rows.append({"source": source, "index": index, "line": obj["line"],
                             "record": obj["conll"].encode("utf-8", "surrogateescape"), "error": None})
            else:
                record = b"{" + line[len(_head(source, index)):]
                rows.append({"source": source, "index": index, "line": obj.get("line", 0), "record": record,
                             "error": obj.get("error")})
    return rows


def assemble(out: str | os.PathLike) -> dict[str, bytes]:
    """Each source's records in input order, concatenated: what single-process ``annotate`` writes for it."""
    by_source: dict[str, list[tuple[int, bytes]]] = {}
    for row in read_rows(out):
        if row["index"] >= 0:
            by_source.setdefault(row["source"], []).append((row["index"], row["record"]))
    return {src: b"".join(rec for _, rec in sorted(recs)) for src, recs in by_source.items()}
