"""Scores: entity precision/recall/F1 (seqeval, strict) and token accuracy."""

from __future__ import annotations

from typing import Sequence

import numpy as np

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


# ---------------------------------------------------------------------------- evaluation (tagger evaluate)
#
# The functions below score whole test sets from entity spans, so the per-token Python work is a
# single pass of seqeval's own strict reader (``seqeval.scheme.Entities``) per side. Importing
# ``seqeval.metrics`` (which pulls in scikit-learn, seconds) is avoided; the figures are the same
# as ``entity_scores``/``classification_report`` (tests check this).


def prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0 where undefined), computed as seqeval does."""
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def strict_spans(seqs: Sequence[Sequence[str]], scheme: str) -> list[list[schemes.Span]]:
    """The entities of each sequence as seqeval reads them in strict mode.

    Same reading as :func:`entity_scores`: iob2 with seqeval's ``IOB2``, bioes with ``IOBES``,
    iob1 after conversion to iob2. Ill-formed pieces (``I-`` without ``B-``, a bioes ``B-`` with
    no ``E-``) are not entities.
    """
    from seqeval.scheme import IOB2, IOBES, Entities

    s, sch = to_strict_scheme(seqs, scheme)
    cls = {"IOBES": IOBES, "IOB2": IOB2}[_SEQEVAL_SCHEME[sch]]
    return [[schemes.Span(e.tag, e.start, e.end) for e in ents] for ents in Entities(s, cls).entities]


def span_scores(gold: Sequence[Sequence[schemes.Span]], pred: Sequence[Sequence[schemes.Span]]) -> dict:
    """Exact-match span scores: micro and macro precision/recall/F1 and per-type figures.

    Per-type entries hold ``precision``, ``recall``, ``f1``, ``support`` (gold entities),
    ``predicted`` and ``correct``. Macro figures average the per-type ones over every type
    seen in gold or predictions (as seqeval's ``macro avg``).
    """
    from collections import Counter

    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    n_ok: Counter = Counter()
    for g, p in zip(gold, pred):
        n_gold.update(s.label for s in g)
        n_pred.update(s.label for s in p)
        if g and p:
            n_ok.update(s.label for s in set(g).intersection(p))
    per_type = {}
    for t in sorted(set(n_gold) | set(n_pred)):
        pt, rt, ft = prf(n_ok[t], n_pred[t], n_gold[t])
        per_type[t] = {"precision": pt, "recall": rt, "f1": ft, "support": n_gold[t],
                       "predicted": n_pred[t], "correct": n_ok[t]}
    tp, npred, ngold = sum(n_ok.values()), sum(n_pred.values()), sum(n_gold.values())
    p, r, f = prf(tp, npred, ngold)
    mean = lambda key: float(np.mean([v[key] for v in per_type.values()])) if per_type else 0.0  # noqa: E731
    return {
        "precision": p, "recall": r, "f1": f,
        "macro": {"precision": mean("precision"), "recall": mean("recall"), "f1": mean("f1")},
        "correct": tp, "predicted": npred, "support": ngold,
        "per_type": per_type,
    }


def conlleval_scores(gold_iob2: Sequence[Sequence[str]], pred_iob2: Sequence[Sequence[str]],
                     chunks: tuple[Sequence[Sequence[schemes.Span]], Sequence[Sequence[schemes.Span]]] | None = None) -> dict:
    """The figures of the conlleval script for IOB2 tag sequences (one sentence each).

    Chunks follow conlleval's startOfChunk/endOfChunk rules (:func:`schemes.to_spans`), so
    ill-formed sequences are repaired (``O I-PER`` starts a PER chunk) instead of dropped as in
    seqeval's strict mode. A chunk is correct when both files have it with the same start, end
    and type; ``accuracy`` is conlleval's token accuracy (all tokens, ``O`` included).
    Sentence ends close chunks, as blank lines do in conlleval. ``chunks`` may pass the
    (gold, predicted) chunks when they are known already (``to_spans`` of the tags).
    """
    if chunks is None:
        g = [schemes.to_spans(s, "iob2") for s in gold_iob2]
        p = [schemes.to_spans(s, "iob2") for s in pred_iob2]
    else:
        g, p = chunks
    out = span_scores(g, p)
    out["found_gold"] = out.pop("support")
    out["found_pred"] = out.pop("predicted")
    out["accuracy"] = token_accuracy(gold_iob2, pred_iob2)
    return out


def faithful_iob2(tags: Sequence[str], scheme: str, strict: Sequence[schemes.Span] | None = None,
                  chunks: Sequence[schemes.Span] | None = None) -> tuple[list[str], int]:
    """IOB2 tags that seqeval's strict mode and conlleval both read as they read ``tags``.

    A chunk that conlleval finds but strict mode rejects (ill-formed in ``scheme``) is written
    starting with ``I-``: strict readers drop it, conlleval reads it. Well-formed input gives the
    plain conversion. Returns ``(tags, conflicts)``: a conflict is an ill-formed chunk directly
    after a chunk of the same type, which one IOB2 line cannot show to both readers; the strict
    reading is kept (the chunk is written as ``O`` after a strict entity, or merged into the
    previous ill-formed one). ``strict`` and ``chunks`` (the seqeval strict and conlleval
    readings of ``tags``) are computed when not given.
    """
    if chunks is None:
        chunks = schemes.to_spans(tags, scheme)
    ok = set(strict_spans([tags], scheme)[0] if strict is None else strict)
    out = ["O"] * len(tags)
    last: tuple[int, str, bool] | None = None  # (end, type, strict) of the last written chunk
    conflicts = 0
    for sp in chunks:
        adjacent = last is not None and last[0] == sp.start and last[1] == sp.label
        good = sp in ok
        if not good and adjacent:
            conflicts += 1
            if last[2]:  # type: ignore[index]
                continue
        out[sp.start] = f"{'B' if good else 'I'}-{sp.label}"
        out[sp.start + 1 : sp.end] = [f"I-{sp.label}"] * (sp.end - sp.start - 1)
        last = (sp.end, sp.label, good)
    return out, conflicts


def _overlap(a: schemes.Span, b: schemes.Span) -> int:
    return min(a.end, b.end) - max(a.start, b.start)


ERROR_KINDS = ("boundary", "type", "boundary+type", "missed", "spurious")


def entity_errors(gold: Sequence[Sequence[schemes.Span]], pred: Sequence[Sequence[schemes.Span]]) -> dict:
    """Classify the entity errors of each sentence.

    Every prediction that matches no gold entity exactly is one error:

    * ``type`` -- a gold entity has the same boundaries but another type;
    * ``boundary`` -- it overlaps a gold entity of the same type with other boundaries;
    * ``boundary+type`` -- it overlaps only gold entities of other types;
    * ``spurious`` -- it overlaps no gold entity.

    Every gold entity that no prediction overlaps is ``missed``. So the four prediction-side
    kinds add up to the false positives, and ``missed`` plus the gold entities involved in the
    other kinds make up the false negatives.

    Returns ``{"counts": {kind: n}, "events": [(kind, sentence, gold_span|None, pred_span|None)],
    "confusion": {(gold_type|"O", pred_type|"O"): n}}``. The confusion pairs each gold entity with
    the prediction that overlaps it most (same boundaries first), whatever its boundaries, or
    with ``O`` when none overlaps; predictions that overlap no gold entity count as ``(O, type)``.
    """
    from collections import Counter

    counts = dict.fromkeys(ERROR_KINDS, 0)
    events: list[tuple[str, int, schemes.Span | None, schemes.Span | None]] = []
    confusion: Counter = Counter()
    for si, (g, p) in enumerate(zip(gold, pred)):
        if not g and not p:
            continue
        gset = set(g)
        pset = set(p)
        for ps in p:
            over = [gs for gs in g if _overlap(gs, ps) > 0]
            if not over:
                confusion["O", ps.label] += 1
            if ps in gset:
                continue
            same_bounds = [gs for gs in over if gs.start == ps.start and gs.end == ps.end]
            same_type = [gs for gs in over if gs.label == ps.label]
            if same_bounds:
                kind, gs = "type", same_bounds[0]
            elif same_type:
                kind, gs = "boundary", max(same_type, key=lambda x: _overlap(x, ps))
            elif over:
                kind, gs = "boundary+type", max(over, key=lambda x: _overlap(x, ps))
            else:
                kind, gs = "spurious", None
            counts[kind] += 1
            events.append((kind, si, gs, ps))
        for gs in g:
            if gs in pset:
                confusion[gs.label, gs.label] += 1
                continue
            over = [ps for ps in p if _overlap(gs, ps) > 0]
            if not over:
                counts["missed"] += 1
                events.append(("missed", si, gs, None))
                confusion[gs.label, "O"] += 1
            else:
                best = max(over, key=lambda x: (x.start == gs.start and x.end == gs.end, _overlap(x, gs), -x.start))
                confusion[gs.label, best.label] += 1
    return {"counts": counts, "events": events, "confusion": dict(confusion)}


def label_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Token-level scores for plain labels (POS): accuracy, per-label and macro P/R/F1, confusion.

    ``confusion`` is ``{"labels": [...], "matrix": [[gold i, predicted j], ...]}`` over every label
    seen in gold or predictions.
    """
    g = [x for s in gold for x in s]
    p = [x for s in pred for x in s]
    if len(g) != len(p):
        raise ValueError("gold and predicted sequences differ in length")
    labels = sorted(set(g) | set(p))
    index = {lab: i for i, lab in enumerate(labels)}
    n = len(labels)
    gi = np.fromiter((index[x] for x in g), dtype=np.int64, count=len(g))
    pi = np.fromiter((index[x] for x in p), dtype=np.int64, count=len(p))
    cm = np.bincount(gi * n + pi, minlength=n * n).reshape(n, n) if n else np.zeros((0, 0), np.int64)
    correct = np.diag(cm)
    support = cm.sum(1)
    predicted = cm.sum(0)
    per = {}
    for i, lab in enumerate(labels):
        pr, rc, f = prf(int(correct[i]), int(predicted[i]), int(support[i]))
        per[lab] = {"precision": pr, "recall": rc, "f1": f, "support": int(support[i]),
                    "predicted": int(predicted[i]), "correct": int(correct[i])}
    mean = lambda key: float(np.mean([v[key] for v in per.values()])) if per else 0.0  # noqa: E731
    return {
        "accuracy": float(correct.sum() / len(g)) if g else 0.0,
        "correct": int(correct.sum()), "tokens": len(g),
        "macro": {"precision": mean("precision"), "recall": mean("recall"), "f1": mean("f1")},
        "per_type": per,
        "confusion": {"labels": labels, "matrix": cm.tolist()},
    }
