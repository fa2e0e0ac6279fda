"""The PNG plots of ``tagger evaluate``: F1 per type, confusion matrix, learning curve.

matplotlib draws on an Agg canvas, so no display is needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

PLOTS = {"per_type": "per_type_f1.png", "confusion": "confusion.png", "learning_curve": "learning_curve.png"}


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / PLOTS[name])
    return PLOTS[name]


def plot_per_type(out: Path, result: dict) -> str | None:
    """Horizontal bars: F1 per entity type (per label for plain tasks, most frequent first)."""
    per = result["per_type"]
    ent = result["task"] == "entity"
    names = sorted(per) if ent else sorted(per, key=lambda k: (-per[k]["support"], k))
    if not names:
        return None
    fig = _figure(7, max(2.5, 0.3 * len(names) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    f1s = [per[n]["f1"] for n in names]
    y = np.arange(len(names))
    ax.barh(y, f1s, color="#4C72B0")
    ax.set_yticks(y, labels=[f"{n} ({per[n]['support']})" for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("F1 (strict)" if ent else "F1")
    for yi, v in zip(y, f1s, strict=True):
        ax.text(min(v + 0.01, 1.0), yi, f"{v:.3f}", va="center", fontsize=8)
    ax.set_title(("F1 per entity type" if ent else "F1 per label") + " (support)")
    return _save(fig, out, "per_type")


def plot_confusion(out: Path, result: dict) -> str | None:
    """The confusion matrix, shaded by the share of each gold row (counts written up to 20 labels)."""
    conf = result["errors"]["confusion"]
    labels, m = conf["labels"], np.asarray(conf["matrix"], dtype=float)
    if not labels or m.sum() <= 0:
        return None
    n = len(labels)
    size = min(14.0, max(4.5, 0.35 * n + 2.5))
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot(1, 1, 1)
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=labels, rotation=90 if n > 8 else 0, fontsize=8 if n > 20 else 10)
    ax.set_yticks(range(n), labels=labels, fontsize=8 if n > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the gold row")
    ax.set_title("Entity type confusion" if result["task"] == "entity" else "Label confusion (tokens)")
    return _save(fig, out, "confusion")


def plot_learning_curve(out: Path, result: dict) -> str | None:
    """Train loss per epoch and, on a second axis, the dev score with the best epoch marked."""
    lc = result["learning_curve"]
    hist = lc.get("history")
    if not hist:
        return None
    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    ep = [r["epoch"] for r in hist]
    ax.plot(ep, [r["loss"] if r["loss"] is not None else math.nan for r in hist], "o-", color="#C44E52",
            label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="#C44E52")
    handles, names = ax.get_legend_handles_labels()
    if any(r["dev"] is not None for r in hist):
        ax2 = ax.twinx()
        ax2.plot(ep, [r["dev"] if r["dev"] is not None else math.nan for r in hist], "s-", color="#4C72B0",
                 label=f"dev {lc['metric']}")
        ax2.set_ylabel(f"dev {lc['metric']}", color="#4C72B0")
        if lc.get("best_epoch") is not None:
            ax2.axvline(lc["best_epoch"], color="grey", linestyle=":", label=f"best epoch {lc['best_epoch']}")
        h2, n2 = ax2.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    ax.legend(handles, names, loc="center right", fontsize=8)
    ax.set_title("Learning curve")
    return _save(fig, out, "learning_curve")


def write_plots(out: Path, result: dict) -> dict[str, str | None]:
    """Write the plots into ``out``; returns plot name → file name, or None where there is nothing to draw."""
    return {"per_type": plot_per_type(out, result), "confusion": plot_confusion(out, result),
            "learning_curve": plot_learning_curve(out, result)}
