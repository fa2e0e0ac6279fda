"""Benchmark: perplexity of the ``tagger generate`` LSTM language model vs a Kneser-Ney trigram.

Both models are estimated on the tokens of CoNLL-2003 ``eng.train`` (one sentence per line,
``<eos>`` after each) with the same vocabulary (training words seen at least twice; the rest
is ``<unk>``) and scored on the tokens of ``eng.testa`` (the dev split, never used for
training or model selection: the LSTM keeps the epoch that scores best on the last 5% of the
training sentences, held out from its training). Writes
``reports/generator_ppl.md`` and ``reports/generator_ppl.json``; the model goes to
``runs/bench-generator/model``.

    nice -n 10 python benchmarks/generator_ppl.py [--data-dir ../shared/data/conll2003]

Every step runs the ``tagger`` CLI, so the report lists the exact commands.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "conll2003"
# The recipe (see tagger.commands.generate.GeneratorOptions for the defaults it builds on).
RECIPE = ["--embeddings", "glove-6b-50d", "--dev-fraction", "0.05", "--epochs", "10", "--max-minutes", "10",
          "--seed", "1"]
SEED_TEXT = "The company said"


def _tagger() -> list[str]:
    exe = shutil.which("tagger")
    return [exe] if exe else [sys.executable, "-m", "tagger.cli"]


def _run(args: list[str], shown: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    print("$ " + " ".join(shlex.quote(a) for a in ["tagger", *args]), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([*_tagger(), *args], cwd=ROOT, text=True, capture_output=True)
    seconds = time.perf_counter() - t0
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): tagger {' '.join(args)}")
    shown.append("tagger " + " ".join(shlex.quote(a) for a in args))
    return proc, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench-generator")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "generator_ppl.md")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-train", action="store_true", help="reuse WORKDIR/model")
    ap.add_argument("extra", nargs="*", help="extra 'tagger generate train' flags (after --)")
    args = ap.parse_args(argv)

    train, dev = args.data_dir / "eng.train", args.data_dir / "eng.testa"
    if not train.is_file() or not dev.is_file():
        print(f"no CoNLL-2003 data in {args.data_dir} (eng.train, eng.testa)", file=sys.stderr)
        return 2

    def rel(p: Path) -> str:
        return os.path.relpath(p, ROOT)

    model = args.workdir / "model"
    commands: list[str] = []
    threads = ["--threads", str(args.threads)] if args.threads else []

    load_start = os.getloadavg()[0]
    if args.skip_train:
        commands.append("tagger " + " ".join(shlex.quote(a) for a in [
            "generate", "train", "--text", rel(train), "--out", rel(model), "--force", *RECIPE, *threads,
            *args.extra, "--quiet"]))
    else:
        _run(["generate", "train", "--text", rel(train), "--out", rel(model), "--force",
                                 *RECIPE, *threads, *args.extra, "--quiet"], commands)
    proc, eval_seconds = _run(["generate", "evaluate", rel(model), "--text", rel(dev), "--baseline-train", rel(train),
                               "--json"], commands)
    ev = json.loads(proc.stdout)
    samples = []
    for flags in (["--temperature", "0", "--no-unk"],
                  ["--temperature", "0.8", "--top-p", "0.9", "--seed", "1", "--no-unk"]):
        proc, _ = _run(["generate", "sample", rel(model), "--seed-text", SEED_TEXT, "--words", "30", *flags], commands)
        samples.append((" ".join(flags), proc.stdout.strip()))

    cfg = json.loads((model / "config.json").read_text())
    training = cfg.get("training", {})
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "machine": platform.machine(), "load_average": [round(load_start, 1), round(os.getloadavg()[0], 1)]}
    lstm, tri = ev["perplexity"], ev["trigram_perplexity"]
    report = {
        "lstm_perplexity": lstm, "trigram_perplexity": tri, "relative_reduction": 1 - lstm / tri,
        "tokens": ev["tokens"], "unk_rate": ev["unk_rate"], "vocab_size": ev["vocab_size"],
        "train_minutes": training.get("minutes"),
        "eval_seconds": round(eval_seconds, 1), "model": cfg.get("model"), "training": training,
        "commands": commands, "samples": [{"flags": f, "text": t} for f, t in samples],
        "benchmark_command": "nice -n 10 python benchmarks/generator_ppl.py" + "".join(
            f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])),
        "environment": env, "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from tagger.fsutil import atomic_write_bytes, atomic_write_json

    atomic_write_json(args.out.with_suffix(".json"), report)
    m = cfg["model"]
    opts = training.get("options", {})
    softmax = f"adaptive softmax (cutoffs {m['cutoffs']})" if m.get("cutoffs") else (
        "full softmax tied to the input embeddings" if m.get("tie") else "full softmax")
    lines = [
        "# Language model perplexity: LSTM vs Kneser-Ney trigram (CoNLL-2003 text)",
        "",
        "| model | dev perplexity (eng.testa) |",
        "|---|---:|",
        f"| interpolated Kneser-Ney trigram (`tagger.kneser_ney`) | {tri:.2f} |",
        f"| LSTM language model (`tagger generate`) | **{lstm:.2f}** |",
        "",
        f"The LSTM's perplexity is {1 - lstm / tri:.1%} lower than the trigram's."
        if lstm < tri else f"The LSTM does NOT beat the trigram ({lstm:.2f} vs {tri:.2f}).",
        "",
        f"- data: tokens of CoNLL-2003 eng.train for training (the trigram: all of it; the LSTM: the first 95%, "
        f"{training.get('train_tokens', 0):,} tokens incl. <eos>, the last 5% of the sentences choosing the best "
        f"epoch); eng.testa ({ev['tokens']:,} tokens incl. <eos>, <unk> rate {ev['unk_rate']:.1%}) for evaluation only",
        f"- shared vocabulary: {ev['vocab_size']:,} ids (training words seen at least {opts.get('min_count', 2)} "
        "times, <unk>, <eos>); both models predict every word and every sentence end",
        f"- LSTM: {m['layers']} layer, {m['hidden']} hidden units, {m['embed_dim']}-d input embeddings "
        f"({'GloVe 6B 50d init' if opts.get('embeddings') == 'glove-6b-50d' else 'random init'}), "
        f"dropout {m['dropout']}, {softmax}; truncated BPTT {opts.get('bptt')} over {opts.get('batch_size')} streams, "
        f"{opts.get('optimizer')} lr {opts.get('lr')} (x{opts.get('lr_decay')} after an epoch without held-out "
        f"improvement), best epoch {training.get('best_epoch')} of {len(training.get('history') or [])}; the hidden "
        "state is carried across the whole text when scoring (batch 1)",
        "- trigram: interpolated Kneser-Ney, one absolute discount per order (n1 / (n1 + 2 n2)), unigram level "
        "interpolated with the uniform distribution; sentence context starts at <eos> <eos>",
        f"- time: LSTM training {report['train_minutes']} min, evaluation (both models) {eval_seconds:.0f} s, "
        f"on {env['cpus']} CPUs, torch {env['torch']}, {report['date']} (1-minute load average "
        f"{env['load_average'][0]} at the start, {env['load_average'][1]} at the end: a shared machine)",
        "",
        "Commands:",
        "",
        "```",
        report["benchmark_command"].replace(" --skip-train", ""),
        "",
        *commands,
        "```",
        "",
        *(["(This report was regenerated with --skip-train: evaluation and samples rerun on the model the "
            "training command above wrote.)", ""] if args.skip_train else []),
        "Samples (`tagger generate sample`, seed text \"" + SEED_TEXT + "\"):",
        "",
    ]
    for flags, text in samples:
        lines += [f"- `{flags}`:", "", "  > " + text.replace("\n", "\n  > "), ""]
    history = training.get("history") or []
    if history:
        lines += ["Training log (held-out = the last 5% of eng.train's sentences):", "",
                  "| epoch | train perplexity | held-out perplexity | lr | seconds |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {h['epoch']}{' (partial: time limit)' if h.get('partial') else ''} | {h['train_ppl']:.1f} | "
                  f"{h.get('dev_ppl', float('nan')):.1f} | {h['lr']:g} | {h['seconds']:.0f} |" for h in history]
        lines.append("")
    atomic_write_bytes(args.out, "\n".join(lines).encode("utf-8"))
    print(f"LSTM perplexity {lstm:.2f} vs trigram {tri:.2f} → {args.out}")
    return 0 if lstm < tri else 1


if __name__ == "__main__":
    sys.exit(main())
