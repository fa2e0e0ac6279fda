"""The files ``tagger evaluate --out`` writes: predictions.conll, the plots and report.md.

metrics.json is written last, by :func:`tagger.commands.evaluate.run.evaluate`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tagger.commands.evaluate.gold import Gold
from tagger.commands.evaluate.plots import write_plots
from tagger.commands.evaluate.report import render_report
from tagger.errors import TaggerError
from tagger.fsutil import atomic_write_bytes


def _conll_token(t: str) -> str:
    return re.sub(r"\s", "_", t) or "_"


def write_predictions(path: Path, gold: Gold, gold_tags: Sequence[Sequence[str]],
                      pred_tags: Sequence[Sequence[str]]) -> None:
    """predictions.conll: token, gold and predicted tag per line (space separated), a blank line per sentence."""
    lines: list[str] = []
    for toks, g, p in zip(gold.tokens, gold_tags, pred_tags, strict=True):
        lines.extend(f"{_conll_token(t)} {a} {b}" for t, a, b in zip(toks, g, p, strict=True))
        lines.append("")
    atomic_write_bytes(path, ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))


def write_outputs(out: Path, result: dict, gold: Gold, gold_tags: Sequence[Sequence[str]],
                  pred_tags: Sequence[Sequence[str]]) -> list[str]:
    """Write predictions.conll, the plots and report.md; returns the file names (metrics.json first)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TaggerError(f"{out}: cannot create the output directory ({exc.strerror or exc})") from None
    write_predictions(out / "predictions.conll", gold, gold_tags, pred_tags)
    files = ["metrics.json", "predictions.conll"]
    plots = write_plots(out, result)
    files += [p for p in plots.values() if p]
    result["plots"] = plots
    atomic_write_bytes(out / "report.md", render_report(result).encode("utf-8"))
    files.append("report.md")
    return files
