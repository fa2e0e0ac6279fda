"""Scores: entity precision/recall/F1 (seqeval), conlleval chunk counts, token and label scores.

Entity figures come from one scorer, seqeval's ``classification_report``: in strict mode on
the model's scheme for the headline figures (:func:`entity_scores`, :func:`entity_report`),
and on conlleval's reading of the tags for the second figure (:func:`conlleval_scores`).
Plain labels (POS) are scored token by token with scikit-learn (:func:`label_scores`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from tagger import schemes

_SEQEVAL_SCHEME = {"bioes": "IOBES", "iob2": "IOB2"}
_NO_SCORES = {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def to_strict_scheme(seqs: Sequence[Sequence[str]], scheme: str) -> tuple[list[list[str]], str]:
    """Sequences in a scheme seqeval's strict mode knows (IOB1 is converted to IOB2)."""
    if scheme == "iob1":
        return [schemes.convert(s, "iob1", "iob2")[0] for s in seqs], "iob2"
    return [list(s) for s in seqs], scheme


def _figures(row: dict) -> dict:
    return {"precision": float(row["precision"]), "recall": float(row["recall"]), "f1": float(row["f1-score"])}


def entity_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict:
    """seqeval's strict ``classification_report``: micro, macro and per-type precision/recall/F1.

    Returns ``{"precision", "recall", "f1", "macro": {"precision", "recall", "f1"},
    "per_type": {type: {"precision", "recall", "f1", "support"}}}`` (types sorted). Entities
    are read with ``mode='strict'`` (IOBES for bioes, IOB2 for iob2 and for iob1 after
    conversion); undefined figures are 0, so is the macro average of no types.
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2, IOBES

    g, sch = to_strict_scheme(gold, scheme)
    p, _ = to_strict_scheme(pred, scheme)
    cls = {"IOBES": IOBES, "IOB2": IOB2}[_SEQEVAL_SCHEME[sch]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's mean of no types (the macro row), replaced below
        rep = classification_report(g, p, mode="strict", scheme=cls, output_dict=True, zero_division=0)
    per_type = {
        k: {**_figures(v), "support": int(v["support"])}
        for k, v in rep.items() if k not in ("micro avg", "macro avg", "weighted avg")
    }
    return {**_figures(rep["micro avg"]), "macro": _figures(rep["macro avg"]) if per_type else dict(_NO_SCORES),
            "per_type": per_type}


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict:
    """Strict micro precision/recall/F1, macro F1, token accuracy and per-type figures (seqeval)."""
    rep = entity_report(gold, pred, scheme)
    return {
        "precision": rep["precision"], "recall": rep["recall"], "f1": rep["f1"],
        "macro_f1": rep["macro"]["f1"],
        "accuracy": token_accuracy(gold, pred),
        "per_type": rep["per_type"],
    }


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    total = correct = 0
    for g, p in zip(gold, pred, strict=True):
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p, strict=True))
    return correct / total if total else 0.0


def score(gold, pred, task: str, scheme: str) -> dict:
    """Dev scores of a training run: :func:`entity_scores` for entity tasks, else token accuracy."""
    if task == "entity":
        return entity_scores(gold, pred, scheme)
    return {"accuracy": token_accuracy(gold, pred)}


def count_chunks(report: dict, gold: Chunks, pred: Chunks) -> dict:
    """``report`` (of :func:`entity_report`) with the chunk counts conlleval prints beside its figures.

    ``gold`` and ``pred`` are the entities the report scored, per sentence. Adds ``predicted``
    and ``correct`` (same type, start and end) to every type and, with ``support``, in total.
    """
    n_pred: Counter = Counter()
    n_ok: Counter = Counter()
    for g, p in zip(gold, pred, strict=True):
        n_pred.update(s.label for s in p)
        if g and p:
            n_ok.update(s.label for s in set(g).intersection(p))
    per_type = {t: {**v, "predicted": n_pred[t], "correct": n_ok[t]} for t, v in report["per_type"].items()}
    return {**report, "correct": sum(n_ok.values()), "predicted": sum(n_pred.values()),
            "support": sum(v["support"] for v in per_type.values()), "per_type": per_type}


Chunks = Sequence[Sequence[schemes.Span]]  # the entities of each sentence


def conlleval_scores(gold_iob2: Sequence[Sequence[str]], pred_iob2: Sequence[Sequence[str]],
                     chunks: tuple[Chunks, Chunks] | None = None) -> dict:
    """The figures of the conlleval script for IOB2 tag sequences (one sentence each).

    Chunks follow conlleval's startOfChunk/endOfChunk rules (:func:`schemes.to_spans`), so
    ill-formed sequences are repaired (``O I-PER`` starts a PER chunk) instead of dropped as in
    seqeval's strict mode; the repaired chunks, written as IOB2, are scored by seqeval. A chunk
    is correct when both sides have it with the same start, end and type; ``accuracy`` is
    conlleval's token accuracy (all tokens, ``O`` included). Sentence ends close chunks, as
    blank lines do in conlleval. ``chunks`` may pass the (gold, predicted) chunks when they are
    known already (``to_spans`` of the tags).
    """
    if chunks is None:
        chunks = ([schemes.to_spans(s, "iob2") for s in gold_iob2], [schemes.to_spans(s, "iob2") for s in pred_iob2])
    g_chunks, p_chunks = chunks
    repaired = [[schemes.from_spans(c, len(s), "iob2") for c, s in zip(side, seqs, strict=True)]
                for side, seqs in ((g_chunks, gold_iob2), (p_chunks, pred_iob2))]
    rep = count_chunks(entity_report(repaired[0], repaired[1], "iob2"), g_chunks, p_chunks)
    return {
        "precision": rep["precision"], "recall": rep["recall"], "f1": rep["f1"], "macro": rep["macro"],
        "correct": rep["correct"], "per_type": rep["per_type"],
        "found_gold": rep["support"], "found_pred": rep["predicted"],
        "accuracy": token_accuracy(gold_iob2, pred_iob2),
    }


def label_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Token-level scores for plain labels (POS): accuracy, per-label and macro P/R/F1, confusion.

    scikit-learn's figures over every label seen in gold or predictions. ``confusion`` is
    ``{"labels": [...], "matrix": [[gold i, predicted j], ...]}``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    g = [x for s in gold for x in s]
    p = [x for s in pred for x in s]
    if len(g) != len(p):
        raise ValueError("gold and predicted sequences differ in length")
    if not g:
        return {"accuracy": 0.0, "correct": 0, "tokens": 0, "macro": dict(_NO_SCORES), "per_type": {},
                "confusion": {"labels": [], "matrix": []}}
    labels = sorted(set(g) | set(p))
    cm = confusion_matrix(g, p, labels=labels)
    prec, rec, f1, support = precision_recall_fscore_support(g, p, labels=labels, zero_division=0)
    correct, predicted = np.diag(cm), cm.sum(0)
    per = {
        lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i]),
              "predicted": int(predicted[i]), "correct": int(correct[i])}
        for i, lab in enumerate(labels)
    }
    return {
        "accuracy": float(correct.sum() / len(g)),
        "correct": int(correct.sum()), "tokens": len(g),
        "macro": {"precision": float(prec.mean()), "recall": float(rec.mean()), "f1": float(f1.mean())},
        "per_type": per,
        "confusion": {"labels": labels, "matrix": cm.tolist()},
    }
