"""Training and annotation speed against the plain-PyTorch floor, measured side by side in one run (issue #13).

Usage::

    python benchmarks/speed.py [--data ../shared/data] [--workdir DIR] [--epochs 3] [--threads N]
        [--competing] [--time-to-accuracy MINUTES [--short-budget 4]]
        [--default-input N] [--default-hidden N] [--default-batch N] [--train-limit N] [--out reports/speed]
        [--baseline CHECKOUT]

    # the report run (about an hour on an idle 2-core machine):
    python benchmarks/speed.py --competing --time-to-accuracy 15

In one invocation, per condition (idle; with ``--competing`` also beside a 2-thread matmul loop):

1. ``tagger prepare`` of CoNLL-2003 into WORK/prep (kept and reused when it exists);
2. ``../shared/bench/floor.py --orders sorted`` at the small shape (input 100, hidden 100, batch 32)
   and at the defaults' shape (read from ``TrainOptions()``), before the tagger runs;
3. ``tagger train`` at the small shape and 4. with the defaults, ``--epochs E --patience 100``:
   median training seconds per epoch and dev-evaluation seconds from ``metrics.jsonl``, peak RSS
   (``os.wait4``);
5. annotation of eng.testb (CoNLL input, and raw text) by both models, each in 3 fresh processes
   (``speed.py --annotate-once``, the library code behind ``tagger annotate``, confidences on):
   tokens/s over the annotate time, and over the whole process, of the median one;
6. import -> first prediction of each model in a fresh process;
7. the floor again. Ratios use the mean of the floor before and after, from the same condition.

``--time-to-accuracy M`` trains the defaults with ``--max-minutes M`` (and ``--short-budget``),
snapshots every new best model, scores each on eng.testb and plots test F1 against minutes.
Results: OUT.md, OUT.json and OUT_time_to_accuracy.png. ``--train-limit N`` (smoke tests only)
trains on the first N sentences of eng.train; the report says so. ``--annotate-once MODEL INPUT
OUTPUT IN_FMT OUT_FMT THREADS`` is the helper mode used in step 5. ``--baseline CHECKOUT`` also
times steps 3-4 with the code of another checkout (``git worktree add /tmp/base REV``), so that
before/after speed-ups come from the same run and condition.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ROOT.parent / "shared" / "bench" / "floor.py"
SMALL_SHAPE = {"input": 100, "hidden": 100, "batch": 32}
SMALL_FLAGS = ["--char-encoder", "none", "--no-casing", "--hidden", "100", "--batch-size", "32",
               "--word-dropout", "0", "--ema", "0"]
PROBE = [["EU", "rejects", "German", "call"]]
#: Fresh annotate processes per figure (the median one is reported: one process is at the mercy of the
#: machine's noise, as one epoch is).
ANNOTATE_RUNS = 3
FIRST_PREDICTION = (  # {model} and {probe} as JSON: double quotes, readable in the shell command
    'import json, time; t0 = time.perf_counter(); import tagger; t1 = time.perf_counter(); '
    'p = tagger.load({model}); t2 = time.perf_counter(); p.predict({probe}); t3 = time.perf_counter(); '
    'print(json.dumps(dict(import_s=t1 - t0, load_s=t2 - t1, predict_s=t3 - t2, total_s=t3 - t0)))'
)
COMPETING_JOB = ("import torch\ntorch.set_num_threads(2)\na, b = torch.randn(512, 512), torch.randn(512, 512)\n"
                 "while True:\n    a @ b\n")
# (row key, target text, test on the ratio or value); from the issue, for the idle machine
TARGETS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "train_small": ("≤ 1.0×", lambda r: r <= 1.0),
    "train_default": ("≤ 1.5×", lambda r: r <= 1.5),
    "conll_small": ("≥ 0.7×", lambda r: r >= 0.7),
    "conll_default": ("≥ 0.7×", lambda r: r >= 0.7),
    "text_small": ("≥ 0.5×", lambda r: r >= 0.5),
    "text_default": ("≥ 0.5×", lambda r: r >= 0.5),
    "rss_train": ("≤ 800 MB", lambda v: v <= 800),
    "first_prediction": ("≤ 2 s", lambda v: v <= 2.0),
    "tta": ("≥ 90.5 in 15 min", lambda v: v >= 90.5),
    "tta_short": ("≥ 89.0 in 4 min", lambda v: v >= 89.0),
}


class BenchError(RuntimeError):
    """A step failed: the message names the command and its log."""


def say(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- pure helpers


def read_json_lines(text: str) -> list[dict]:
    """The JSON objects among the lines of ``text`` (other lines are skipped)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def summarize_floor(rows: list[dict]) -> dict:
    """Sorted-epoch seconds and decode rates (Viterbi and log Z, per batch size) from floor.py's output."""
    out: dict = {"epoch_s": None, "epoch_runs": [], "viterbi_tok_s": {}, "logz_tok_s": {}}
    for r in rows:
        what = str(r.get("what", ""))
        if what.startswith("train_epoch") and r.get("order") == "sorted" and not r.get("packed"):
            out["epoch_s"], out["epoch_runs"] = r["sec"], r.get("sec_runs", [])
        elif what.startswith("testb forward"):
            key = "viterbi_tok_s" if "viterbi" in what else "logz_tok_s"
            out[key][str(r["bs"])] = r["tok_per_s"]
        elif "matmul_gflops_2thr" in r:
            out["matmul_gflops_2thr"] = round(r["matmul_gflops_2thr"], 1)
            out["threads"] = r.get("threads")
    if out["epoch_s"] is None or "256" not in out["viterbi_tok_s"]:
        raise ValueError("floor output lacks the sorted training epoch or the bs-256 Viterbi line")
    return out


def epoch_stats(rows: list[dict]) -> dict:
    """Training and dev-evaluation seconds per epoch (all, and the median) from metrics.jsonl rows."""
    if not rows:
        raise ValueError("metrics.jsonl has no rows")
    train = [float(r["train_seconds"]) for r in rows]
    dev = [round(float(r["seconds"]) - float(r["train_seconds"]), 2) for r in rows]
    last = rows[-1].get("dev", {})
    return {"epochs": len(rows), "train_s": train, "train_s_median": statistics.median(train),
            "dev_eval_s": dev, "dev_eval_s_median": statistics.median(dev),
            "tokens_per_s": [r.get("tokens_per_s") for r in rows], "dev_last": last.get("f1", last.get("accuracy"))}


def conll_to_text(lines: list[str]) -> tuple[str, int, int]:
    """Raw text of CoNLL lines: tokens joined by spaces, a sentence per line, a blank line between documents.

    Returns the text, the token count and the sentence count (``-DOCSTART-`` lines dropped).
    """
    docs: list[list[str]] = [[]]
    sent: list[str] = []
    tokens = 0

    def close() -> None:
        if sent:
            docs[-1].append(" ".join(sent))
            sent.clear()

    for line in lines:
        line = line.strip()
        if line.startswith("-DOCSTART-"):
            close()
            if docs[-1]:
                docs.append([])
        elif not line:
            close()
        else:
            sent.append(line.split()[0])
            tokens += 1
    close()
    docs = [d for d in docs if d]
    return "\n\n".join("\n".join(d) for d in docs) + "\n", tokens, sum(len(d) for d in docs)


def first_sentences(lines: list[str], n: int) -> str:
    """The CoNLL text of the first ``n`` sentences (``-DOCSTART-`` blocks kept, not counted)."""
    out, count, in_sent, docstart = [], 0, False, False
    for line in lines:
        if not line.strip():
            if in_sent and not docstart:
                count += 1
            in_sent = docstart = False
            out.append("\n")
            if count >= n:
                break
            continue
        if not in_sent:
            in_sent, docstart = True, line.startswith("-DOCSTART-")
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out).rstrip("\n") + "\n\n"


def default_shape(hidden: int, batch: int, char_encoder: str, char_filters: int, casing: bool,
                  word_dim: int = 50, casing_dim: int = 10) -> dict:
    """The floor shape of a tagger configuration: input = word + char features + casing."""
    inp = word_dim + (char_filters if char_encoder != "none" else 0) + (casing_dim if casing else 0)
    return {"input": inp, "hidden": hidden, "batch": batch}


def ratio(tagger: float | None, floor: float | None) -> float | None:
    return None if not tagger or not floor else tagger / floor


def _mean(a: float | None, b: float | None) -> float | None:
    vals = [v for v in (a, b) if v is not None]
    return sum(vals) / len(vals) if vals else None


def floor_figures(before: dict, after: dict) -> dict:
    """Epoch seconds and bs-256 Viterbi tok/s: before, after and their mean (the ratio denominator)."""
    ep = (before["epoch_s"], after["epoch_s"])
    vit = (before["viterbi_tok_s"].get("256"), after["viterbi_tok_s"].get("256"))
    return {"epoch_s": [*ep, _mean(*ep)], "viterbi256": [*vit, _mean(*vit)]}


def ratio_rows(cond: dict) -> list[dict]:
    """The floor-vs-tagger rows of one condition (keys ``key what floor tagger ratio detail``)."""
    rows = []
    for shape in ("small", "default"):
        fl = floor_figures(cond["floor_before"][shape], cond["floor_after"][shape])
        tr = cond["train"][shape]
        rows.append({"key": f"train_{shape}", "what": f"training epoch, {shape} shape (s, median)",
                     "floor": fl["epoch_s"], "tagger": tr["train_s_median"],
                     "ratio": ratio(tr["train_s_median"], fl["epoch_s"][2]),
                     "detail": "epochs: " + ", ".join(f"{s:.1f}" for s in tr["train_s"])})
        for fmt, label in (("conll", "CoNLL input"), ("text", "raw text")):
            an = cond["annotate"][f"{fmt}_{shape}"]
            rows.append({"key": f"{fmt}_{shape}", "what": f"annotate eng.testb, {label}, {shape} model (tok/s)",
                         "floor": fl["viterbi256"], "tagger": an["tok_s"],
                         "ratio": ratio(an["tok_s"], fl["viterbi256"][2]),
                         "detail": f"incl. import+load: {an['tok_s_process']:,.0f} tok/s"})
    return rows


def other_rows(cond: dict) -> list[dict]:
    """Figures without a floor: dev evaluation, peak RSS, import -> first prediction."""
    rows = []
    for shape in ("small", "default"):
        tr, fp = cond["train"][shape], cond["first_prediction"][shape]
        rows.append({"key": "dev_eval", "what": f"dev evaluation per epoch, {shape} shape (s, median)",
                     "value": tr["dev_eval_s_median"], "detail": ", ".join(f"{s:.1f}" for s in tr["dev_eval_s"])})
        rows.append({"key": "rss_train", "what": f"training peak RSS, {shape} shape (MB)", "value": tr["rss_mb"],
                     "detail": ""})
        rows.append({"key": "first_prediction", "what": f"import → first prediction, {shape} model (s)",
                     "value": fp["total_s"], "detail": f"whole process: {fp['process_s']:.2f} s"})
        for fmt in ("conll", "text"):
            an = cond["annotate"][f"{fmt}_{shape}"]
            rows.append({"key": "rss_annotate", "what": f"annotate peak RSS, {fmt}, {shape} model (MB)",
                         "value": an["rss_mb"], "detail": f"process wall {an['process_s']:.2f} s"})
    return rows


def condition_warnings(cond: dict, idle: bool) -> list[str]:
    """Signs that a condition's figures are unreliable: floor drift, other processes busy (idle only)."""
    out = []
    for shape in ("small", "default"):
        fl = floor_figures(cond["floor_before"][shape], cond["floor_after"][shape])
        for what, (before, after, mean) in (("epoch", fl["epoch_s"]), ("Viterbi rate", fl["viterbi256"])):
            if before and after and abs(before - after) / mean > 0.25:
                out.append(f"the {shape}-shape floor {what} moved from {_fmt(before)} to {_fmt(after)} during the run")
    if idle:
        steps = {f"floor-{s}-{w}": cond[f"floor_{w}"][s] for s in ("small", "default") for w in ("before", "after")}
        steps |= {f"train-{k}": v for k, v in cond["train"].items()}
        steps |= {f"annotate-{k}": v for k, v in cond["annotate"].items()}
        busy = {k: v["busy_before"] for k, v in steps.items() if v.get("busy_before") is not None}
        worst = max(busy, key=busy.__getitem__, default=None)
        if worst is not None and busy[worst] > 0.3:
            out.append(f"not idle: other processes kept {busy[worst]:.2f} cores busy just before {worst}")
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def verdict(key: str, value: float | None, judged: bool) -> str:
    """The issue's target for ``key`` and, when ``judged``, whether ``value`` meets it."""
    if key not in TARGETS:
        return "–"
    text, test = TARGETS[key]
    if not judged:
        return f"{text} (not judged here)"
    return text if value is None else f"{text} **{'pass' if test(value) else 'FAIL'}**"


def render_condition(name: str, cond: dict, judged: bool) -> list[str]:
    """Markdown tables of one condition."""
    md = [f"## {name}", "", f"Load average before / after: {cond['load_before']} / {cond['load_after']}.", ""]
    warnings = [f"- **Warning: {w}; ratios are doubtful.**" for w in condition_warnings(cond, judged)]
    md += warnings + ([""] if warnings else []) + [
          "| what | floor (before / after → mean) | tagger | ratio | target | detail |",
          "| --- | --- | --- | --- | --- | --- |"]
    for r in ratio_rows(cond):
        f = r["floor"]
        md.append(f"| {r['what']} | {_fmt(f[0])} / {_fmt(f[1])} → {_fmt(f[2])} | {_fmt(r['tagger'])} | "
                  f"**{_fmt(r['ratio'])}×** | {verdict(r['key'], r['ratio'], judged)} | {r['detail']} |")
    if cond.get("baseline"):
        md += ["", "Training epoch (s, median) of the code before the change (`--baseline`) in the same condition:", "",
               "| shape | before | after | speed-up |", "| --- | --- | --- | --- |"]
        for shape in ("small", "default"):
            old, new = cond["baseline"][shape]["train_s_median"], cond["train"][shape]["train_s_median"]
            md.append(f"| {shape} | {_fmt(old)} | {_fmt(new)} | **{_fmt(ratio(old, new))}×** |")
    md += ["", "| what | value | target | detail |", "| --- | --- | --- | --- |"]
    for r in other_rows(cond):
        md.append(f"| {r['what']} | {_fmt(r['value'])} | {verdict(r['key'], r['value'], judged)} | {r['detail']} |")
    return md + [""]


def render_tta(tta: dict, plot: str | None) -> list[str]:
    md = ["## Time to accuracy (defaults)", "",
          f"`--max-minutes {tta['minutes']:g}`: {len(tta['rows'])} improving epochs of {tta['epochs']} run; "
          f"final model test F1 **{_fmt(tta['final_test_f1'])}** "
          f"({verdict('tta', tta['final_test_f1'], tta['minutes'] == 15)}). Minutes = cumulative training + dev "
          "evaluation time at the end of the epoch (what `--max-minutes` counts); process start-up excluded.", "",
          "| epoch | minutes | dev F1 | test F1 |", "| --- | --- | --- | --- |"]
    md += [f"| {r['epoch']} | {r['minutes']:.2f} | {_fmt(r['dev_f1'])} | {_fmt(r['test_f1'])} |" for r in tta["rows"]]
    short = tta.get("short")
    if short:
        md += ["", f"`--max-minutes {short['minutes']:g}`: {short['epochs']} epochs, final test F1 "
               f"**{_fmt(short['test_f1'])}** ({verdict('tta_short', short['test_f1'], short['minutes'] == 4)})."]
    if tta.get("warning"):
        md += ["", f"Warning: {tta['warning']}"]
    return md + (["", f"![test F1 against minutes]({plot})"] if plot else []) + [""]


def render_markdown(res: dict, plot: str | None = None) -> str:
    """The whole report."""
    meta = res["meta"]
    md = ["# Speed: the tagger against the plain-PyTorch floor, one run", "",
          f"Command: `{meta['command']}`", "",
          "Absolute seconds drift from run to run on a shared machine: only the ratios against the floor "
          "measured in the same run and condition mean something. Floor: `../shared/bench/floor.py --orders "
          "sorted`, its length-sorted training epoch (fwd+bwd+SGD) and its bs-256 Viterbi decode rate at the "
          "matching shape, run before and after the tagger; ratio = tagger ÷ mean floor (seconds for epochs, "
          "tokens/s for decoding). Tagger epochs: training only (dev evaluation listed apart), median of "
          f"{meta['epochs']} epochs. Annotation: {meta['testb_tokens']:,} tokens of eng.testb, one fresh process "
          f"each (the median of {ANNOTATE_RUNS}), confidences on; tok/s over annotate's own time (model "
          "loaded), and incl. import + load.", ""]
    if meta.get("train_limit"):
        md += [f"**Smoke test: trained on the first {meta['train_limit']} sentences of eng.train only "
               "(`--train-limit`); training figures are not comparable with the floor.**", ""]
    # The issue's floor is the one of the shared folder that holds the data (``--data``'s parent).
    issue_floor = Path(meta["floor_of_data"]) if meta.get("floor_of_data") else FLOOR
    if meta.get("floor") and Path(meta["floor"]).resolve() != issue_floor.resolve():
        md += [f"**The floor script was replaced by `{meta['floor']}`: the ratios are not the issue's.**", ""]
    md += [f"Shapes: small {meta['shapes']['small']}, defaults' {meta['shapes']['default']}.", ""]
    for name, cond in res["conditions"].items():
        title = ("Idle machine" if name == "idle" else
                 "With a competing 2-thread CPU job (512×512 matmul loop; the floor with --threads 1)")
        md += render_condition(title, cond, judged=name == "idle")
    if res.get("time_to_accuracy"):
        md += render_tta(res["time_to_accuracy"], plot)
    md += ["## Machine", "", "| | |", "| --- | --- |"]
    md += [f"| {k} | {v} |" for k, v in meta["machine"].items()]
    md += ["", "## Commands", "", "```", *res["commands"], "```", ""]
    return "\n".join(md)


# ---------------------------------------------------------------------------- processes


def busy_cores(seconds: float = 1.0) -> float | None:
    """Cores kept busy by other processes over ``seconds`` (from /proc/stat; this process sleeps meanwhile)."""

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]) - idle, sum(v[:8])

    try:
        busy0, total0 = ticks()
        time.sleep(seconds)
        busy1, total1 = ticks()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return round(cores * (busy1 - busy0) / max(1, total1 - total0), 2)


@dataclass
class Proc:
    seconds: float
    rss_mb: float
    stdout: str
    busy_before: float | None  # cores other processes kept busy just before it started


@dataclass
class Bench:
    """The run's settings, work directory and the commands it ran."""

    env: dict
    floor: Path
    work: Path
    data: Path
    epochs: int
    threads: int | None
    baseline: Path | None = None  # a checkout of the code before the change (--baseline)
    floor_threads: int | None = None  # the floor's --threads (1 beside the competing job)
    commands: list[str] = field(default_factory=list)

    def code_env(self, code: Path | None) -> dict:
        """The environment that runs ``code`` (a checkout) instead of this tree's tagger."""
        return self.env if code is None else self.env | {"PYTHONPATH": str(code)}

    def run(self, cmd: list, name: str, poll: Callable[[], None] | None = None, code: Path | None = None) -> Proc:
        """Run ``cmd`` to the end (stdout kept, stderr to WORK/logs/NAME.err); peak RSS from wait4."""
        cmd = [str(c) for c in cmd]
        self.commands.append((f"PYTHONPATH={code} " if code else "") + shlex.join(cmd))
        logs = self.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
        busy = busy_cores()
        t0 = time.perf_counter()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            # cwd is first on sys.path with ``python -m``: run another checkout's code from its own folder
            p = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.code_env(code), cwd=code or ROOT)
            try:
                while True:
                    pid, status, usage = os.wait4(p.pid, os.WNOHANG if poll else 0)
                    if pid:
                        break
                    if poll:
                        poll()
                    time.sleep(0.5)
            except BaseException:  # interrupted (or the poll failed): leave no step running
                p.kill()
                p.wait()
                raise
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            tail = err_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"{name} failed (exit {p.returncode}): {shlex.join(cmd)}\n--- {err_path} (end):\n{tail}")
        return Proc(seconds, usage.ru_maxrss / 1024, out_path.read_text(errors="replace"), busy)

    def tagger(self, *args) -> list:
        return [sys.executable, "-m", "tagger.cli", *args]

    def thread_flags(self) -> list[str]:
        return ["--threads", str(self.threads)] if self.threads else []


def conll(b: Bench, name: str) -> Path:
    return b.data / "conll2003" / name


def prepare(b: Bench, train_limit: int | None) -> Path:
    train = conll(b, "eng.train")
    prep = b.work / ("prep" if not train_limit else f"prep-first{train_limit}")
    if (prep / "prepare.json").exists():
        say(f"prepared data: {prep} (reused)")
        return prep
    if train_limit:
        lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
        train = b.work / f"eng.train.first{train_limit}"
        train.write_text(first_sentences(lines, train_limit), encoding="utf-8")
    b.run(b.tagger("prepare", "--train", train, "--dev", conll(b, "eng.testa"), "--test", conll(b, "eng.testb"),
                   "--embeddings", "glove-6b-50d", "--out", prep, "--force"), "prepare")
    say(f"prepared data: {prep}")
    return prep


def floor(b: Bench, shape: dict, name: str) -> dict:
    threads = ["--threads", str(b.floor_threads)] if b.floor_threads else b.thread_flags()
    cmd = [sys.executable, b.floor, "--orders", "sorted", "--input", shape["input"], "--hidden", shape["hidden"],
           "--batch", shape["batch"], *threads]
    proc = b.run(cmd, name)
    res = summarize_floor(read_json_lines(proc.stdout))
    say(f"{name}: epoch {res['epoch_s']} s, Viterbi bs256 {res['viterbi_tok_s']['256']:,.0f} tok/s")
    return res | {"wall_s": round(proc.seconds, 1), "busy_before": proc.busy_before}


def train(b: Bench, prep: Path, name: str, flags: list[str], code: Path | None = None) -> dict:
    out = b.work / name
    cmd = b.tagger("train", prep, "--out", out, "--force", "--epochs", b.epochs, "--patience", 100, *flags,
                   *b.thread_flags())
    proc = b.run(cmd, name, code=code)
    rows = read_json_lines((out / "metrics.jsonl").read_text())
    res = epoch_stats(rows) | {"rss_mb": round(proc.rss_mb, 1), "wall_s": round(proc.seconds, 1), "model": str(out),
                               "busy_before": proc.busy_before}
    say(f"{name}: median epoch {res['train_s_median']:.1f} s (+ dev {res['dev_eval_s_median']:.1f} s), "
        f"peak RSS {res['rss_mb']:.0f} MB")
    return res


def annotate(b: Bench, model: str, inp: Path, fmts: tuple[str, str], tokens: int, name: str,
             runs: int = ANNOTATE_RUNS) -> dict:
    """``runs`` fresh processes annotating ``inp``; the figures of the median one (by annotate time)."""
    out = b.work / f"{name}.{fmts[1]}"
    cmd = [sys.executable, Path(__file__).resolve(), "--annotate-once", model, inp, out, *fmts, b.threads or 0]
    rows = []
    for k in range(runs):
        proc = b.run(cmd, f"{name}-{k + 1}")
        s = read_json_lines(proc.stdout)[-1]
        rows.append({"tok_s": tokens / s["annotate_s"], "tok_s_process": tokens / proc.seconds,
                     "process_s": proc.seconds, "rss_mb": round(proc.rss_mb, 1), "busy_before": proc.busy_before, **s})
    res = sorted(rows, key=lambda r: r["annotate_s"])[len(rows) // 2]
    res = {**res, "runs_tok_s": [round(r["tok_s"]) for r in rows], "rss_mb": max(r["rss_mb"] for r in rows)}
    say(f"{name}: {res['tok_s']:,.0f} tok/s (median of {runs}; {res['tok_s_process']:,.0f} incl. import+load), "
        f"peak RSS {res['rss_mb']:.0f} MB")
    return res


def annotate_once(model: str, inp: str, out: str, in_fmt: str, out_fmt: str, threads: str) -> int:
    """Helper mode: annotate one file through the library (as the CLI does) and print timings as JSON."""
    t0 = time.perf_counter()
    import tagger
    from tagger.commands.annotate import AnnotateOptions, annotate_paths

    predictor = tagger.load(model)
    t1 = time.perf_counter()
    opts = AnnotateOptions(input_format=in_fmt, output_format=out_fmt, threads=int(threads), progress=False)
    summary = annotate_paths(predictor, [inp], out, opts)
    t2 = time.perf_counter()
    print(json.dumps({"import_load_s": t1 - t0, "annotate_s": summary.seconds, "annotate_wall_s": t2 - t1,
                      "sentences": summary.sentences, "tokens": summary.tokens, "threads": summary.threads,
                      "ok": summary.ok}))
    return summary.exit_code


def first_prediction(b: Bench, model: str, name: str) -> dict:
    code = FIRST_PREDICTION.format(model=json.dumps(model), probe=json.dumps(PROBE))
    proc = b.run([sys.executable, "-c", code], name)
    res = read_json_lines(proc.stdout)[-1] | {"process_s": proc.seconds, "busy_before": proc.busy_before}
    say(f"{name}: import → first prediction {res['total_s']:.2f} s (process {proc.seconds:.2f} s)")
    return res


def condition(b: Bench, prep: Path, shapes: dict, testb: dict, tag: str) -> dict:
    """Steps 2-7 in one condition (``tag`` suffixes the work names)."""
    res: dict = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    res["floor_before"] = {s: floor(b, shapes[s], f"floor-{s}-before{tag}") for s in shapes}
    res["train"] = {"small": train(b, prep, f"small{tag}", SMALL_FLAGS), "default": train(b, prep, f"default{tag}", [])}
    if b.baseline is not None:  # the code before the change, same condition, same run
        res["baseline"] = {"small": train(b, prep, f"baseline-small{tag}", SMALL_FLAGS, b.baseline),
                           "default": train(b, prep, f"baseline-default{tag}", [], b.baseline)}
    res["annotate"], res["first_prediction"] = {}, {}
    for shape in shapes:
        model = res["train"][shape]["model"]
        for fmt, fmts, inp in (("conll", ("conll", "conll"), conll(b, "eng.testb")),
                               ("text", ("text", "jsonl"), testb["path"])):
            res["annotate"][f"{fmt}_{shape}"] = annotate(b, model, inp, fmts, testb["tokens"],
                                                         f"annotate-{fmt}-{shape}{tag}")
        res["first_prediction"][shape] = first_prediction(b, model, f"first-prediction-{shape}{tag}")
    res["floor_after"] = {s: floor(b, shapes[s], f"floor-{s}-after{tag}") for s in shapes}
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return res


def competing(b: Bench, prep: Path, shapes: dict, testb: dict) -> dict:
    """The same steps beside a 2-thread matmul loop (killed afterwards)."""
    b.commands.append(shlex.join([sys.executable, "-c", COMPETING_JOB]) + "   # competing job, killed afterwards")
    hog = subprocess.Popen([sys.executable, "-c", COMPETING_JOB], env=b.env)
    say(f"competing job started (pid {hog.pid})")
    # Two spin-waiting OpenMP teams on 2 cores slow each other down by an order of magnitude (two
    # 2-thread floors side by side each took over 10 minutes instead of 20 s): beside the job, the
    # floor runs with one thread, the choice a plain-PyTorch user would make on a busy machine.
    b.floor_threads = 1
    try:
        time.sleep(3)
        return condition(b, prep, shapes, testb, "-competing")
    finally:
        b.floor_threads = None
        hog.kill()
        hog.wait()
        say("competing job stopped")


# ---------------------------------------------------------------------------- time to accuracy


class Snapshots:
    """A copy of the model directory (less its checkpoint) each time ``model.safetensors`` is replaced."""

    def __init__(self, model: Path, root: Path) -> None:
        self.model, self.root, self.key, self.dirs = model, root, None, []
        shutil.rmtree(root, ignore_errors=True)

    def poll(self) -> None:
        try:
            st = (self.model / "model.safetensors").stat()
        except FileNotFoundError:
            return
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self.key:
            return
        self.key = key
        dest = self.root / f"pending-{len(self.dirs) + 1}"
        dest.mkdir(parents=True)
        for f in self.model.iterdir():
            if f.name == "checkpoint.safetensors" or f.name.startswith(".") or not f.is_file():
                continue
            try:
                shutil.copy2(f, dest / f.name)
            except FileNotFoundError:  # a temporary file renamed away meanwhile
                continue
        self.dirs.append(dest)

    def finish(self, rows: list[dict]) -> tuple[list[tuple[int, Path]], str | None]:
        """Name the snapshots ``epoch-N`` after the improving epochs of ``rows``, in order."""
        best = [int(r["epoch"]) for r in rows if r.get("best")]
        warning = None
        if len(best) != len(self.dirs):
            warning = (f"{len(self.dirs)} weight files seen for {len(best)} improving epochs; "
                       "snapshots matched to epochs in order")
        pairs = []
        for epoch, d in zip(best, self.dirs):
            dest = self.root / f"epoch-{epoch}"
            d.rename(dest)
            pairs.append((epoch, dest))
        return pairs, warning


def cumulative_minutes(rows: list[dict]) -> dict[int, float]:
    """Minutes of training + dev evaluation up to the end of each epoch."""
    total, out = 0.0, {}
    for r in rows:
        total += float(r["seconds"])
        out[int(r["epoch"])] = total / 60
    return out


def pct(v: float | None) -> float | None:
    return None if v is None else round(100 * v if v <= 1 else v, 2)


def test_f1(b: Bench, model: Path, name: str) -> float | None:
    proc = b.run(b.tagger("evaluate", model, "--data", conll(b, "eng.testb"), "--json"), name)
    text = proc.stdout
    metrics, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
    return pct(metrics.get("f1", metrics.get("accuracy")))


def tta_train(b: Bench, prep: Path, minutes: float, name: str, snaps: Snapshots | None) -> list[dict]:
    out = b.work / name
    shutil.rmtree(out, ignore_errors=True)  # no stale weights for the poll to see
    cmd = b.tagger("train", prep, "--out", out, "--force", "--max-minutes", f"{minutes:g}", *b.thread_flags())
    b.run(cmd, name, poll=snaps.poll if snaps else None)
    if snaps:
        snaps.poll()
    return read_json_lines((out / "metrics.jsonl").read_text())


def time_to_accuracy(b: Bench, prep: Path, minutes: float, short: float) -> dict:
    """Default recipe with --max-minutes: test F1 of every new best model against cumulative minutes."""
    say(f"time to accuracy: training the defaults for {minutes:g} minutes")
    snaps = Snapshots(b.work / "tta", b.work / "tta_snap")
    rows = tta_train(b, prep, minutes, "tta", snaps)
    pairs, warning = snaps.finish(rows)
    cum = cumulative_minutes(rows)
    dev = {int(r["epoch"]): pct(r.get("dev", {}).get("f1")) for r in rows}
    table = []
    for epoch, snap in pairs:
        table.append({"epoch": epoch, "minutes": round(cum[epoch], 3), "dev_f1": dev[epoch],
                      "test_f1": test_f1(b, snap, f"evaluate-tta-epoch{epoch}")})
        say(f"time to accuracy: epoch {epoch} at {cum[epoch]:.1f} min: test F1 {table[-1]['test_f1']}")
    res = {"minutes": minutes, "epochs": len(rows), "rows": table, "warning": warning,
           "curve": [{"epoch": e, "minutes": round(m, 3), "dev_f1": dev[e]} for e, m in cum.items()],
           "final_test_f1": test_f1(b, b.work / "tta", "evaluate-tta-final")}
    if short:
        say(f"time to accuracy: training the defaults for {short:g} minutes")
        srows = tta_train(b, prep, short, "tta-short", None)
        res["short"] = {"minutes": short, "epochs": len(srows),
                        "trained_minutes": round(sum(float(r["seconds"]) for r in srows) / 60, 3),
                        "test_f1": test_f1(b, b.work / "tta-short", "evaluate-tta-short")}
        say(f"time to accuracy: --max-minutes {short:g}: test F1 {res['short']['test_f1']}")
    return res


def plot_tta(tta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    curve = tta["curve"]
    ax.plot([c["minutes"] for c in curve], [c["dev_f1"] for c in curve], ".-", color="tab:grey",
            label="dev F1 (every epoch)")
    ax.step([r["minutes"] for r in tta["rows"]], [r["test_f1"] for r in tta["rows"]], "o-", where="post",
            color="tab:blue", label="test F1 (best-dev model so far)")
    if tta.get("short"):
        s = tta["short"]
        ax.plot([s["trained_minutes"]], [s["test_f1"]], "x", color="tab:red", markersize=9,
                label=f"test F1, --max-minutes {s['minutes']:g}")
    ax.axhline(90.5, ls="--", color="tab:green", lw=1, label="target 90.5")
    ax.set_xlabel("minutes (training + dev evaluation)")
    ax.set_ylabel("F1")
    ax.set_title("CoNLL-2003, default recipe: F1 against training time")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                    help="directory holding conll2003/{eng.train,eng.testa,eng.testb}")
    ap.add_argument("--workdir", type=Path, help="work directory (prepared data kept); default: a temporary one")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of each timed training run (median reported)")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS and --threads for every process (default: unset)")
    ap.add_argument("--competing", action="store_true", help="repeat the steps beside a 2-thread CPU job")
    ap.add_argument("--time-to-accuracy", type=float, default=0.0, metavar="MINUTES", help="0 = skip")
    ap.add_argument("--short-budget", type=float, default=4.0, metavar="MINUTES",
                    help="second --max-minutes run with --time-to-accuracy (0 = skip)")
    ap.add_argument("--default-input", type=int, help="floor input size of the defaults' shape")
    ap.add_argument("--default-hidden", type=int, help="floor hidden size of the defaults' shape")
    ap.add_argument("--default-batch", type=int, help="floor batch size of the defaults' shape")
    ap.add_argument("--word-dim", type=int, default=50, help="word vector size (glove-6b-50d)")
    ap.add_argument("--train-limit", type=int, help="smoke tests only: train on the first N sentences")
    ap.add_argument("--floor", type=Path, default=FLOOR, help="the floor script")
    ap.add_argument("--baseline", type=Path, help="a checkout of the code before the change (e.g. a git worktree): "
                    "its `tagger train` is timed too, in each condition")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "speed")
    return ap.parse_args(argv)


def shapes_of(args: argparse.Namespace) -> dict:
    from tagger.commands.train import TrainOptions

    o = TrainOptions()
    default = default_shape(o.hidden, o.batch_size, o.char_encoder, o.char_filters, o.casing, args.word_dim)
    for key in ("input", "hidden", "batch"):
        given = getattr(args, f"default_{key}")
        default[key] = given if given is not None else default[key]
    return {"small": dict(SMALL_SHAPE), "default": default}


def read_only_git() -> str:
    """Commit and whether the tree has changes (read-only git: no index refresh)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        st = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                            text=True)
    except OSError:
        return "unknown"
    changed = len([line for line in st.stdout.splitlines() if line.strip()])
    return head.stdout.strip() + (f" + {changed} changed/untracked files" if changed else " (clean)")


def machine_info(env: dict, load_start: list[float]) -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "nproc": cores, "python": platform.python_version(), "torch": metadata.version("torch"),
            "tagger commit": read_only_git(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "unset"),
            "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "unset"),
            "load average at start": load_start, "load average at end": [round(x, 2) for x in os.getloadavg()]}


def testb_text(b: Bench) -> dict:
    lines = conll(b, "eng.testb").read_text(encoding="utf-8").splitlines()
    text, tokens, sentences = conll_to_text(lines)
    path = b.work / "testb.txt"
    path.write_text(text, encoding="utf-8")
    return {"path": path, "tokens": tokens, "sentences": sentences}


def run_all(args: argparse.Namespace, b: Bench, argv: list[str]) -> dict:
    load_start = [round(x, 2) for x in os.getloadavg()]
    prep = prepare(b, args.train_limit)
    shapes = shapes_of(args)
    testb = testb_text(b)
    conditions = {"idle": condition(b, prep, shapes, testb, "")}
    if args.competing:
        conditions["competing"] = competing(b, prep, shapes, testb)
    tta = None
    if args.time_to_accuracy:
        tta = time_to_accuracy(b, prep, args.time_to_accuracy, args.short_budget)
    command = "python " + shlex.join([os.path.relpath(__file__, ROOT), *argv])
    meta = {"command": command, "floor": str(b.floor), "floor_of_data": str(args.data.parent / "bench" / "floor.py"),
            "epochs": args.epochs, "train_limit": args.train_limit,
            "shapes": shapes, "testb_tokens": testb["tokens"], "testb_sentences": testb["sentences"],
            "workdir": str(b.work),
            "machine": machine_info(b.env, load_start)}
    return {"meta": meta, "conditions": conditions, "time_to_accuracy": tta, "commands": b.commands}


def write_report(res: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    plot = None
    if res.get("time_to_accuracy"):
        png = out.with_name(out.name + "_time_to_accuracy.png")
        plot_tta(res["time_to_accuracy"], png)
        plot = png.name
    for name, cond in res["conditions"].items():
        cond["ratios"], cond["warnings"] = ratio_rows(cond), condition_warnings(cond, name == "idle")
    out.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(render_markdown(res, plot), encoding="utf-8")
    say(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}" + (f" and {plot}" if plot else ""))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--annotate-once"] and len(argv) == 7:
        return annotate_once(*argv[1:])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: running steps and the competing job end
    env = dict(os.environ)  # unchanged, but for --threads and the floor's data directory
    missing = [str(args.data / "conll2003" / n) for n in ("eng.train", "eng.testa", "eng.testb")
               if not (args.data / "conll2003" / n).is_file()]
    if missing or not args.floor.is_file():
        sys.exit(f"speed.py: missing {', '.join(missing + ([] if args.floor.is_file() else [str(args.floor)]))}")
    env["DATA"] = str(args.data.resolve())
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="speed-"))
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(env, args.floor.resolve(), work.resolve(), args.data.resolve(), args.epochs, args.threads,
              args.baseline.resolve() if args.baseline else None)
    try:
        res = run_all(args, b, argv)
    except (BenchError, ValueError, OSError) as exc:
        say(f"FAILED: {exc}\n(work directory kept: {work})")
        return 1
    write_report(res, args.out)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
