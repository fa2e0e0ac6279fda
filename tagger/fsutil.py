"""Atomic file and directory writes, hashing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tagger.errors import ModelError, TaggerError

#: The largest JSON file of a model directory read (config.json holds the vocabularies).
MAX_JSON_BYTES = 256 * 1024 * 1024


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def os_error(path: str | os.PathLike, exc: OSError) -> TaggerError:
    """A one-line :class:`TaggerError` for an OSError met while writing ``path`` (disk full...)."""
    return _os_error(Path(path), exc)


def _os_error(path: Path, exc: OSError) -> TaggerError:
    if exc.errno == errno.ENOSPC:
        return TaggerError(f"{path}: no space left on device")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return TaggerError(f"{path}: cannot write here ({exc.strerror})")
    return TaggerError(f"{path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; move it into place only on success.

    An existing ``out`` is an error unless ``force``, in which case it is replaced only
    once the new content is complete. On failure nothing is left at ``out``.
    """
    out = Path(out)
    if out.exists() and not force:
        raise TaggerError(f"{out} already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise TaggerError(f"{out} exists and is not a directory")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as exc:
        raise _os_error(parent, exc) from None
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the usual directory mode
        old = None
        if out.exists():
            old = parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _os_error(out, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write_with(path, write)


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Create ``path`` through a temporary file that ``write(tmp)`` fills, then fsync and rename
    (a writer that streams to a file needs no copy of the whole content in memory)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _os_error(path, exc) from None


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path if str(path) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike, what: str, max_bytes: int = MAX_JSON_BYTES):
    """The JSON content of a model-directory file; :class:`ModelError` naming ``what`` if it is missing,
    not a regular file, implausibly large, unreadable or not JSON."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ModelError(f"{path}: not a regular file (expected the {what})")
    if not path.is_file():
        raise ModelError(f"{path}: missing {what}")
    if path.stat().st_size > max_bytes:
        raise ModelError(f"{path}: {what} is implausibly large")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: corrupt {what} ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
