"""The output directory of a training run: also the model directory it produces.

Besides the model's own files (``config.json``, the best weights ``model.safetensors``, extras)
a run keeps its options (``train.toml``), one ``metrics.jsonl`` row per epoch, the checkpoint of
the last finished epoch and ``train_summary.json``. Every file but the appended metrics is
written atomically, so a run killed at any moment leaves complete files and ``--resume`` goes on.

In data-parallel training every rank holds a :class:`RunDir`, but only rank 0 writes
(:attr:`RunDir.writes`): the others' write methods do nothing, so callers need no rank checks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from tagger import modeldir
from tagger.errors import TaggerError
from tagger.fsutil import atomic_write_bytes, atomic_write_json, os_error
from tagger.options import check_fields, to_toml
from tagger.training import distributed
from tagger.training.checkpoint import save_checkpoint
from tagger.training.ema import WeightEMA
from tagger.training.resume import given_options, resumed_options

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
F = TypeVar("F", bound=Callable[..., None])

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
OPTIONS = "train.toml"
SUMMARY = "train_summary.json"
WEIGHTS = "model.safetensors"


def _rank0(method: F) -> F:
    """A write method of :class:`RunDir`: it does nothing where the run dir does not write."""

    @functools.wraps(method)
    def write(self: RunDir, *args: Any, **kwargs: Any) -> None:
        if self.writes:
            method(self, *args, **kwargs)

    return write  # type: ignore[return-value]


class RunDir:
    """The directory ``out`` of a new run (``force`` replaces an old one) or a resumed one.

    ``table`` names the TOML table of the saved options (``train``, ``classify``, ``generate``).
    ``writes`` is False in the ranks of data-parallel training other than 0: their write methods
    do nothing (reads work in every rank).
    """

    def __init__(self, out: str | Path, table: str, *, resume: bool = False, force: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        self.path = Path(out)
        self.table = table
        self.resume = resume
        self.force = force
        self.restart = False  # resuming a run killed before its first checkpoint: start over
        self.say = log or (lambda m: None)
        self.checkpoint = self.path / CHECKPOINT
        self.opts: Any = None  # the options of the run, once known
        self.writes = distributed.is_main()

    @property
    def continuing(self) -> bool:
        """True when the run goes on from a checkpoint."""
        return self.resume and not self.restart

    def options(self, cls: type[T], opts: T | None, given: Mapping[str, Any] | None = None) -> T:
        """The options of the run: ``opts`` for a new one; the saved ones when resuming.

        When resuming, ``given`` holds the options the user gave (``None``: those of ``opts``
        that differ from the defaults); see :func:`tagger.training.resume.resumed_options`.
        """
        if not self.resume:
            if opts is None:
                raise TaggerError("training options are required unless resuming")
            self.opts = opts
            return opts
        saved = self.path / OPTIONS
        if not self.checkpoint.exists() and not self.checkpoint.is_symlink():
            if not saved.is_file() or not (self.path / "config.json").is_file():
                raise TaggerError(f"{self.path}: nothing to resume (no {CHECKPOINT}); start again with --force")
            self.restart = True
        if given is None:
            given = given_options(opts) if opts is not None else {}
        resumed = self.opts = resumed_options(cls, saved, self.table, given)
        self.say(f"{self.path}: no checkpoint yet (stopped in the first epoch): starting over with {saved}"
                 if self.restart else f"resuming from {self.checkpoint} with the saved configuration {saved}")
        return resumed

    @_rank0
    def create(self) -> None:
        """Make the directory: refuse an existing one unless forced or resuming."""
        out = self.path
        if out.exists() and not self.resume:
            if not self.force:
                raise TaggerError(f"{out} already exists (use --force to replace it, or --resume to continue)")
            if not out.is_dir():
                raise TaggerError(f"{out} exists and is not a directory")
            shutil.rmtree(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(out, exc) from None
        if self.resume:  # temporary files of a killed run (complete files are always renamed into place)
            for stale in out.glob(".*.tmp-*"):
                with contextlib.suppress(OSError):
                    stale.unlink()

    @_rank0
    def start_files(self, write_files: Callable[[Path], None]) -> None:
        """Write the model's static files, then the options (their presence marks a started run)."""
        write_files(self.path)
        header = "effective training configuration (use it with --config)"
        atomic_write_bytes(self.path / OPTIONS, to_toml(self.opts, self.table, header).encode())

    def check_saved(self, kind: str, key: str, value: Any, what: str) -> None:
        """A resumed run must see what the saved one saw: ``config.json``'s ``key`` must equal ``value``."""
        if self.continuing and modeldir.read_config(self.path, kind).get(key) != value:
            raise TaggerError(f"{self.path}: the {what} differ from those of the saved run (another {key}); "
                              f"resume with the same {what}, or start again with --force")

    # ------------------------------------------------------------------ history

    def read_history(self, last_epoch: int) -> list[dict]:
        """Rows of metrics.jsonl up to ``last_epoch``; a line cut short by a kill is dropped."""
        path = self.path / METRICS
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] <= last_epoch:
                rows.append(row)
        return rows

    @_rank0
    def write_history(self, rows: list[dict]) -> None:
        atomic_write_bytes(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows).encode())

    @_rank0
    def append_history(self, row: dict) -> None:
        path = self.path / METRICS
        try:
            with open(path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        except OSError as exc:
            raise os_error(path, exc) from None

    # ------------------------------------------------------------------ weights and summary

    @_rank0
    def save_weights(self, state: Mapping[str, torch.Tensor]) -> None:
        modeldir.save_tensors(self.path / WEIGHTS, state)

    @_rank0
    def save_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict,
                        ema: WeightEMA | None) -> None:
        """The checkpoint of the epoch just finished (:func:`tagger.training.checkpoint.save_checkpoint`)."""
        save_checkpoint(self.checkpoint, model, optimizer, info, ema)

    def load_weights(self) -> dict[str, torch.Tensor]:
        return modeldir.load_tensors(self.path / WEIGHTS)

    @_rank0
    def write_config(self, kind: str, config: dict) -> None:
        """The model's ``config.json`` (:func:`tagger.modeldir.write_config`)."""
        modeldir.write_config(self.path, kind, config)

    @_rank0
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """``train_summary.json``: the summary without the per-epoch history."""
        atomic_write_json(self.path / SUMMARY, {k: v for k, v in summary.items() if k != "history"})


def run_dir(out: str | Path | None, table: str, *, resume: bool = False, force: bool = False,
            log: Callable[[str], None] | None = None) -> RunDir | None:
    """The directory of a run into ``out``; ``None`` without one (training in memory, not resumable)."""
    if out is None:
        if resume:
            raise TaggerError("--resume needs --out (the model directory of the run to continue)")
        return None
    return RunDir(out, table, resume=resume, force=force, log=log)


def run_options(run: RunDir | None, cls: type[T], opts: Any, given: Mapping[str, Any] | None = None) -> T:
    """The validated ``cls`` options of a run: ``opts``, or the saved ones when resuming (:meth:`RunDir.options`)."""
    checked: T | None = run.options(cls, opts, given) if run is not None else opts
    if checked is None:
        raise TaggerError("training options are required unless resuming")
    check_fields(checked)
    return checked
