"""Benchmark: 10-fold cross-validation accuracy of ``tagger classify`` on sentence polarity.

Pang & Lee sentence polarity v1.0 (rt-polarity.pos / .neg, 5,331 snippets each), GloVe 6B 50d,
the default classifier recipe (BiLSTM + max pooling, fine-tuned embeddings, dropout, early
stopping on an inner 10% dev split of each training fold). Writes ``reports/classifier_cv.md``
and ``reports/classifier_cv.json``.

    nice -n 10 python benchmarks/classifier_cv.py                 # ../shared/data/sentence-polarity
    nice -n 10 python benchmarks/classifier_cv.py --data-dir DIR --folds 10 --seed 1

The same run from the command line:

    tagger classify train --label-file pos=DIR/rt-polarity.pos --label-file neg=DIR/rt-polarity.neg \\
        --embeddings glove-6b-50d --cv 10 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sentence-polarity"

# Published reference figures on MR (sentence polarity v1.0), 10-fold CV accuracy.
REFERENCES = [
    ("NB-SVM bigrams (Wang & Manning 2012)", "79.4"),
    ("CNN-rand / CNN-static word2vec 300d (Kim 2014)", "76.1 / 81.0"),
    ("LSTM / BiLSTM (as reported by later work, e.g. Zhang et al. 2015; Liu et al. 2016)", "~77-80"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "classifier_cv.md")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="override a ClassifierOptions field, e.g. --set hidden=150 (JSON values)")
    args = p.parse_args(argv)

    from tagger.commands.classify import ClassifierOptions, cross_validate
    from tagger.formats.examples import read_data
    from tagger.fsutil import atomic_write_bytes, atomic_write_json

    pos, neg = args.data_dir / "rt-polarity.pos", args.data_dir / "rt-polarity.neg"
    if not pos.is_file() or not neg.is_file():
        print(f"no sentence-polarity data in {args.data_dir} (rt-polarity.pos/.neg)", file=sys.stderr)
        return 2
    opts = ClassifierOptions(embeddings="glove-6b-50d", seed=args.seed, threads=args.threads)
    for item in args.set:
        key, _, value = item.partition("=")
        if not hasattr(opts, key):
            p.error(f"--set {item}: unknown option {key!r}")
        setattr(opts, key, json.loads(value) if value[:1] in "0123456789-[{tf" or value in ("true", "false") else value)
    examples = read_data(label_files=[("pos", str(pos)), ("neg", str(neg))], encoding=args.encoding)
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = cross_validate(examples, args.folds, opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    minutes = (time.perf_counter() - t0) / 60

    import torch

    overrides = "".join(f" --set {s}" for s in args.set) + (f" --threads {args.threads}" if args.threads else "")
    bench_cmd = (f"nice -n 10 python benchmarks/classifier_cv.py --data-dir {os.path.relpath(args.data_dir, ROOT)} "
                 f"--folds {args.folds} --seed {args.seed}{overrides}")
    cli_cmd = (f"tagger classify train --label-file pos={os.path.relpath(pos, ROOT)} "
               f"--label-file neg={os.path.relpath(neg, ROOT)} --embeddings glove-6b-50d --cv {args.folds} "
               f"--seed {args.seed}")
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
           "load_average": [round(load_start, 1), round(os.getloadavg()[0], 1)]}
    report = {**res, "minutes": round(minutes, 2), "command": bench_cmd, "cli_command": cli_cmd,
              "data": str(args.data_dir), "environment": env,
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out.with_suffix(".json"), report)

    o = res["options"]
    lines = [
        "# Sentence polarity: 10-fold cross-validation of `tagger classify`" if args.folds == 10
        else f"# Sentence polarity: {args.folds}-fold cross-validation of `tagger classify`",
        "",
        f"**Accuracy {res['mean_accuracy']:.2%} ± {res['std_accuracy']:.2%}** (mean ± sample std over "
        f"{args.folds} stratified folds, seed {args.seed}; min {res['min_accuracy']:.2%}, "
        f"max {res['max_accuracy']:.2%}).",
        "",
        f"- data: Pang & Lee sentence polarity v1.0, {len(examples):,} snippets (rt-polarity.pos / .neg)",
        f"- model: {'Bi' if o['bidirectional'] else ''}LSTM {o['hidden']} ({o['layers']} layer), "
        f"{o['pooling']} pooling, GloVe 6B 50d {'frozen' if o['freeze_embeddings'] else 'fine-tuned'}, "
        f"embedding dropout {o['embed_dropout']}, dropout {o['dropout']}, sigmoid + binary cross-entropy",
        f"- training: {o['optimizer']} lr {o['lr']}, batch {o['batch_size']}, at most {o['epochs']} epochs, early "
        f"stopping (patience {o['patience']}) on a stratified {o['dev_fraction']:.0%} dev split of each training fold; "
        "vocabulary and embeddings built from the training fold only",
        f"- time: {minutes:.1f} min in all on {env['cpus']} CPUs ({env['torch_threads']} torch threads), "
        f"torch {env['torch']}, {report['date']} (1-minute load average {env['load_average'][0]} at the start, "
        f"{env['load_average'][1]} at the end: the machine was shared with other jobs)",
        "",
        "Command:",
        "",
        "```",
        bench_cmd,
        "```",
        "",
        "The same cross-validation with the CLI:",
        "",
        "```",
        cli_cmd,
        "```",
        "",
        "| fold | train | test | accuracy | best epoch | seconds |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for f in res["folds"]:
        lines.append(f"| {f['fold']} | {f['train']} | {f['test']} | {f['accuracy']:.4f} | {f['best_epoch']} | "
                     f"{f['seconds']:.0f} |")
    lines += ["", "Published figures on the same data (10-fold CV accuracy, %):", "",
              "| model | accuracy |", "|---|---:|"]
    lines += [f"| {name} | {acc} |" for name, acc in REFERENCES]
    lines += [f"| this benchmark | {res['mean_accuracy'] * 100:.1f} |", ""]
    atomic_write_bytes(args.out, ("\n".join(lines)).encode("utf-8"))
    print(f"{args.folds}-fold CV accuracy {res['mean_accuracy']:.4f} ± {res['std_accuracy']:.4f} "
          f"in {minutes:.1f} min → {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
