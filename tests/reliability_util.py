"""Helpers shared by the reliability tests (tests/test_reliability_*.py).

Tiny models (hidden 16, one epoch, a few hundred sentences) are built once per test process and
cached under pytest's base temporary directory, so the three reliability modules share them.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SAMPLE

_CACHE: dict[tuple[str, str], Path] = {}

TINY_TRAIN = dict(hidden=16, char_dim=8, char_filters=8, epochs=1, batch_size=16, seed=1, threads=1)


def _root(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "reliability-models"
    root.mkdir(exist_ok=True)
    return root


def sample_subset(dest: Path, n_sentences: int = 120) -> Path:
    """The first ``n_sentences`` sentences of the bundled sample's train.conll."""
    out, count = [], 0
    for line in (SAMPLE / "train.conll").read_text(encoding="utf-8").splitlines():
        out.append(line)
        if not line.strip():
            count += 1
            if count >= n_sentences:
                break
    dest.write_text("\n".join(out) + "\n", encoding="utf-8")
    return dest


def _cached(tmp_path_factory, name: str, build) -> Path:
    key = (str(tmp_path_factory.getbasetemp()), name)
    if key not in _CACHE:
        path = _root(tmp_path_factory) / name
        if not path.exists():
            build(path)
        _CACHE[key] = path
    return _CACHE[key]


def prepared_dir(tmp_path_factory) -> Path:
    """A prepared directory with tiny pretrained vectors (so models have extra words)."""

    def build(path: Path) -> None:
        from tagger.commands.prepare import PrepareOptions, prepare

        work = path.parent / "prep-src"
        work.mkdir(exist_ok=True)
        train = sample_subset(work / "train.conll", 120)
        vec = work / "vectors.txt"
        vec.write_text("the 0.1 0.2 0.3 0.4\nberlin 0.5 0.1 0.1 0.1\nzanzibar 0.9 0.9 0.9 0.9\n"
                       "timbuktu 0.3 0.3 0.1 0.0\n", encoding="utf-8")
        prepare(PrepareOptions(train=str(train), dev=str(SAMPLE / "dev.conll"), embeddings=str(vec)), path)

    return _cached(tmp_path_factory, "prepared", build)


def tagger_model(tmp_path_factory) -> Path:
    """A one-epoch hidden-16 tagger (with extra pretrained words: extra_embeddings is used)."""

    def build(path: Path) -> None:
        from tagger.commands.train import TrainOptions, train

        train(prepared_dir(tmp_path_factory), path, TrainOptions(**TINY_TRAIN))

    return _cached(tmp_path_factory, "tagger", build)


def classifier_model(tmp_path_factory) -> Path:
    def build(path: Path) -> None:
        from tagger.commands.classify import ClassifierOptions, train_classifier
        from tagger.formats.examples import Example

        ex = [Example(f"{w} film {i}", lab, "x", i) for i, (w, lab) in
              enumerate([("good", "pos"), ("bad", "neg")] * 20)]
        clf, _ = train_classifier(ex, None, ClassifierOptions(
            embeddings="none", embedding_dim=8, hidden=8, epochs=1, dev_fraction=0.0, threads=1))
        clf.save(path)

    return _cached(tmp_path_factory, "classifier", build)


def generator_model(tmp_path_factory) -> Path:
    def build(path: Path) -> None:
        from tagger.commands.generate import GeneratorOptions, train_generator

        sents = [["the", "cat", "sat"], ["a", "dog", "ran", "home"]] * 20
        gen, _ = train_generator(sents, None, GeneratorOptions(
            min_count=1, embedding_dim=8, hidden=8, epochs=1, bptt=5, batch_size=4, threads=1))
        gen.save(path)

    return _cached(tmp_path_factory, "generator", build)


def copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def evil_pickle(marker: Path) -> bytes:
    """A real malicious pickle: unpickling it creates ``marker``."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Payload())


def edit_config(model: Path, edit) -> None:
    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    edit(cfg)
    (model / "config.json").write_text(json.dumps(cfg), encoding="utf-8")


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "tagger.cli", *map(str, args)]


def run_cli_subprocess(*args, timeout: float = 120, env: dict | None = None, cwd=None):
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH", "")]))
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)


def invoke(*args, input=None):
    """Run the CLI in-process; return (exit code, combined output, exception or None)."""
    from click.testing import CliRunner

    from tagger.cli import main

    res = CliRunner().invoke(main, [str(a) for a in args], input=input)
    exc = res.exception if not isinstance(res.exception, SystemExit) else None
    return res.exit_code, res.output, exc


def assert_clean_exit_2(args, expect: str | None = None, input=None) -> str:
    """The command fails with exit status 2, one clear message and no traceback."""
    code, out, exc = invoke(*args, input=input)
    assert exc is None, f"{args}: uncaught {type(exc).__name__}: {exc}\n{out}"
    assert code == 2, f"{args}: exit {code}\n{out}"
    assert "Traceback" not in out, out
    assert "error" in out.lower(), out
    if expect is not None:
        assert expect.lower() in out.lower(), f"{args}: {expect!r} not in\n{out}"
    return out


def write_case_counts(section: str, counts: dict, **extra) -> None:
    """Merge ``counts`` into the JSON file named by ``TAGGER_RELIABILITY_CASES`` (no-op without it);
    reports/reliability.md quotes reports/reliability_cases.json."""
    path = os.environ.get("TAGGER_RELIABILITY_CASES")
    if path:
        p = Path(path)
        data = json.loads(p.read_text()) if p.exists() else {}
        data[section] = dict(counts)
        data.update(extra)
        p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
