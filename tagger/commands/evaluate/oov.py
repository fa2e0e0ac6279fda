"""Out-of-vocabulary figures for ``tagger evaluate``: accuracy on OOV tokens, recall of entities with OOV words."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tagger.schemes import Span
from tagger.vocab import UNK_ID, WordLookup


def _accuracy_of(mask: np.ndarray, correct: np.ndarray, total: int) -> dict:
    n = int(mask.sum())
    return {"tokens": n, "share": n / total if total else 0.0,
            "accuracy": float(correct[mask].mean()) if n else None}


def oov_block(lookup: WordLookup, tokens: Sequence[Sequence[str]], gold: Sequence[Sequence[str]],
              pred: Sequence[Sequence[str]]) -> dict:
    """Token accuracy on in-vocabulary and OOV words (OOV: not in the trained word vocabulary)."""
    flat = [t for s in tokens for t in s]
    ids = np.fromiter((lookup(t) for t in flat), dtype=np.int64, count=len(flat))
    same = (a == b for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True))
    correct = np.fromiter(same, dtype=bool, count=len(flat))
    unknown = ids == UNK_ID
    pretrained = ids >= lookup.num_trained
    oov = unknown | pretrained
    total = len(flat)
    return {
        "definition": "OOV: not in the model's trained word vocabulary; pretrained_only: OOV but with a "
                      "pretrained vector the model keeps; unknown: read as <unk>",
        "in_vocabulary": _accuracy_of(~oov, correct, total),
        "oov": _accuracy_of(oov, correct, total),
        "pretrained_only": _accuracy_of(pretrained, correct, total),
        "unknown": _accuracy_of(unknown, correct, total),
    }


def oov_entities(lookup: WordLookup, tokens: Sequence[Sequence[str]], g_sp: Sequence[Sequence[Span]],
                 p_sp: Sequence[Sequence[Span]]) -> dict:
    """Recall of gold entities with and without an OOV word (the share of each group predicted exactly)."""
    nt = lookup.num_trained
    counts = {"with_oov": [0, 0], "without_oov": [0, 0]}  # [support, found]
    for toks, g, p in zip(tokens, g_sp, p_sp, strict=True):
        if not g:
            continue
        pset = set(p)
        for sp in g:
            has = any((i := lookup(w)) == UNK_ID or i >= nt for w in toks[sp.start:sp.end])
            c = counts["with_oov" if has else "without_oov"]
            c[0] += 1
            c[1] += sp in pset
    return {k: {"support": s, "recall": f / s if s else None} for k, (s, f) in counts.items()}
