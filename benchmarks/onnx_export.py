"""ONNX export of a trained tagger: same tags as torch? how fast? how small can the directory be?

Usage::

    python benchmarks/onnx_export.py MODEL_DIR [--data ../shared/data/conll2003/eng.testb]
        [--repeats 3] [--threads 1] [--workdir DIR] [--out reports/onnx]

MODEL_DIR is a trained tagger (nothing is trained here). Steps, each a ``tagger`` command whose
command line goes into the report:

1. ``tagger export MODEL --format onnx|torch [--float16] [--max-extra-words N]`` for the full model
   and the shrunk forms (float16 extra rows; the 50k / 100k most frequent pretrained-only words;
   both). Sizes are those of the files each directory holds (the source model counted without its
   training checkpoint, ``checkpoint.safetensors``, which prediction never reads).
2. Tags: ``tagger annotate`` of the gold file with the torch model and with its ONNX export, CoNLL
   output; the predicted-tag columns are compared token by token (same sentences, same order).
3. Speed: ``tagger annotate`` of the file, torch and onnx alternately, ``--repeats`` times each with
   the same ``--threads``; tokens/s is annotate's own summary figure (prediction, reading and
   writing; not the process start or model load); the median is reported.
4. F1: ``tagger evaluate --json`` of every form (the torch forms with the torch runtime, the ONNX
   forms with ``--runtime onnx``) on the gold file.

Results go to ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"(\d[\d,]*) tokens in ([\d.]+)s \(([\d,]+) tokens/s\)")

FORMS = [  # (name, export flags)
    ("full", []),
    ("float16", ["--float16"]),
    ("top100k", ["--max-extra-words", "100000"]),
    ("top50k", ["--max-extra-words", "50000"]),
    ("float16+top100k", ["--float16", "--max-extra-words", "100000"]),
    ("float16+top50k", ["--float16", "--max-extra-words", "50000"]),
]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH", "")]))
    return e


def tagger(*args, log: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tagger.cli", *map(str, args)]
    log.append("tagger " + shlex.join(map(str, args)))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}\n{r.stderr}")
    return r


def dir_bytes(path: Path, skip: tuple[str, ...] = ()) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file() and p.name not in skip)


def conll_tags(path: Path) -> list[list[str]]:
    """The last column of each sentence (a prediction file's tags)."""
    from tagger.formats.conll import iter_conll

    return [s.labels or [] for s in iter_conll(path, label_column=-1)]


def conll_tokens(path: Path) -> list[list[str]]:
    from tagger.formats.conll import iter_conll

    return [s.tokens for s in iter_conll(path, label_column=None)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "conll2003" / "eng.testb"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", default="/tmp/onnx_bench")
    ap.add_argument("--out", default=str(ROOT / "reports" / "onnx"))
    args = ap.parse_args()
    model, data, work = Path(args.model).resolve(), Path(args.data).resolve(), Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cmds: dict[str, list[str]] = {}
    res: dict = {"model": str(model), "data": str(data), "threads": args.threads, "repeats": args.repeats,
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "load_before": os.getloadavg()[0]}}
    try:
        import onnxruntime
        import torch

        res["machine"].update(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
    except ImportError:
        pass

    # 1. exports and sizes
    forms: dict[str, dict] = {"source": {"dir": str(model), "bytes": dir_bytes(model, ("checkpoint.safetensors",
                                                                                        "metrics.jsonl"))}}
    for name, flags in FORMS:
        for fmt in ("onnx", "torch"):
            if fmt == "torch" and name == "full":
                continue  # the source model itself
            out = work / f"{fmt}-{name}"
            log = cmds.setdefault(f"export {fmt} {name}", [])
            tagger("export", model, "--out", out, "--format", fmt, *flags, "-q", log=log)
            forms[f"{fmt} {name}"] = {"dir": str(out), "bytes": dir_bytes(out)}
    res["forms"] = forms

    # 2. tags: torch vs onnx annotate output
    onnx_full = work / "onnx-full"
    a, b = work / "torch.conll", work / "onnx.conll"
    tagger("annotate", model, data, "--out", a, "--input-format", "conll", "--threads", args.threads, "-q",
           log=cmds.setdefault("tags", []))
    tagger("annotate", onnx_full, data, "--out", b, "--input-format", "conll", "--threads", args.threads, "-q",
           "--runtime", "onnx", log=cmds["tags"])
    ta, tb = conll_tags(a), conll_tags(b)
    assert [len(s) for s in ta] == [len(s) for s in tb]
    diff_tokens = sum(x != y for sa, sb in zip(ta, tb) for x, y in zip(sa, sb))
    res["tags"] = {"sentences": len(ta), "tokens": sum(map(len, ta)), "differing_tokens": diff_tokens,
                   "differing_sentences": sum(sa != sb for sa, sb in zip(ta, tb)),
                   "identical_files": a.read_bytes() == b.read_bytes()}

    # 3. speed, alternating
    speed: dict[str, list[float]] = {"torch": [], "onnx": []}
    for _ in range(args.repeats):
        for rt, src in (("torch", model), ("onnx", onnx_full)):
            r = tagger("annotate", src, data, "--out", work / f"speed-{rt}.conll", "--input-format", "conll",
                       "--threads", args.threads, "--runtime", rt, log=cmds.setdefault(f"speed {rt}", []))
            m = SUMMARY.search(r.stderr)
            assert m, r.stderr
            speed[rt].append(float(m.group(3).replace(",", "")))
    res["speed"] = {rt: {"runs": v, "median_tokens_per_s": statistics.median(v)} for rt, v in speed.items()}

    # tokens of the data that read a pretrained-only row, and how many of them each top-N drops
    from tagger.vocab import Vocab, WordLookup

    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    words_file = model / "extra_words.json"
    extra = json.loads(words_file.read_text(encoding="utf-8")) if words_file.exists() else []
    v = cfg["vocab"]
    lookup = WordLookup(Vocab.from_json({"itos": v["words"], "specials": True}), extra,
                        lowercase=bool(v.get("lowercase")), digits=bool(v.get("digits", True)))
    ids = [lookup(w) - lookup.num_trained for sent in conll_tokens(data) for w in sent]
    rows = [i for i in ids if i >= 0]
    res["extra_usage"] = {"tokens": len(ids), "extra_tokens": len(rows), "extra_words": len(extra),
                          "beyond_100k": sum(i >= 100_000 for i in rows), "beyond_50k": sum(i >= 50_000 for i in rows)}

    # 4. F1 of every form
    f1: dict[str, float] = {}
    for key, form in forms.items():
        rt = "onnx" if key.startswith("onnx") else "torch"
        r = tagger("evaluate", form["dir"], "--data", data, "--json", "-q", "--threads", args.threads,
                   "--runtime", rt, log=cmds.setdefault(f"f1 {key}", []))
        f1[key] = json.loads(r.stdout)["f1"]
        form["f1"] = f1[key]
    res["load_after"] = os.getloadavg()[0]
    res["model_summary"] = model_summary(model)
    res["commands"] = cmds
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    Path(args.out + ".md").write_text(report(res, args), encoding="utf-8")
    print(Path(args.out + ".md").read_text())


def model_summary(model: Path) -> dict:
    """How the model was trained: its train_summary.json and the training options of its config.json."""
    summary = json.loads((Path(model) / "train_summary.json").read_text(encoding="utf-8"))
    cfg = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
    return {**{k: summary.get(k) for k in ("epochs", "minutes", "best_epoch", "best_dev")},
            "options": (cfg.get("training") or {}).get("options", {})}


def _model_lines(m: dict | None) -> list[str]:
    if not m:
        return []
    o = m["options"]
    return [f"The model: the default recipe (`tagger train` with char CNN {o.get('char_encoder')}, hidden "
            f"{o.get('hidden')}, batch {o.get('batch_size')}, EMA {o.get('ema')}, `--max-minutes "
            f"{o.get('max_minutes'):g}`) on CoNLL-2003 prepared with GloVe 6B 50d: {m['epochs']} epochs in "
            f"{m['minutes']:.1f} min, best dev F1 {100 * m['best_dev']:.2f} (epoch {m['best_epoch']}).", ""]


def report(res: dict, args) -> str:
    t, s, forms = res["tags"], res["speed"], res["forms"]
    src = forms["source"]
    lines = [
        "# ONNX export: tags, speed, size",
        "",
        f"Model `{res['model']}`, data `{res['data']}` ({t['sentences']:,} sentences, {t['tokens']:,} tokens). "
        f"Produced by `python benchmarks/onnx_export.py {res['model']} --data {res['data']} --repeats "
        f"{res['repeats']} --threads {res['threads']}` on {time.strftime('%Y-%m-%d', time.gmtime())}; "
        f"machine: {res['machine']}. Load average (1 min) before / after: {res['machine']['load_before']:.2f} / "
        f"{res['load_after']:.2f}.",
        "",
        *_model_lines(res.get("model_summary")),
        "## Same tags as the torch path?",
        "",
        f"`tagger annotate` with the torch model and with its ONNX export (`--runtime onnx`), CoNLL output: "
        f"**{t['differing_tokens']} differing tokens in {t['differing_sentences']} sentences** of "
        f"{t['tokens']:,} tokens; output files byte-identical: {t['identical_files']}.",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in res["commands"]["tags"]),
        "",
        "Why they can differ at all: onnxruntime's LSTM and matrix kernels round differently from torch's "
        "(oneDNN), so emissions differ by ~1e-7 to 1e-6 (the tests bound them by 1e-5 on random models of every "
        "variant); Viterbi runs in float32 on both paths with the same operation order and the same tie rule "
        "(lowest tag index), so only a near-tie between two paths' scores closer than that difference could "
        "flip a tag. Confidences (CRF marginals and entity probabilities, float64) differ by the same ~1e-6.",
        "",
        "## Speed",
        "",
        f"`tagger annotate` of the file, runtimes alternating, {res['repeats']} runs each, "
        f"`--threads {res['threads']}` for both (tokens/s from annotate's summary: reading, prediction, writing).",
        "",
        "| runtime | median tokens/s | runs |",
        "|---|---:|---|",
    ]
    for rt, v in s.items():
        lines.append(f"| {rt} | {v['median_tokens_per_s']:,.0f} | {', '.join(f'{x:,.0f}' for x in v['runs'])} |")
    lines += ["", "Commands: " + "; ".join(f"`{res['commands'][f'speed {rt}'][0]}`" for rt in s), "",
              "## Size and CoNLL-2003 test F1 of each form", "",
              "Extra words = the pretrained-only words (GloVe rows never seen in training), kept in the pretrained "
              "file's frequency order; top-N keeps the N most frequent. F1: `tagger evaluate` (strict, the "
              "model's scheme).", ""]
    u = res["extra_usage"]
    share = u["extra_tokens"] / u["tokens"]
    lines += [f"Of the data's {u['tokens']:,} tokens, {u['extra_tokens']:,} ({share:.1%}) read a pretrained-only row"
              f" in the full model ({u['extra_words']:,} such words); {u['beyond_100k']:,} of them "
              f"read one past the 100k most frequent and {u['beyond_50k']:,} past the 50k most frequent (these become "
              "`<unk>` in the top-N forms).", "", "| form | size (MB) | vs source | test F1 | Δ F1 |",
              "|---|---:|---:|---:|---:|"]
    base = src["f1"]
    for key, f in forms.items():
        lines.append(f"| {key} | {f['bytes'] / 1e6:.1f} | {f['bytes'] / src['bytes']:.0%} | {f['f1']:.4f} | "
                     f"{f['f1'] - base:+.4f} |")
    lines += ["", "Source size: the files prediction reads (`config.json`, `model.safetensors`, "
              "`extra_embeddings.safetensors`, `extra_words.json`, `train.toml`, `train_summary.json`), without the "
              "training checkpoint.", "", "Commands:", ""]
    for key, c in res["commands"].items():
        if key.startswith(("export", "f1")):
            lines.append(f"* {key}: " + "; ".join(f"`{x}`" for x in c))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
