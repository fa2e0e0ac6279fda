"""Write a markdown report of a training run: per-epoch seconds, dev scores, test scores.

    python benchmarks/training_report.py MODEL_DIR EVAL_DIR --title "CoNLL-2003 NER" \
        --command "tagger train P --out M --max-minutes 55" --out reports/conll2003_ner.md

MODEL_DIR is a `tagger train` output (metrics.jsonl, train.toml, train_summary.json); EVAL_DIR a
`tagger evaluate --out` directory (metrics.json). Nothing here recomputes a score: it only
formats what those commands wrote.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--title", default="Training run")
    ap.add_argument("--command", action="append", default=[], help="command(s) that produced the run")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--note", action="append", default=[])
    a = ap.parse_args()

    rows = [json.loads(line) for line in (a.model_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((a.model_dir / "train_summary.json").read_text())
    test = json.loads((a.eval_dir / "metrics.json").read_text())
    key = "f1" if summary["task"] == "entity" else "accuracy"
    best = max(rows, key=lambda r: r["dev"].get(key, 0.0))
    total = sum(r["seconds"] for r in rows)

    out = [f"# {a.title}", ""]
    out += ["Commands (run on this repository's 2-core CPU machine):", "", "```"]
    out += a.command + ["```", ""]
    out += [f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, "
            f"Python {platform.python_version()}.", ""]
    out += ["| | value |", "| --- | --- |"]
    out += [f"| epochs run | {len(rows)} |",
            f"| training time (train + dev eval, all epochs) | {total / 60:.1f} min |"]
    out += [f"| best epoch (dev {key}) | {best['epoch']} |",
            f"| dev {key} (best epoch) | {100 * best['dev'][key]:.2f} |"]
    if key == "f1":
        out += [f"| **test F1** (seqeval strict, micro) | **{100 * test['f1']:.2f}** |",
                f"| test precision / recall | {100 * test['precision']:.2f} / {100 * test['recall']:.2f} |"]
        if "conlleval" in test:
            c = test["conlleval"]
            out += [f"| test F1 (conlleval counting) | {100 * c['f1']:.2f} |"]
    out += [f"| test token accuracy | {100 * test['accuracy']:.2f} |", ""]
    if key == "f1" and test.get("per_type"):
        out += ["Test scores per type:", "", "| type | precision | recall | F1 | support |",
                "| --- | --- | --- | --- | --- |"]
        for t, v in sorted(test["per_type"].items()):
            out.append(f"| {t} | {100 * v['precision']:.2f} | {100 * v['recall']:.2f} | {100 * v['f1']:.2f} | "
                       f"{v.get('support', '')} |")
        out.append("")
    out += a.note + ([""] if a.note else [])
    out += ["Per epoch (seconds = training + dev evaluation of that epoch):", "",
            f"| epoch | loss | lr | seconds | sent/s | dev {key} | best |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['epoch']} | {r['loss']:.4f} | {r['lr']:.5f} | {r['seconds']:.1f} | "
                   f"{r['sentences_per_s']:.0f} | {100 * r['dev'].get(key, 0):.2f} | {'*' if r.get('best') else ''} |")
    out.append("")
    cfg = a.model_dir / "train.toml"
    if cfg.exists():
        out += ["Effective training configuration (`train.toml` in the model directory):", "", "```toml",
                cfg.read_text().strip(), "```", ""]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(out))
    (a.out.with_suffix(".json")).write_text(json.dumps(
        {"commands": a.command, "epochs": len(rows), "minutes": round(total / 60, 2), "best_epoch": best["epoch"],
         "dev": best["dev"], "test": {k: test.get(k) for k in ("f1", "precision", "recall", "accuracy")},
         "per_epoch": [{k: r[k] for k in ("epoch", "loss", "seconds")} | {"dev": r["dev"].get(key)} for r in rows]},
        indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
