"""Scores: entity precision/recall/F1 (seqeval, strict) and token accuracy."""

from __future__ import annotations

from typing import Sequence

from tagger import schemes

_SEQEVAL_SCHEME = {"bioes": "IOBES", "iob2": "IOB2"}


def to_strict_scheme(seqs: Sequence[Sequence[str]], scheme: str) -> tuple[list[list[str]], str]:
    """Sequences in a scheme seqeval's strict mode knows (IOB1 is converted to IOB2)."""
    if scheme == "iob1":
        return [schemes.convert(s, "iob1", "iob2")[0] for s in seqs], "iob2"
    return [list(s) for s in seqs], scheme


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict:
    """Micro precision/recall/F1 with seqeval in strict mode, plus per-type figures."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2, IOBES

    g, sch = to_strict_scheme(gold, scheme)
    p, _ = to_strict_scheme(pred, scheme)
    cls = {"IOBES": IOBES, "IOB2": IOB2}[_SEQEVAL_SCHEME[sch]]
    rep = classification_report(g, p, mode="strict", scheme=cls, output_dict=True, zero_division=0)
    micro = rep.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    macro = rep.get("macro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    per_type = {
        k: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
            "support": int(v["support"])}
        for k, v in rep.items() if k not in ("micro avg", "macro avg", "weighted avg")
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "macro_f1": float(macro["f1-score"]),
        "accuracy": token_accuracy(gold, pred),
        "per_type": per_type,
    }


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    total = correct = 0
    for g, p in zip(gold, pred):
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p))
    return correct / total if total else 0.0


def headline(scores: dict, task: str) -> tuple[str, float]:
    """The metric a run is judged by: entity F1 or token accuracy."""
    return ("f1", scores["f1"]) if task == "entity" else ("accuracy", scores["accuracy"])


def score(gold, pred, task: str, scheme: str) -> dict:
    if task == "entity":
        return entity_scores(gold, pred, scheme)
    return {"accuracy": token_accuracy(gold, pred)}
