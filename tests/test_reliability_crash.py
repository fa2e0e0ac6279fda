"""Reliability: crashes, interruptions and full disks.

* Training is SIGKILLed at several moments (before the first checkpoint, between epochs, at
  random time offsets, in the middle of writing the checkpoint, the best weights or a metrics
  line); ``--resume`` must then end exactly as an uninterrupted run with the same seed (same
  metrics.jsonl minus timings, same model.safetensors bytes), and the checkpoint on disk is
  always a complete one.
* ``tagger annotate`` is killed midway: no truncated file looks complete; ``--resume`` finishes.
* A full disk (a 1-4 MB tmpfs when the sandbox allows mounting one, else an injected ENOSPC):
  a one-line "no space left" error, exit status 2, the previous good outputs untouched.

The killed processes are forked from the test process (a real SIGKILL of a real process, without
paying for a fresh interpreter and torch import each time); one test drives the CLI in a
subprocess end to end.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE
from reliability_util import invoke, prepared_dir, run_cli_subprocess, tagger_model, write_case_counts
from resume_util import strip_timing

import tagger.commands.train  # noqa: F401  (imported before forking: every child runs the same code)

CASES: dict[str, int] = {}
OPTS = dict(hidden=16, char_dim=8, char_filters=8, epochs=6, seed=7, threads=1, optimizer="adam", lr=0.01,
            patience=20)


def _count(kind: str, n: int = 1) -> None:
    CASES[kind] = CASES.get(kind, 0) + n


# --------------------------------------------------------------------------- helpers


def fork(fn, *args) -> int:
    """Run ``fn(*args)`` in a forked child; returns its pid (exit 0 on success, 3 on an exception)."""
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 3
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            fn(*args)
            code = 0
        except BaseException as exc:  # noqa: BLE001
            with contextlib.suppress(Exception):
                sys.stderr.write(f"child failed: {type(exc).__name__}: {exc}\n")
        finally:
            os._exit(code)
    return pid


def wait_for(pid: int, cond, timeout: float = 60.0, what: str = "") -> None:
    """Poll ``cond()`` while the child runs; fail if it exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not cond():
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise AssertionError(f"child exited ({status}) before {what}")
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def kill(pid: int) -> bool:
    """SIGKILL the child and reap it; False if it had already finished on its own."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL, status
        return True
    assert os.waitstatus_to_exitcode(status) == 0, f"child failed before the kill ({status})"
    return False


def join(pid: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            kill(pid)
            raise AssertionError("child did not finish")
        time.sleep(0.01)


def metrics_lines(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def read_metrics(out: Path):
    return strip_timing([json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_checkpoint_complete(out: Path) -> None:
    """Whatever is on disk under the real names is complete and loadable."""
    from safetensors import safe_open

    ck = out / "checkpoint.safetensors"
    if ck.exists():
        with safe_open(str(ck), framework="pt") as fh:
            info = json.loads(fh.metadata()["info"])
            for k in fh.keys():
                fh.get_tensor(k)
        assert info["epoch"] >= 1
    if (out / "model.safetensors").exists():
        from safetensors.torch import load_file

        load_file(str(out / "model.safetensors"))
    for p in out.iterdir():
        if p.name.startswith(".") and ".tmp-" in p.name:
            continue  # a killed writer's temporary file: never read under the real name
        if p.suffix == ".json":
            json.loads(p.read_text())


def train_child(prep: Path, out: Path, resume: bool = False, patch=None):
    def run():
        import torch

        from tagger.commands.train import TrainOptions, train

        torch.set_num_threads(1)
        if patch is not None:
            patch()
        train(prep, out, None if resume else TrainOptions(**OPTS), resume=resume)

    return fork(run)


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    return prepared_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(prep, tmp_path_factory):
    """An uninterrupted run with the same seed (in a child, like the interrupted ones)."""
    out = tmp_path_factory.mktemp("ref") / "model"
    assert join(train_child(prep, out)) == 0
    return out


def finish_and_compare(prep: Path, out: Path, reference: Path) -> None:
    assert join(train_child(prep, out, resume=True)) == 0
    assert read_metrics(out) == read_metrics(reference)
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name], "temporary files left behind"
    s, r = (json.loads((d / "train_summary.json").read_text()) for d in (out, reference))
    assert {k: v for k, v in s.items() if k not in ("minutes", "model")} == \
           {k: v for k, v in r.items() if k not in ("minutes", "model")}


# --------------------------------------------------------------------------- training: SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before the first checkpoint", "after epoch 2", "in the last epoch"])
def test_training_killed_between_epochs_resumes_identically(prep, reference, tmp_path, point):
    out = tmp_path / "model"
    pid = train_child(prep, out)
    need = {"before the first checkpoint": 0, "after epoch 2": 2,
            "in the last epoch": OPTS["epochs"] - 1}[point]
    if need == 0:
        wait_for(pid, lambda: (out / "train.toml").exists(), what="train.toml")
    else:
        wait_for(pid, lambda: metrics_lines(out) >= need, what=f"{need} metrics lines")
    kill(pid)
    assert_checkpoint_complete(out)
    finish_and_compare(prep, out, reference)
    _count("training SIGKILL")


@pytest.mark.slow
def test_training_killed_at_random_moments(prep, reference, tmp_path):
    """Three kills in a row at seeded random offsets (wherever they land: an epoch, dev scoring, a write)."""
    out = tmp_path / "model"
    rng = random.Random(8)
    t_ref = sum(json.loads(line)["seconds"] for line in (reference / "metrics.jsonl").read_text().splitlines())
    resume = False
    for _ in range(3):
        pid = train_child(prep, out, resume=resume)
        wait_for(pid, lambda: (out / "train.toml").exists(), what="start")
        time.sleep(rng.uniform(0.0, max(0.2, t_ref * 0.4)))
        if kill(pid):
            _count("training SIGKILL")
        assert_checkpoint_complete(out)
        resume = True
    finish_and_compare(prep, out, reference)


def _stall_writes_of(name: str, nth: int, marker: Path, part: str = "half"):
    """In the child: the ``nth`` write of a file named ``name`` stops halfway (or before the rename)."""

    def patch():
        import builtins

        import tagger.fsutil
        import tagger.training.rundir

        real_open = builtins.open
        seen = {"n": 0}

        class Stalling:
            def __init__(self, fh):
                self.fh = fh

            def write(self, data):
                cut = len(data) // 2 if part == "half" else len(data)
                self.fh.write(data[:cut])
                self.fh.flush()
                os.fsync(self.fh.fileno())
                marker.with_suffix(".tmp").write_text(self.fh.name)
                os.replace(marker.with_suffix(".tmp"), marker)  # the parent never reads it half-written
                time.sleep(120)  # killed here

            def __getattr__(self, k):
                return getattr(self.fh, k)

            def __enter__(self):
                return self

            def __exit__(self, *a):
                return self.fh.__exit__(*a)

        def stalling_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            base = os.path.basename(str(file))
            if "w" in mode or "a" in mode:
                if base == name or base.startswith(f".{name}.tmp-"):
                    seen["n"] += 1
                    if seen["n"] == nth:
                        return Stalling(fh)
            return fh

        tagger.fsutil.open = stalling_open  # module globals shadow the builtin for these modules only
        tagger.training.rundir.open = stalling_open

        # Tensor files are streamed by safetensors (written from Rust, not through ``open``): the
        # same stall, on a temporary file cut to half its size.
        import safetensors.torch

        real_save_file = safetensors.torch.save_file

        def stalling_save_file(tensors, filename, *args, **kwargs):
            real_save_file(tensors, filename, *args, **kwargs)
            if os.path.basename(str(filename)).startswith(f".{name}.tmp-"):
                seen["n"] += 1
                if seen["n"] == nth:
                    with real_open(filename, "r+b") as fh:
                        fh.truncate(os.path.getsize(filename) // 2)
                        os.fsync(fh.fileno())
                    marker.with_suffix(".tmp").write_text(str(filename))
                    os.replace(marker.with_suffix(".tmp"), marker)
                    time.sleep(120)  # killed here

        safetensors.torch.save_file = stalling_save_file

    return patch


@pytest.mark.slow
@pytest.mark.parametrize("name,nth", [("checkpoint.safetensors", 3), ("model.safetensors", 2),
                                      ("metrics.jsonl", 3), ("train.toml", 1)])
def test_training_killed_in_the_middle_of_a_write(prep, reference, tmp_path, name, nth):
    """The killed write leaves a hidden partial temporary file (or half a metrics line); resume copes."""
    out = tmp_path / "model"
    marker = tmp_path / "stalled"
    pid = train_child(prep, out, patch=_stall_writes_of(name, nth, marker))
    wait_for(pid, marker.exists, what=f"write #{nth} of {name}")
    kill(pid)
    written = Path(marker.read_text())
    if name == "metrics.jsonl":
        assert written.name == name  # appended in place: the last line is cut
        assert not (out / name).read_text().endswith("\n")
    else:
        assert written.name.startswith(f".{name}.tmp-")  # only ever a temporary file is partial
        assert written.exists() and written.stat().st_size > 0
    if name == "checkpoint.safetensors":
        from safetensors import safe_open

        with safe_open(str(out / name), framework="pt") as fh:  # the previous checkpoint is intact
            assert json.loads(fh.metadata()["info"])["epoch"] == nth - 1
    if name == "train.toml":
        assert not (out / "train.toml").exists()
        # the configuration never reached disk: --resume cannot know it and says so
        code, outp, exc = invoke("train", prep, "--out", out, "--resume", "-q")
        assert exc is None and code == 2 and "nothing to resume" in outp
        _count("training SIGKILL during a write")
        return
    assert_checkpoint_complete(out)
    finish_and_compare(prep, out, reference)
    _count("training SIGKILL during a write")


def test_resume_with_more_epochs_extends_a_finished_run(prep, tmp_path):
    """--resume --epochs N after a run that finished: continues exactly like an N-epoch run."""
    from tagger.commands.train import TrainOptions, train

    short, full = dict(OPTS, epochs=2), dict(OPTS, epochs=3)
    train(prep, tmp_path / "a", TrainOptions(**short))
    s = train(prep, tmp_path / "a", TrainOptions(epochs=3), resume=True)
    r = train(prep, tmp_path / "b", TrainOptions(**full))
    assert s["epochs"] == 3 and strip_timing(s["history"]) == strip_timing(r["history"])
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert train(prep, tmp_path / "a", None, resume=True)["epochs"] == 3  # finished again: nothing to do
    _count("resume semantics")


def test_atomic_write_order_file_fsync_rename_dir_fsync(tmp_path, monkeypatch):
    """atomic_write_bytes: data → fsync(file) → rename → fsync(directory); failures leave the target alone."""
    import tagger.fsutil as fsutil

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fsutil.os, "fsync", lambda fd: (calls.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))),
                                                         real_fsync(fd))[1])
    monkeypatch.setattr(fsutil.os, "replace", lambda a, b: (calls.append(("replace", Path(a).name.startswith("."))),
                                                            real_replace(a, b))[1])
    target = tmp_path / "checkpoint.safetensors"
    fsutil.atomic_write_bytes(target, b"new")
    assert calls == [("fsync", False), ("replace", True), ("fsync", True)]
    assert target.read_bytes() == b"new"

    def boom(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fsutil.os, "fsync", boom)
    with pytest.raises(Exception, match="I/O error"):
        fsutil.atomic_write_bytes(target, b"newer")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]
    _count("atomic write order")


def test_atomic_write_under_sigkill_is_all_or_nothing(tmp_path):
    """Kill a writer of large files at random moments: the target is always one complete version."""
    from tagger.fsutil import atomic_write_bytes

    target = tmp_path / "checkpoint.safetensors"
    versions = {bytes([i]) * (4 << 20) for i in range(1, 4)}
    rng = random.Random(3)
    kills = 0
    for trial in range(6):
        def writer():
            i = 0
            while True:
                atomic_write_bytes(target, bytes([i % 3 + 1]) * (4 << 20))
                i += 1

        pid = fork(writer)
        time.sleep(rng.uniform(0.01, 0.15))
        kill(pid)
        kills += 1
        if target.exists():
            assert target.read_bytes() in versions, f"trial {trial}: torn file"
        for p in tmp_path.iterdir():
            if p.name != target.name:
                assert p.name.startswith(".checkpoint.safetensors.tmp-")
                p.unlink()
    _count("atomic write under SIGKILL", kills)


@pytest.mark.slow
def test_cli_train_killed_and_resumed_in_a_subprocess(prep, reference, tmp_path):
    """End to end through the CLI: ``tagger train`` killed at a time offset, then ``tagger train --resume``."""
    out = tmp_path / "model"
    args = ["train", prep, "--out", out, "-q", *[x for k, v in OPTS.items() for x in (f"--{k.replace('_', '-')}", v)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tagger.cli", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while metrics_lines(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert_checkpoint_complete(out)
    res = run_cli_subprocess("train", prep, "--out", out, "--resume", "-q")
    assert res.returncode == 0, res.stderr
    assert read_metrics(out) == read_metrics(reference)
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    _count("training SIGKILL")


# --------------------------------------------------------------------------- annotate: killed midway


@pytest.fixture(scope="module")
def annotate_setup(tmp_path_factory):
    pytest.importorskip("tagger.commands.annotate", reason="tagger annotate is not written yet")
    from tagger.commands.annotate import AnnotateOptions, annotate_paths

    model = tagger_model(tmp_path_factory)
    root = tmp_path_factory.mktemp("annotate-kill")
    src = root / "in"
    src.mkdir()
    words = SAMPLE.joinpath("train.conll").read_text(encoding="utf-8").split()
    rng = random.Random(5)
    for i in range(6):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 25))) for _ in range(1500)]
        (src / f"doc{i}.tok").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ref = root / "ref"
    summary = annotate_paths(model, [str(src)], str(ref), AnnotateOptions(progress=False, threads=1, chunk_size=200))
    assert summary.exit_code == 0
    return model, src, ref


def _visible_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def _annotate_child(model, src, out, resume=False):
    def run():
        import torch

        from tagger.commands.annotate import AnnotateOptions, annotate_paths

        torch.set_num_threads(1)
        annotate_paths(model, [str(src)], str(out),
                       AnnotateOptions(progress=False, threads=1, chunk_size=200, resume=resume, prefetch=False))

    return fork(run)


@pytest.mark.parametrize("moment", ["first file done", "random"])
def test_annotate_killed_midway_then_resume(annotate_setup, tmp_path, moment):
    from tagger.commands.annotate import AnnotateOptions, annotate_paths

    model, src, ref = annotate_setup
    out = tmp_path / "out"
    pid = _annotate_child(model, src, out)
    if moment == "first file done":
        wait_for(pid, lambda: out.exists() and len(_visible_files(out)) >= 1, what="first output file")
    else:
        wait_for(pid, lambda: out.exists() and any(out.iterdir()), what="output started")
        time.sleep(random.Random(11).uniform(0.05, 0.6))
    kill(pid)
    done = _visible_files(out)
    assert len(done) < 6 or moment == "random"
    for p in done:  # a file that looks finished is finished
        assert p.read_bytes() == (ref / p.relative_to(out)).read_bytes(), f"{p.name} is truncated"
    summary = annotate_paths(model, [str(src)], str(out),
                             AnnotateOptions(progress=False, threads=1, chunk_size=200, resume=True))
    assert summary.exit_code == 0
    assert [p.relative_to(out) for p in _visible_files(out)] == [p.relative_to(ref) for p in _visible_files(ref)]
    for p in _visible_files(ref):
        assert (out / p.relative_to(ref)).read_bytes() == p.read_bytes()
    leftovers = [p.name for p in out.rglob(".*")]
    assert not leftovers, f"temporary files of the killed run are left behind: {leftovers}"
    _count("annotate SIGKILL + --resume")


def test_annotate_single_file_killed_leaves_no_output(annotate_setup, tmp_path):
    from tagger.commands.annotate import AnnotateOptions, annotate_paths

    model, src, ref = annotate_setup
    big = tmp_path / "big.tok"
    big.write_bytes(b"".join((src / f"doc{i}.tok").read_bytes() for i in range(6)))
    out = tmp_path / "res" / "big.jsonl"

    def run():
        import torch

        torch.set_num_threads(1)
        annotate_paths(model, [str(big)], str(out), AnnotateOptions(progress=False, threads=1, chunk_size=100,
                                                                    prefetch=False))

    pid = fork(run)
    wait_for(pid, lambda: out.parent.exists() and any(p.name.startswith(".") for p in out.parent.iterdir()),
             what="the temporary output")
    time.sleep(0.1)
    kill(pid)
    assert not out.exists() or out.read_bytes().count(b"\n") == 6 * 1500
    _count("annotate SIGKILL + --resume")


# --------------------------------------------------------------------------- disk full


@contextlib.contextmanager
def small_fs(path: Path, size: str):
    """A size-limited tmpfs at ``path`` (root in a sandbox that allows mounts), else skip."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}); "
                    "the injected-ENOSPC tests cover this")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(fs: Path, leave: int = 0) -> Path:
    """Fill the file system, leaving about ``leave`` bytes free."""
    filler = fs / "filler"
    with open(filler, "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    if leave:
        with open(filler, "r+b") as fh:
            fh.truncate(max(0, filler.stat().st_size - leave + free))
    return filler


def unfinished_copy(model: Path, dest: Path) -> Path:
    """A copy of a trained model whose checkpoint says training may go on (so --resume trains)."""
    from safetensors import safe_open
    from safetensors.torch import save

    shutil.copytree(model, dest)
    ck = dest / "checkpoint.safetensors"
    with safe_open(str(ck), framework="pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta["info"] = json.dumps({**json.loads(meta["info"]), "finished": False})
    ck.write_bytes(save(tensors, metadata=meta))
    return dest


KEY_FILES = ("config.json", "model.safetensors", "checkpoint.safetensors", "extra_embeddings.safetensors")


def key_digest(model: Path) -> dict[str, str]:
    return {n: hashlib.sha256((model / n).read_bytes()).hexdigest() for n in KEY_FILES}


def test_disk_full_on_a_real_small_file_system(prep, tmp_path_factory, tmp_path):
    model = tagger_model(tmp_path_factory)
    with small_fs(tmp_path / "fs", "4m") as fs:
        # good outputs that must survive
        shutil.copytree(prep, fs / "prepared")
        unfinished_copy(model, fs / "model")
        before_prep, before_model = tree_digest(fs / "prepared"), key_digest(fs / "model")
        fill(fs, leave=4096)
        cases = [
            ("prepare --force over a good prepared dir",
             ["prepare", "--train", SAMPLE / "train.conll", "--embeddings", "none", "--embedding-dim", "8",
              "--out", fs / "prepared", "--force", "-q"]),
            ("train --resume of a good model",
             ["train", prep, "--out", fs / "model", "--resume", "--epochs", "3", "-q"]),
            ("train a new model", ["train", prep, "--out", fs / "new-model", "--epochs", "1", "--hidden", "8", "-q"]),
            ("evaluate --out", ["evaluate", model, "--data", SAMPLE / "dev.conll", "--out", fs / "eval", "-q"]),
            ("annotate to a file", ["annotate", model, SAMPLE / "news.txt", "--out", fs / "news.jsonl", "-q"]),
            ("annotate a directory", ["annotate", model, SAMPLE, "--glob", "*.txt", "--out", fs / "ann", "-q"]),
        ]
        failures = []
        for what, args in cases:
            code, out, exc = invoke(*args)
            ok = exc is None and code == 2 and "no space left" in out.lower() and "Traceback" not in out
            if not ok:
                failures.append(f"{what}: exit {code}, {type(exc).__name__ if exc else ''} {exc or ''} "
                                f"{out.strip()[-300:]}")
            _count("disk full (tmpfs)")
        assert not failures, "\n".join(failures)
        assert tree_digest(fs / "prepared") == before_prep
        assert key_digest(fs / "model") == before_model
        assert not (fs / "news.jsonl").exists()
        assert not (fs / "new-model" / "model.safetensors").exists()  # nothing that looks like a model
        for d in ("ann", "eval"):
            assert not (fs / d).exists() or not any(p.stat().st_size for p in (fs / d).rglob("*") if p.is_file())
        leftovers = [p.name for p in fs.iterdir() if p.name not in ("prepared", "model", "filler", "ann", "eval",
                                                                     "new-model")]
        assert not leftovers, leftovers
        # with space again, the interrupted training resumes
        (fs / "filler").unlink()
        code, out, exc = invoke("train", prep, "--out", fs / "model", "--resume", "--epochs", "2", "-q")
        assert exc is None and code == 0, out


def test_disk_full_injected_enospc(prep, tmp_path_factory, tmp_path, monkeypatch):
    """Without a mountable tmpfs: every write fails with ENOSPC at fsync time."""
    model = unfinished_copy(tagger_model(tmp_path_factory), tmp_path / "model")
    before = key_digest(model)

    def enospc(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", enospc)
    cases = [
        ["train", prep, "--out", model, "--resume", "--epochs", "3", "-q"],
        ["annotate", model, SAMPLE / "news.txt", "--out", tmp_path / "news.jsonl", "-q"],
        ["evaluate", model, "--data", SAMPLE / "dev.conll", "--out", tmp_path / "eval", "-q"],
    ]
    for args in cases:
        code, out, exc = invoke(*args)
        assert exc is None and code == 2 and "no space left" in out.lower() and "Traceback" not in out, (args, out, exc)
        _count("disk full (injected ENOSPC)")
    assert key_digest(model) == before
    assert not (tmp_path / "news.jsonl").exists()


def test_write_case_counts():
    write_case_counts("crash", CASES)
