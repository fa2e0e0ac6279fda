"""Accuracy after a short time budget: ``reports/budgets.md`` and ``.json``.

``tagger train --max-minutes M`` fits its schedule to the budget (``--budget-decay 0.25``, the
default: over the last quarter of the time the learning rate decays linearly to zero, and the run
ends at the limit, mid-epoch if need be). This script shows the test score after
2, 4, 8 and 15 minutes on CoNLL-2003, on UD English-LinES and on a small corpus (the first
2,000 sentences of CoNLL-2003 train, dev and test unchanged); ``--plain`` runs the same budgets
with ``--budget-decay 0`` (the epoch schedule alone, its last epoch finished) for comparison.

Each corpus is prepared once by its pipeline (``tagger run pipelines/X.toml --until prepare``);
then, per budget, in a fresh process::

    tagger train WORK/corpus/prepare --out WORK/corpus/M-min --max-minutes M --seed 1 \\
        --epochs 10000 --patience 10000       # the time limit alone ends the run
    tagger evaluate WORK/corpus/M-min --data TEST --json

    python benchmarks/budgets.py                                    # every corpus, 2 4 8 15 minutes
    python benchmarks/budgets.py --corpus conll2003 --minutes 4 --plain --threads 1

Training picks its epoch on dev; the test split is scored once, at the end. Results are merged
into an existing ``--out`` JSON (the same corpus, budget and schedule is replaced), under a lock,
so two runs (e.g. one per core, ``--threads 1``) can share a report.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # accuracy.py and speed.py beside this script
from accuracy import commit_text, pct  # noqa: E402
from speed import first_sentences  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SMALL = 2000  # sentences of the small corpus
# The time limit alone ends a run: neither the default cap of 100 epochs (a small corpus reaches it within
# minutes) nor early stopping cuts it short, so every run ends with the budget's decay.
UNTIL_THE_LIMIT = ("--epochs", "10000", "--patience", "10000")


@dataclass(frozen=True)
class Corpus:
    """A corpus of the benchmark: the pipeline that prepares it and the file its test score comes from."""

    title: str
    pipeline: str  # under pipelines/ (or an absolute path)
    test: str  # under the data directory
    metric: str  # "f1" or "accuracy"
    first: int = 0  # > 0: the pipeline reads a data directory whose ``train`` file is cut to its first N sentences
    train: str = ""  # that file, under the data directory
    others: tuple[str, ...] = ()  # the other files the pipeline reads there (linked)


CONLL2003 = "conll2003-ner.toml"
CORPORA: dict[str, Corpus] = {
    "conll2003": Corpus("CoNLL-2003 NER (eng.testb, entity F1)", CONLL2003, "conll2003/eng.testb", "f1"),
    "lines_upos": Corpus("UD English-LinES UPOS (test, accuracy)", "ud-english-lines-upos.toml",
                         "ud-english-lines/en_lines-ud-test.conllu", "accuracy"),
    "conll2003_2k": Corpus(f"CoNLL-2003 NER, first {SMALL:,} train sentences (eng.testb, entity F1)", CONLL2003,
                           "conll2003/eng.testb", "f1", first=SMALL, train="conll2003/eng.train",
                           others=("conll2003/eng.testa", "conll2003/eng.testb")),
}


def cut_data(corpus: Corpus, data: Path, work: Path) -> Path:
    """A data directory for ``corpus``: its train file cut to the first sentences, the other files linked."""
    out = work / "data"
    text = first_sentences((data / corpus.train).read_text(encoding="utf-8").splitlines(), corpus.first)
    got = sum(1 for block in text.split("\n\n") if block.strip() and not block.startswith("-DOCSTART-"))
    if got != corpus.first:
        raise RuntimeError(f"{data / corpus.train} has only {got} sentences, not {corpus.first}")
    (out / corpus.train).parent.mkdir(parents=True, exist_ok=True)
    (out / corpus.train).write_text(text, encoding="utf-8")
    for name in corpus.others:
        link = out / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(data / name)
    return out


def tagger(args: list[str], log_file: Path) -> str:
    """Run ``tagger ARGS`` in a fresh process; its output (raises with the tail on failure)."""
    proc = subprocess.run([sys.executable, "-m", "tagger.cli", *args], cwd=ROOT, text=True, capture_output=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a", encoding="utf-8") as f:
        f.write(f"$ tagger {shlex.join(args)}\n{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-20:])
        raise RuntimeError(f"tagger {shlex.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def prepare(name: str, data: Path, work: Path) -> tuple[Path, str]:
    """Prepare ``name`` by its pipeline's prepare stage; the prepared directory and the command."""
    corpus = CORPORA[name]
    if corpus.first:
        data = cut_data(corpus, data, work / name)
    pipeline = ROOT / "pipelines" / corpus.pipeline
    args = ["run", str(pipeline), "--set", f"DATA={data}", "--workdir", str(work / name), "--until", "prepare"]
    tagger(args, work / name / "log.txt")
    return work / name / "prepare", "tagger " + shlex.join(args)


def run_budget(name: str, prepared: Path, data: Path, work: Path, minutes: float, plain: bool, seed: int,
               threads: int) -> dict:
    """Train ``prepared`` for ``minutes`` and score the test file once; the run's record."""
    corpus = CORPORA[name]
    out = work / name / f"{minutes:g}-min{'-plain' if plain else ''}-seed-{seed}"
    train = ["train", str(prepared), "--out", str(out), "--force", "--max-minutes", f"{minutes:g}", "--seed", str(seed),
             *UNTIL_THE_LIMIT,
             *(["--threads", str(threads)] if threads else []), *(["--budget-decay", "0"] if plain else [])]
    t0 = time.perf_counter()
    tagger(train, work / name / "log.txt")
    wall = time.perf_counter() - t0
    test = json.loads(tagger(["evaluate", str(out), "--data", str(data / corpus.test), "--json"],
                             work / name / "log.txt"))
    summary = json.loads((out / "train_summary.json").read_text())
    return {"corpus": name, "budget": minutes, "schedule": "plain" if plain else "budget", "seed": seed,
            "threads": threads or "auto", "dev": pct(summary["best_dev"]), "test": pct(test[corpus.metric]),
            "epochs": summary["epochs"], "best_epoch": summary["best_epoch"], "minutes": summary["minutes"],
            "wall_minutes": round(wall / 60, 2), "command": "tagger " + shlex.join(train)}


def merge(path: Path, record: dict) -> list[dict]:
    """Add ``record`` to the JSON list at ``path`` (replacing the same corpus/budget/schedule/seed), locked."""
    key = ("corpus", "budget", "schedule", "seed")
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)  # the lock: the report's folder (no lock file left behind)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        runs = json.loads(path.read_text())["runs"] if path.is_file() else []
        runs = [r for r in runs if tuple(r[k] for k in key) != tuple(record[k] for k in key)] + [record]
        runs.sort(key=lambda r: (list(CORPORA).index(r["corpus"]) if r["corpus"] in CORPORA else 99,
                                 r["schedule"] != "budget", r["budget"], r["seed"]))
        path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    finally:
        os.close(folder)  # releases the lock
    return runs


def render(runs: list[dict], meta: dict) -> str:
    """The markdown report: test (dev) per corpus and budget, then every run with its command."""
    budgets = sorted({r["budget"] for r in runs})
    md = ["# Accuracy after a short time budget", "",
          "Written by `benchmarks/budgets.py`. `tagger train --max-minutes M` with the defaults; *budget*: the "
          "learning rate decays linearly to zero over the last quarter of the time (`--budget-decay 0.25`, the "
          "default) and the run ends at the limit; *plain*: the epoch schedule alone, the last epoch finished "
          "after the limit (`--budget-decay 0`). Test score in percent (dev in brackets), scored once after "
          "training; one seed.", "",
          f"Last run: {meta['date']}, commit {meta['commit']}, {meta['machine']}.", "",
          "| corpus | schedule | " + " | ".join(f"{b:g} min" for b in budgets) + " |",
          "| --- | --- | " + " | ".join("---" for _ in budgets) + " |"]
    rows: dict[tuple[str, str], dict[float, dict]] = {}
    for r in runs:
        rows.setdefault((r["corpus"], r["schedule"]), {})[r["budget"]] = r
    for (name, schedule), by_budget in rows.items():
        title = CORPORA[name].title if name in CORPORA else name
        cells = [f"{by_budget[b]['test']:.2f} ({by_budget[b]['dev']:.2f})" if b in by_budget else "–"
                 for b in budgets]
        md.append(f"| {title} | {schedule} | " + " | ".join(cells) + " |")
    prepared = {r["corpus"]: r["prepare"] for r in runs if "prepare" in r}
    if prepared:
        md += ["", "Prepared by each corpus's pipeline (a corpus cut to its first sentences: the pipeline reads a "
               "data directory whose train file is cut, the other files linked):", ""]
        md += [f"- {name}: `{cmd}`" for name, cmd in prepared.items()]
    md += ["", "| corpus | budget | schedule | seed | threads | dev | test | epochs | minutes | command |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        md.append(f"| {r['corpus']} | {r['budget']:g} | {r['schedule']} | {r['seed']} | {r['threads']} | "
                  f"{r['dev']:.2f} | {r['test']:.2f} | {r['epochs']} | {r['minutes']:.2f} | `{r['command']}` |")
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", action="append", choices=list(CORPORA), help="repeatable; default: all")
    ap.add_argument("--minutes", type=float, nargs="+", default=[2, 4, 8, 15])
    ap.add_argument("--plain", action="store_true", help="the epoch schedule alone (--budget-decay 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="tagger train --threads (0: its default)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data directory")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "budgets")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "budgets", help="report path without suffix")
    a = ap.parse_args(argv)
    data, work = a.data.resolve(), a.workdir.resolve()
    names = a.corpus or list(CORPORA)
    missing = [str(data / CORPORA[n].test) for n in names if not (data / CORPORA[n].test).is_file()]
    if missing:
        print(f"budgets.py: missing data files: {', '.join(missing)}", file=sys.stderr)
        return 2
    meta = {"date": time.strftime("%Y-%m-%d"), "commit": commit_text(),
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"}
    for name in names:
        prepared, how = prepare(name, data, work)
        for minutes in a.minutes:
            record = {**run_budget(name, prepared, data, work, minutes, a.plain, a.seed, a.threads), "prepare": how}
            print(f"{name} {minutes:g} min ({record['schedule']}): test {record['test']:.2f} dev {record['dev']:.2f}"
                  f" after {record['epochs']} epochs")
            runs = merge(a.out.with_suffix(".json"), record)
            a.out.with_suffix(".md").write_text(render(runs, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
