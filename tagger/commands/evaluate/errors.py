"""Error analysis for ``tagger evaluate``: entity error kinds, label confusions, top errors with examples.

This is analysis, not scoring: the spans are the strict entities (:func:`tagger.schemes.strict_spans`),
the figures they explain come from :mod:`tagger.metrics`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from tagger.commands.evaluate.gold import Gold
from tagger.schemes import Span

ERROR_KINDS = ("boundary", "type", "boundary+type", "missed", "spurious")
TOP_ERRORS_JSON = 50
ENTITY_ERROR_DEFINITIONS = {
    "boundary": "prediction overlaps a gold entity of the same type with other boundaries",
    "type": "prediction has the boundaries of a gold entity but another type",
    "boundary+type": "prediction overlaps only gold entities of other types, with other boundaries",
    "missed": "gold entity that no prediction overlaps",
    "spurious": "prediction that overlaps no gold entity",
    "confusion": "rows: gold type (O: none); columns: type of the prediction overlapping it most "
                 "(O: none); entities as in the strict figures",
}


def _overlap(a: Span, b: Span) -> int:
    return min(a.end, b.end) - max(a.start, b.start)


def _prediction_error(ps: Span, over: list[Span]) -> tuple[str, Span | None]:
    """Kind of a wrong prediction and the gold entity it is matched with (``over``: those it overlaps)."""
    same_bounds = [gs for gs in over if gs.start == ps.start and gs.end == ps.end]
    same_type = [gs for gs in over if gs.label == ps.label]
    if same_bounds:
        return "type", same_bounds[0]
    if same_type:
        return "boundary", max(same_type, key=lambda x: _overlap(x, ps))
    if over:
        return "boundary+type", max(over, key=lambda x: _overlap(x, ps))
    return "spurious", None


def entity_errors(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> dict:
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
    counts = dict.fromkeys(ERROR_KINDS, 0)
    events: list[tuple[str, int, Span | None, Span | None]] = []
    confusion: Counter = Counter()
    for si, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if not g and not p:
            continue
        gset, pset = set(g), set(p)
        for ps in p:
            over = [gs for gs in g if _overlap(gs, ps) > 0]
            if not over:
                confusion["O", ps.label] += 1
            if ps not in gset:
                kind, gs = _prediction_error(ps, over)
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


def context(tokens: Sequence[str], start: int, end: int, width: int = 12) -> str:
    """The sentence with tokens ``[start, end)`` in ``[[ ]]``, cut to ``width`` tokens each side.

    ``line`` of an example is the source line of its first marked token (of its sentence when
    the format does not put one token per line).
    """
    lo, hi = max(0, start - width), min(len(tokens), end + width)
    parts = ["…"] if lo > 0 else []
    parts += list(tokens[lo:start]) + ["[["] + list(tokens[start:end]) + ["]]"] + list(tokens[end:hi])
    if hi < len(tokens):
        parts.append("…")
    return " ".join(parts).replace("[[ ", "[[").replace(" ]]", "]]")


def _group_events(gold: Gold, events: list) -> dict[tuple, dict]:
    """Errors with the same kind, texts and types, counted, with the first one as example."""
    groups: dict[tuple, dict] = {}
    for kind, si, gs, ps in events:
        toks = gold.tokens[si]
        gtxt = " ".join(toks[gs.start:gs.end]) if gs else None
        ptxt = " ".join(toks[ps.start:ps.end]) if ps else None
        key = (kind, gtxt, gs.label if gs else None, ptxt, ps.label if ps else None)
        grp = groups.get(key)
        if grp is None:
            lo = min(s.start for s in (gs, ps) if s is not None)
            hi = max(s.end for s in (gs, ps) if s is not None)
            grp = groups[key] = {
                "kind": kind, "count": 0,
                "gold": {"text": gtxt, "type": gs.label} if gs else None,
                "predicted": {"text": ptxt, "type": ps.label} if ps else None,
                "example": {"sentence": si, "line": gold.line_of(si, lo), "text": context(toks, lo, hi)},
                "sentences": [],
            }
        grp["count"] += 1
        if len(grp["sentences"]) < 10:
            grp["sentences"].append(si)
    return groups


def _type_confusion(pairs: dict[tuple[str, str], int]) -> dict:
    """The confusion pairs as a matrix over the types seen, ``O`` last."""
    labels = sorted({t for pair in pairs for t in pair if t != "O"}) + ["O"]
    idx = {t: i for i, t in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for (gt, pt), n in pairs.items():
        matrix[idx[gt]][idx[pt]] += n
    return {"labels": labels, "matrix": matrix}


def entity_error_block(gold: Gold, g_sp: Sequence[Sequence[Span]], p_sp: Sequence[Sequence[Span]]) -> dict:
    """The ``errors`` entry of an entity evaluation: counts per kind, confusion, top errors."""
    ea = entity_errors(g_sp, p_sp)
    groups = _group_events(gold, ea["events"])
    order = {k: i for i, k in enumerate(ERROR_KINDS)}
    top = sorted(groups.values(), key=lambda g: (-g["count"], order[g["kind"]], str(g["gold"]), str(g["predicted"])))
    counts = dict(ea["counts"])
    counts["total"] = sum(ea["counts"].values())
    return {
        "counts": counts,
        "definitions": dict(ENTITY_ERROR_DEFINITIONS),
        "confusion": _type_confusion(ea["confusion"]),
        "distinct": len(groups),
        "top": top[:TOP_ERRORS_JSON],
    }


def label_error_block(gold: Gold, gold_m: Sequence[Sequence[str]], pred_m: Sequence[Sequence[str]],
                      confusion: dict) -> dict:
    """The ``errors`` entry of a plain-label evaluation: wrong tokens by (gold, predicted) pair."""
    words: dict[tuple[str, str], Counter] = defaultdict(Counter)
    first: dict[tuple[str, str], tuple[int, int]] = {}
    for si, (toks, g, p) in enumerate(zip(gold.tokens, gold_m, pred_m, strict=True)):
        for j, (a, b) in enumerate(zip(g, p, strict=True)):
            if a != b:
                words[a, b][toks[j]] += 1
                first.setdefault((a, b), (si, j))
    top: list[dict] = []
    for (a, b), c in sorted(words.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        si, j = first[a, b]
        top.append({
            "gold": a, "predicted": b, "count": sum(c.values()),
            "words": [w for w, _ in c.most_common(5)],
            "example": {"sentence": si, "line": gold.line_of(si, j), "text": context(gold.tokens[si], j, j + 1)},
        })
    total = sum(t["count"] for t in top)
    return {"counts": {"total": total}, "confusion": confusion, "distinct": len(top), "top": top[:TOP_ERRORS_JSON]}
