"""Model directories: ``config.json`` plus ``safetensors`` weights, never pickles.

Every model kind (``tagger``, ``classifier``, ``generator``) is stored the same way::

    config.json               {"format": "tagger-model", "kind": ..., "tagger_version": ..., ...}
    model.safetensors         trained weights
    <other>.safetensors/json  kind-specific extras (e.g. frozen pretrained vectors)

Loading checks the kind, the keys and every tensor's shape against the configuration before
any weight is used, so a crafted directory is rejected with a clear error and runs nothing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.overrides import TorchFunctionMode

from tagger import __version__
from tagger.errors import ModelError
from tagger.fsutil import atomic_write_json, atomic_write_with, read_json
from tagger.options import coerce, field_problem

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

FORMAT = "tagger-model"
FORMAT_VERSION = 1
KINDS = ("tagger", "classifier", "generator")


class JsonConfig:
    """Mixin for dataclass configurations stored in ``config.json``: unknown keys are errors."""

    def to_json(self) -> dict:
        return dataclasses.asdict(typing.cast("DataclassInstance", self))  # subclasses are dataclasses

    @classmethod
    def from_json(cls, data: dict):
        known = {f.name for f in dataclasses.fields(typing.cast("type[DataclassInstance]", cls))}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(map(str, unknown))}")
        return cls(**data)


def write_config(model_dir: str | os.PathLike, kind: str, config: Mapping) -> None:
    """Write ``config.json`` with the format header."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "tagger_version": __version__}
    data.update(config)
    atomic_write_json(Path(model_dir) / "config.json", data)


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """Save tensors with safetensors, atomically (temp file + rename), streamed from the tensors
    (no copy of the whole file in memory); a failed write is an ``OSError`` (e.g. a full disk)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}

    def write(tmp: Path) -> None:
        try:
            save_file(flat, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # its I/O errors say "... (os error 28)"
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from None

    atomic_write_with(path, write)


def read_config(model_dir: str | os.PathLike, kind: str | None = None) -> dict:
    """Read and check ``config.json``; ``kind`` is the expected model kind."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise ModelError(f"{model_dir}: model directory not found")
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: not a directory (expected a model directory)")
    path = model_dir / "config.json"
    if path.exists() and not path.is_file():
        raise ModelError(f"{path}: not a regular file")
    if not path.is_file():
        raise ModelError(f"{model_dir}: not a model directory (no config.json)")
    data = read_json(path, "config.json")
    if isinstance(data, dict) and data.get("format") == "tagger-onnx":
        raise ModelError(f"{model_dir}: an ONNX export (tagger export --format onnx): use it with --runtime onnx")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: not a tagger model configuration")
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: unsupported model format version {data.get('format_version')!r}")
    found = data.get("kind")
    if found not in KINDS:
        raise ModelError(f"{path}: unknown model kind {found!r}")
    if kind is not None and found != kind:
        raise ModelError(f"{model_dir}: this is a {found} model, but a {kind} model is needed here")
    return data


def _check_names(path: Path, expected: Mapping, found: Mapping) -> None:
    """A :class:`ModelError` unless the tensor names in ``found`` are exactly those ``expected``."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{path}: weights do not match the configuration "
            f"(missing: {', '.join(missing[:5]) or '-'}; unexpected: {', '.join(unexpected[:5]) or '-'})"
        )


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load_tensors(
    path: str | os.PathLike, expected: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, torch.Tensor]:
    """Load a safetensors file (no pickle) and check names and shapes against ``expected``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    _check_regular_file(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: not a valid safetensors file ({_first_line(exc)})") from None
    if expected is not None:
        _check_names(path, expected, tensors)
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != tuple(shape):
                raise ModelError(
                    f"{path}: tensor {name} has shape {tuple(tensors[name].shape)}, "
                    f"the configuration says {tuple(shape)}"
                )
    return tensors


def _check_regular_file(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"{path}: missing weights file")
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file (expected a safetensors weights file)")


_ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}


def check_header(path: str | os.PathLike, expected: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
    """Check a safetensors file's names, shapes and dtypes from its header alone (nothing is loaded).

    ``safe_open`` also checks that the data of every tensor lies inside the file, so a file that
    passes holds all the bytes the configuration describes: building the model afterwards
    allocates no more than the weights file really contains.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    _check_regular_file(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            found = {k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: not a valid safetensors file ({_first_line(exc)})") from None
    _check_names(path, expected, found)
    for name, (shape, dtype) in expected.items():
        if found[name][0] != tuple(shape):
            raise ModelError(f"{path}: tensor {name} has shape {found[name][0]}, the configuration says {tuple(shape)}")
        want = _ST_DTYPES.get(dtype, str(dtype))
        if found[name][1] != want:
            raise ModelError(f"{path}: tensor {name} has dtype {found[name][1]}, expected {want}")


def header_dtype(path: str | os.PathLike, name: str) -> str | None:
    """The safetensors dtype (``"F32"``, ``"F16"``...) of tensor ``name`` in ``path`` from its header;
    None if it cannot be read (:func:`check_header` then says why)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.get_slice(name).get_dtype() if name in fh.keys() else None
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None


_RANDOM_INIT = (torch.Tensor.normal_, torch.Tensor.uniform_, torch.nn.init.normal_, torch.nn.init.uniform_)


class _SkipRandomInit(TorchFunctionMode):
    """Random initialisation does nothing (for a build on the meta device, where it means nothing).

    ``normal_`` on a meta tensor imports torch._dynamo, over a second of a model's load time. A
    torch-function mode is thread-local, so builds in other threads are unaffected.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RANDOM_INIT:
            return args[0] if args else (kwargs or {})["tensor"]
        return func(*args, **(kwargs or {}))


def build_checked(factory, path: str | os.PathLike, others: Mapping[str | os.PathLike, Mapping] | None = None):
    """Build a module with ``factory()`` only after the weights file's header matches it.

    The module is first built on the ``meta`` device (no memory) to learn the names, shapes and
    dtypes its configuration implies; ``others`` maps further safetensors files to their expected
    ``{name: (shape, dtype)}``. A configuration with absurd sizes is therefore rejected before any
    allocation, unless the weights file really holds that much data.
    """
    with torch.device("meta"), _SkipRandomInit():
        meta = factory()
    check_header(path, {k: (tuple(v.shape), v.dtype) for k, v in meta.state_dict().items()})
    for other, expected in (others or {}).items():
        check_header(other, expected)
    return factory()


def load_state(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a module's weights from safetensors after checking every name and shape."""
    state = module.state_dict()
    expected = {k: tuple(v.shape) for k, v in state.items()}
    tensors = load_tensors(path, expected)
    for k, v in tensors.items():
        if v.dtype != state[k].dtype:
            raise ModelError(f"{path}: tensor {k} has dtype {v.dtype}, expected {state[k].dtype}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ModelError(f"{path}: tensor {k} holds NaN or infinite values")
    module.load_state_dict(tensors, strict=True)


def check_int(cfg: Mapping, key: str, lo: int, hi: int, where: str) -> int:
    """A configuration integer within sane bounds (guards against absurd allocations)."""
    v = cfg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ModelError(f"{where}: {key} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def read_model_section(model_dir: str | os.PathLike, kind: str, config_cls):
    """Read ``config.json`` of a ``kind`` model and build ``config_cls`` from its ``model`` section.

    Every field is checked against the bounds and choices declared in ``config_cls``
    (:func:`tagger.options.option`) before anything is allocated. Returns
    ``(config, model_config, where)``.
    """
    cfg = read_config(model_dir, kind)
    where = str(Path(model_dir) / "config.json")
    m = cfg.get("model")
    if not isinstance(m, dict):
        raise ModelError(f"{where}: no model section")
    try:
        mc = config_cls.from_json(m)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: bad model section ({exc})") from None
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        try:
            coerce(hints[f.name], getattr(mc, f.name))
        except ValueError as exc:
            raise ModelError(f"{where}: model.{f.name} {exc}") from None
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if f.type in ("int", int) and lo is not None and hi is not None and f.name in m:
            check_int(m, f.name, lo, hi, where)  # (a field newer than the file keeps its default)
        why = field_problem(f, getattr(mc, f.name), name=f"model.{f.name}")
        if why:
            raise ModelError(f"{where}: {why}")
    return cfg, mc, where
