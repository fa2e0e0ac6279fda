"""Throughput of ``tagger annotate`` (tokens/s) on the CoNLL-2003 test set.

Usage::

    python benchmarks/annotate_throughput.py MODEL_DIR [--data ../shared/data/conll2003/eng.testb]
        [--batch-sizes 32 256] [--workers 1 2] [--threads 0] [--out reports/annotate_throughput]

The sentences of ``eng.testb`` are written to a temporary directory twice: as raw text (the
tokens of a sentence joined by spaces, one sentence per line, ``.txt``: this exercises the
sentence splitter and tokenizer) and as pre-tokenised lines (``.tok``). Each configuration
loads the model afresh and annotates the file to JSONL through the library
(:func:`tagger.commands.annotate.annotate_paths`, the code behind the CLI); the time is the summary's
``seconds`` (reading, tokenising, predicting and writing; not the model load or imports).
Results go to ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    """CPU seconds used by this process and its finished children (the workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model directory")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "conll2003" / "eng.testb"))
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[0],
                    help="torch threads per process (0 = cores / workers, the CLI default)")
    ap.add_argument("--formats", nargs="+", default=["text", "tokens"], choices=["text", "tokens"])
    ap.add_argument("--out", default=str(ROOT / "reports" / "annotate_throughput"))
    args = ap.parse_args(argv)

    import torch

    import tagger
    from tagger.commands.annotate import AnnotateOptions, annotate_paths
    from tagger.formats.conll import iter_conll
    from tagger.threads import available_cores

    sents = [s.tokens for s in iter_conll(args.data, label_column=None)]
    lines = "".join(" ".join(s) + "\n" for s in sents)
    results = []
    with tempfile.TemporaryDirectory(prefix="annotate-bench-") as tmp:
        paths = {"text": Path(tmp) / "eng.testb.txt", "tokens": Path(tmp) / "eng.testb.tok"}
        for p in paths.values():
            p.write_text(lines, encoding="utf-8")
        configs = [(fmt, workers, threads, bs) for fmt in args.formats for workers in args.workers
                   for threads in args.threads for bs in args.batch_sizes]
        for fmt, workers, threads, bs in configs:
            predictor = tagger.load(args.model)
            opts = AnnotateOptions(input_format=fmt, output_format="jsonl", batch_size=bs,
                                   workers=workers, threads=threads, progress=False)
            load = os.getloadavg()[0]
            cpu0 = _cpu()
            summary = annotate_paths(predictor, [paths[fmt]], Path(tmp) / f"out-{fmt}.jsonl", opts)
            cpu = _cpu() - cpu0
            row = {
                "input": fmt, "batch_size": bs, "workers": workers, "threads": summary.threads,
                "predictor": "Predictor.predict",
                "sentences": summary.sentences, "tokens": summary.tokens,
                "seconds": round(summary.seconds, 3),
                "tokens_per_s": round(summary.tokens / summary.seconds),
                "sentences_per_s": round(summary.sentences / summary.seconds),
                "cpu_seconds": round(cpu, 3), "tokens_per_cpu_s": round(summary.tokens / cpu),
                "load_avg_before": round(load, 2), "ok": summary.ok,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
            del predictor

    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    meta = {
        "command": command,
        "model": str(args.model),
        "data": str(args.data),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cores": available_cores(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n",
                                        encoding="utf-8")
    md = [
        "# `tagger annotate` throughput",
        "",
        f"Command: `{command}`",
        "",
        f"Model `{meta['model']}`, data `{meta['data']}` ({len(sents)} sentences), {meta['cores']} cores, "
        f"torch {meta['torch']}, {meta['date']}. Load average after the run: {meta['load_avg_after']} "
        "(other jobs on the machine slow every number down).",
        "",
        "`text`: raw text (tokens joined by spaces, one sentence per line; split again by the sentence "
        "splitter, so sentence counts differ); `tokens`: one pre-tokenised sentence per line. Output: JSONL. "
        "Time = reading + tokenising + predicting + writing (model load excluded).",
        "",
        "`tokens/CPU-s` divides by the CPU time of this process and its workers: on a busy machine it shows what "
        "the code costs, independent of how much CPU the other jobs left it.",
        "",
        "| input | predictor | batch size | workers | threads/worker | sentences | tokens | seconds | tokens/s "
        "| sentences/s | CPU s | tokens/CPU-s | load before |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        md.append(f"| {r['input']} | {r['predictor']} | {r['batch_size']} | {r['workers']} | {r['threads']} | "
                  f"{r['sentences']:,} | {r['tokens']:,} | {r['seconds']:.2f} | {r['tokens_per_s']:,} | "
                  f"{r['sentences_per_s']:,} | {r['cpu_seconds']:.2f} | {r['tokens_per_cpu_s']:,} | "
                  f"{r['load_avg_before']} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
