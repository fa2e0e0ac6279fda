"""Shared test fixtures and paths."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SHARED = Path(os.environ.get("TAGGER_SHARED_DATA", ROOT.parent / "shared" / "data"))

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


@functools.cache
def benchmark_module(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package), loaded once."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _quiet_torch_threads():
    """Keep tests from oversubscribing the two cores of CI machines."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def learned(tmp_path_factory):
    """The documented sample run: GloVe 6B 50d, default model, 15 epochs (model directory, summary).

    Session-wide: tests/test_train.py checks it, tests/test_distributed.py compares a 2-process run with it.
    """
    from tagger.commands.prepare import PrepareOptions, prepare
    from tagger.commands.train import TrainOptions, train

    d = tmp_path_factory.mktemp("m")
    prepare(PrepareOptions(train=str(SAMPLE / "train.conll"), dev=str(SAMPLE / "dev.conll"),
                           embeddings="glove-6b-50d"), d / "P")
    summary = train(d / "P", d / "M", TrainOptions(epochs=15, seed=1))
    return d / "M", summary


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A small entity model trained on the synthetic sample corpus (a few seconds); modules that need
    another model define their own ``model_dir``."""
    from tagger.commands.prepare import PrepareOptions, prepare
    from tagger.commands.train import TrainOptions, train

    root = tmp_path_factory.mktemp("annotate-model")
    prepare(PrepareOptions(train=str(SAMPLE / "train.conll"), dev=str(SAMPLE / "dev.conll"),
                           embeddings="none", embedding_dim=32), root / "prepared")
    train(root / "prepared", root / "model",
          TrainOptions(epochs=3, hidden=32, batch_size=16, device="cpu", threads=1, patience=3))
    return root / "model"
