"""Accuracy of every shipped task, mean of seeds 1, 2, 3: ``reports/accuracy.md`` and ``.json``.

Each task is its pipeline under ``pipelines/`` (the recipe lives there, not here), run once per
seed as a user would run it::

    tagger run pipelines/conll2003-ner.toml --set DATA=../shared/data --set SEED=2 \\
        --workdir WORK/conll2003/seed-2 --until evaluate

Training selects its epoch on the dev split alone; the test split is scored once, by the
pipeline's ``evaluate`` stage, after training has finished (sentence polarity: the 10-fold
cross-validation accuracy of ``classify train --cv 10``, each fold's epoch chosen on an inner
dev split of its training part). The seed is the training seed: ``prepare`` (with its dev split
of CoNLL-2000 train) is the same for every seed.

    python benchmarks/accuracy.py                                  # every task (and variant), seeds 1 2 3
    python benchmarks/accuracy.py --task conll2000_chunk --seeds 1 2 3 --data ../shared/data

Results are merged into an existing ``--out`` JSON (a task's runs of the same seed are
replaced), so tasks can be run in separate sittings; the markdown is rewritten from the JSON.
JSON: ``{"conll2003": {"runs": [{"seed": 1, "dev": 94.2, "test": 90.8, "minutes": 28.5,
"epochs": 40, "command": "..."}, ...], "mean": ..., "std": ..., ...}, ...}``, scores in percent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class TaskSpec:
    """One shipped task: its pipeline, how its result is read, and what it is measured against."""

    title: str
    pipeline: Path
    kind: str  # "tagger" (train_summary.json + evaluate/metrics.json) or "cv" (classify train --cv)
    metric: str  # the headline: "f1" or "accuracy"
    target: float  # the target for the mean of the seeds (percent)
    until: str  # the last pipeline stage the benchmark needs
    files: tuple[str, ...]  # under --data: what the task reads
    published: tuple[tuple[str, str], ...] = ()
    per_type: bool = False  # entity tasks: per-type test F1 as well
    per_type_floor: tuple[tuple[str, float], ...] = ()  # no type's mean F1 may fall below these
    notes: tuple[str, ...] = field(default_factory=tuple)
    sets: tuple[tuple[str, str], ...] = ()  # pipeline variables besides DATA and SEED (a variant of the recipe)


# CoNLL-2003 per-type test F1 of the defaults when the issue was filed: no type's mean may fall below it.
CONLL2003_FLOOR = (("LOC", 92.5), ("MISC", 80.4), ("ORG", 88.6), ("PER", 95.9))
CONLL2003 = TaskSpec(
    "CoNLL-2003 English NER (eng.testb, entity F1, seqeval strict)", ROOT / "pipelines" / "conll2003-ner.toml",
    "tagger", "f1", 91.8, "evaluate", ("conll2003/eng.train", "conll2003/eng.testa", "conll2003/eng.testb"),
    (("Lample et al. 2016", "90.94"), ("Ma & Hovy 2016 (GloVe 100d)", "91.21"), ("NCRF++ (mean)", "~91.1"),
     ("Ghaddar & Langlais 2018", "91.73"), ("GCDT, Liu et al. 2019", "91.96")),
    per_type=True, per_type_floor=CONLL2003_FLOOR)
CONLL2000_CHUNK = TaskSpec(
    "CoNLL-2000 chunking (test, chunk F1; words + the POS column)", ROOT / "pipelines" / "conll2000-chunk.toml",
    "tagger", "f1", 95.0, "evaluate", ("conll2000/train.txt", "conll2000/test.txt"),
    (("Huang et al. 2015", "94.46"), ("GCDT, Liu et al. 2019", "95.43")),
    notes=("dev: a seeded 10% split of train.txt (prepare --dev-fraction 0.1 --seed 1). The POS column "
           "is the Brill tagger's, in train and test alike.",))

# A variant is its task's pipeline with variables set (``sets``): the same files, target and floor.
TASKS: dict[str, TaskSpec] = {
    "conll2003": CONLL2003,
    "conll2003_features": replace(
        CONLL2003, title="CoNLL-2003 English NER (eng.testb, entity F1; words + the POS and chunk columns)",
        published=(), sets=(("FEATURES", "1,2"),),
        notes=("The same pipeline with the POS and chunk columns of the CoNLL-2003 files as features "
               "(--set FEATURES=1,2: prepare --feature-columns 1,2).",)),
    "lines_upos": TaskSpec(
        "UD English-LinES UPOS (test, accuracy)", ROOT / "pipelines" / "ud-english-lines-upos.toml",
        "tagger", "accuracy", 97.0, "evaluate",
        tuple(f"ud-english-lines/en_lines-ud-{s}.conllu" for s in ("train", "dev", "test")),
        (("Stanford, CoNLL 2017 shared task", "96.64"), ("UDPipe 2 with BERT", "97.67"))),
    "conll2000_chunk": CONLL2000_CHUNK,
    "conll2000_chunk_words": replace(
        CONLL2000_CHUNK, title="CoNLL-2000 chunking (test, chunk F1; words only)", sets=(("FEATURES", ""),),
        notes=("The same pipeline without the POS column (--set FEATURES=).",)),
    "polarity": TaskSpec(
        "Sentence polarity (10-fold CV accuracy, LSTM classifier)", ROOT / "pipelines" / "polarity-classifier.toml",
        "cv", "accuracy", 81.0, "train",
        ("sentence-polarity/rt-polarity.pos", "sentence-polarity/rt-polarity.neg"),
        (("NB-SVM bigrams, Wang & Manning 2012", "79.4"), ("CNN, Kim 2014", "81.5")),
        notes=("dev: the mean over folds of each fold's inner dev accuracy (the split that picks its epoch); "
               "test: the mean of the 10 held-out folds.",)),
}


def pct(x: float) -> float:
    return round(100.0 * float(x), 2)


def pipeline_command(spec: TaskSpec, seed: int, data: Path, workdir: Path,
                     extra: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """The ``tagger run`` command line of one seed of ``spec`` (``extra``: more variables, e.g. THREADS)."""
    sets = [arg for name, value in (*spec.sets, *extra) for arg in ("--set", f"{name}={value}")]
    return ["tagger", "run", str(spec.pipeline), "--set", f"DATA={data}", "--set", f"SEED={seed}", *sets,
            "--workdir", str(workdir), "--until", spec.until]


def run_seed(spec: TaskSpec, seed: int, data: Path, workdir: Path, log=print,
             extra: tuple[tuple[str, str], ...] = ()) -> dict:
    """Run one seed of ``spec`` in a fresh process and read its record (raises on failure)."""
    cmd = pipeline_command(spec, seed, data, workdir, extra)
    log("$ " + shlex.join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tagger.cli", *cmd[1:]], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    (workdir / "log.txt").parent.mkdir(parents=True, exist_ok=True)
    (workdir / "log.txt").write_text(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-20:])
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    record = read_run(spec, workdir)
    return {"seed": seed, **record, "wall_minutes": round(wall / 60, 2), "command": shlex.join(cmd)}


def read_run(spec: TaskSpec, workdir: Path) -> dict:
    """dev/test scores (percent), minutes and epochs of a finished run in ``workdir``."""
    if spec.kind == "cv":
        cv = json.loads((workdir / "train" / "cv.json").read_text())
        folds = cv["folds"]
        if any(f.get("dev_accuracy") is None for f in folds):
            raise RuntimeError(f"{workdir}: a fold has no inner dev score (classify train --dev-fraction 0?)")
        return {"dev": pct(statistics.fmean(f["dev_accuracy"] for f in folds)), "test": pct(cv["mean_accuracy"]),
                "minutes": cv["minutes"], "epochs": round(statistics.fmean(f["epochs"] for f in folds), 1),
                "folds": [pct(f["accuracy"]) for f in folds]}
    summary = json.loads((workdir / "train" / "train_summary.json").read_text())
    test = json.loads((workdir / "evaluate" / "metrics.json").read_text())
    if summary.get("best_dev") is None:
        raise RuntimeError(f"{workdir}: the run has no dev score (no dev split?)")
    record = {"dev": pct(summary["best_dev"]), "test": pct(test[spec.metric]), "minutes": summary["minutes"],
              "epochs": summary["epochs"], "best_epoch": summary["best_epoch"]}
    if spec.per_type:
        record["per_type"] = {t: pct(v["f1"]) for t, v in sorted(test["per_type"].items())}
    return record


def summarize(spec: TaskSpec, runs: list[dict]) -> dict:
    """A task's entry: its runs (by seed), mean and sample std of the test score, and the target."""
    runs = sorted(runs, key=lambda r: r["seed"])
    tests = [r["test"] for r in runs]
    entry: dict = {"title": spec.title, "metric": spec.metric, "target": spec.target, "runs": runs,
                   "mean": round(statistics.fmean(tests), 2),
                   "std": round(statistics.stdev(tests), 2) if len(tests) > 1 else 0.0,
                   "dev_mean": round(statistics.fmean(r["dev"] for r in runs), 2)}
    entry["meets_target"] = entry["mean"] >= spec.target
    if spec.per_type:
        types = sorted({t for r in runs for t in r.get("per_type", {})})
        entry["per_type_mean"] = {t: round(statistics.fmean(r["per_type"][t] for r in runs if t in r["per_type"]), 2)
                                  for t in types}
        below = [t for t, floor in spec.per_type_floor if entry["per_type_mean"].get(t, 0.0) < floor]
        entry["per_type_below_floor"] = below
        entry["meets_target"] = entry["meets_target"] and not below
    return entry


def merge(results: dict, name: str, spec: TaskSpec, new_runs: list[dict]) -> dict:
    """``results`` with ``new_runs`` of task ``name`` in place of its earlier runs of the same seeds."""
    seeds = {r["seed"] for r in new_runs}
    old = [r for r in results.get(name, {}).get("runs", []) if r["seed"] not in seeds]
    return {**results, name: summarize(spec, old + new_runs)}


def render(results: dict, meta: dict) -> str:
    """The markdown report of ``results`` (every task in it, in the order of :data:`TASKS`)."""
    md = ["# Accuracy: mean of seeds, every shipped task", "",
          "Written by `benchmarks/accuracy.py` from the runs below (each the task's pipeline, one seed: the "
          "command is beside it). Scores in percent; training picks its epoch on dev, the test split is scored "
          "once at the end. GloVe 6B 50d, this 2-core CPU machine.", "",
          f"Last run: {meta['date']}, commit {meta['commit']}, {meta['machine']}.", "",
          "| task | test mean ± std | target | dev mean | seeds | minutes per run |",
          "| --- | --- | --- | --- | --- | --- |"]
    names = [n for n in TASKS if n in results] + [n for n in results if n not in TASKS]
    for n in names:
        e = results[n]
        minutes = "/".join(f"{r['minutes']:.1f}" for r in e["runs"])
        verdict = "met" if e["meets_target"] else "not met"
        md.append(f"| {e['title']} | **{e['mean']:.2f}** ± {e['std']:.2f} | ≥ {e['target']:.1f} ({verdict}) | "
                  f"{e['dev_mean']:.2f} | {', '.join(str(r['seed']) for r in e['runs'])} | {minutes} |")
    missing = [n for n in TASKS if n not in results]
    if missing:
        md += ["", "Not run yet: " + "; ".join(f"{TASKS[n].title} (`python benchmarks/accuracy.py --task {n}`)"
                                             for n in missing) + "."]
    for n in names:
        e, spec = results[n], TASKS.get(n)
        md += ["", f"## {e['title']}", "", "| seed | dev | test | epochs | minutes | command |",
               "| --- | --- | --- | --- | --- | --- |"]
        for r in e["runs"]:
            md.append(f"| {r['seed']} | {r['dev']:.2f} | {r['test']:.2f} | {r['epochs']} | {r['minutes']:.1f} | "
                      f"`{r['command']}` |")
        if "per_type_mean" in e:
            md += ["", "Per-type test F1, mean of the seeds: " +
                   ", ".join(f"{t} {v:.2f}" for t, v in e["per_type_mean"].items()) + "."]
            if spec is not None and spec.per_type_floor:
                below = e.get("per_type_below_floor", [])
                md += ["", "Floor per type (none may be lower): " +
                       ", ".join(f"{t} {v:.1f}" for t, v in spec.per_type_floor) +
                       (f" — below it: {', '.join(below)}." if below else " — all met.")]
        if spec is not None:
            if spec.published:
                md += ["", "Published: " + "; ".join(f"{who} {v}" for who, v in spec.published) + "."]
            md += ["", *spec.notes] if spec.notes else []
    return "\n".join(md) + "\n"


def commit_text() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else "?"
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", action="append", choices=list(TASKS), help="task to run (repeatable; default: all)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data directory")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "accuracy", help="pipeline outputs")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "accuracy", help="report path without suffix")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                    help="another pipeline variable, e.g. THREADS=1 to run two tasks side by side (repeatable)")
    a = ap.parse_args(argv)
    bad = [s for s in a.sets if "=" not in s]
    if bad:
        ap.error(f"--set takes NAME=VALUE, got {bad[0]!r}")
    extra = tuple((name, value) for name, _, value in (s.partition("=") for s in a.sets))
    names = a.task or list(TASKS)
    data = a.data.resolve()
    missing = [f"{data / f}" for n in names for f in TASKS[n].files if not (data / f).is_file()]
    if missing:
        print(f"accuracy.py: missing data files: {', '.join(missing)}", file=sys.stderr)
        return 2
    out_json = a.out.with_suffix(".json")
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    for n in names:
        spec = TASKS[n]
        runs = [run_seed(spec, s, data, (a.workdir / n / f"seed-{s}").resolve(), extra=extra) for s in a.seeds]
        results = merge(results, n, spec, runs)
        print(f"{n}: test {results[n]['mean']:.2f} ± {results[n]['std']:.2f} over seeds "
              f"{[r['seed'] for r in results[n]['runs']]} (target {spec.target})")
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(results, indent=2) + "\n")  # after every task: a long run keeps its part
        meta = {"date": time.strftime("%Y-%m-%d"), "commit": commit_text(),
                "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"}
        a.out.with_suffix(".md").write_text(render(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
