"""The learning curve of a model for ``tagger evaluate``: loss and dev score per epoch from its metrics.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path


def read_learning_curve(model_dir: Path) -> dict:
    """Epochs, the dev metric and its best epoch, and per-epoch rows; or a ``note`` why there is no curve.

    Rows that do not parse (a line cut short by a kill) are skipped.
    """
    path = model_dir / "metrics.jsonl"
    if not path.is_file():
        return {"note": f"no training log ({path.name}) in the model directory; learning curve skipped"}
    rows = []
    has_f1 = False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return {"note": f"{path}: unreadable training log ({exc}); learning curve skipped"}
    for line in lines:
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            epoch = int(r["epoch"])
            raw = r.get("loss")
            loss = float(raw) if raw is not None else None
            loss = loss if loss is not None and math.isfinite(loss) else None
        except (ValueError, KeyError, TypeError):
            continue
        dev = r.get("dev") if isinstance(r.get("dev"), dict) else {}
        has_f1 = has_f1 or "f1" in dev
        score = dev.get("f1", dev.get("accuracy"))
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            score = None
        rows.append({"epoch": epoch, "loss": loss, "dev": None if score is None else float(score)})
    if not rows:
        return {"note": f"{path.name} has no epochs; learning curve skipped"}
    metric = "f1" if has_f1 else "accuracy"
    devs = [(r["dev"], r["epoch"]) for r in rows if r["dev"] is not None]
    best = max(devs) if devs else None
    return {"epochs": len(rows), "metric": metric, "best_epoch": best[1] if best else None,
            "best_dev": best[0] if best else None, "history": rows}
