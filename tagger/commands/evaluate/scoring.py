"""The figures of ``tagger evaluate``: strict (seqeval) and conlleval entity scores, or label scores.

Entity tasks are scored two ways, both by seqeval (:mod:`tagger.metrics`):

* **strict** (the headline ``precision``/``recall``/``f1``): mode='strict' on the model's scheme
  (IOBES for bioes models, IOB2 for iob2, and iob1 after conversion to IOB2) -- an entity
  counts only if its tags are well formed;
* **conlleval**: the conlleval script's chunk counting on IOB2 tags, which repairs ill-formed
  sequences (``O I-PER`` starts a chunk). The two differ only where a sequence is ill formed.
"""

from __future__ import annotations

from collections.abc import Sequence

from tagger import metrics, schemes
from tagger.commands.evaluate.errors import entity_error_block, label_error_block
from tagger.commands.evaluate.gold import Gold
from tagger.commands.evaluate.oov import oov_entities
from tagger.vocab import WordLookup

STRICT_NOTE = ("strict: seqeval mode='strict' on the model's scheme; an entity counts only if its tags are "
               "well formed (headline precision/recall/f1)")
CONLLEVAL_NOTE = ("conlleval: the conlleval script's chunk counting on IOB2 tags; ill-formed sequences are "
                  "repaired (an I- after O starts a chunk) instead of dropped")


def faithful_iob2(tags: Sequence[str], scheme: str,
                  chunks: Sequence[schemes.Span] | None = None) -> tuple[list[str], int]:
    """IOB2 tags that seqeval's strict mode and conlleval both read as they read ``tags``.

    A chunk that conlleval finds but strict mode rejects (ill-formed in ``scheme``) is written
    starting with ``I-``: strict readers drop it, conlleval reads it. Well-formed input gives the
    plain conversion. Returns ``(tags, conflicts)``: a conflict is an ill-formed chunk directly
    after a chunk of the same type, which one IOB2 line cannot show to both readers; the strict
    reading is kept (the chunk is written as ``O`` after a strict entity, or merged into the
    previous ill-formed one). ``chunks`` (the conlleval reading of ``tags``) is computed when
    not given.
    """
    if chunks is None:
        chunks = schemes.to_spans(tags, scheme)
    ok = set(schemes.strict_spans(tags, scheme, chunks))
    out = ["O"] * len(tags)
    last: tuple[int, str, bool] | None = None  # (end, type, strict) of the last written chunk
    conflicts = 0
    for sp in chunks:
        good = sp in ok
        if not good and last is not None and last[0] == sp.start and last[1] == sp.label:
            conflicts += 1
            if last[2]:
                continue
        out[sp.start] = f"{'B' if good else 'I'}-{sp.label}"
        out[sp.start + 1 : sp.end] = [f"I-{sp.label}"] * (sp.end - sp.start - 1)
        last = (sp.end, sp.label, good)
    return out, conflicts


def entity_figures(gold: Gold, gold_m: Sequence[Sequence[str]], pred_m: Sequence[Sequence[str]], scheme: str,
                   lookup: WordLookup) -> tuple[dict, list[list[str]], list[list[str]], dict]:
    """Strict and conlleval figures, error analysis and OOV-entity recall of an entity model.

    ``gold_m``/``pred_m`` are tags in the model's ``scheme``. Returns ``(figures, gold IOB2,
    predicted IOB2 for predictions.conll, OOV-entity block)``.
    """
    # conlleval chunks of the model-scheme tags: the same as those of their IOB2 conversion.
    g_chunks = [schemes.to_spans(s, scheme) for s in gold_m]
    p_chunks = [schemes.to_spans(s, scheme) for s in pred_m]
    gold_iob2 = [schemes.from_spans(c, len(s), "iob2") for c, s in zip(g_chunks, gold_m, strict=True)]
    pred_iob2_plain = [schemes.from_spans(c, len(s), "iob2") for c, s in zip(p_chunks, pred_m, strict=True)]
    ill_formed = sum(schemes.from_spans(c, len(s), scheme) != s for c, s in zip(p_chunks, pred_m, strict=True))
    g_sp = [schemes.strict_spans(s, scheme, c) for s, c in zip(gold_m, g_chunks, strict=True)]
    p_sp = [schemes.strict_spans(s, scheme, c) for s, c in zip(pred_m, p_chunks, strict=True)]
    strict = metrics.count_chunks(metrics.entity_report(gold_m, pred_m, scheme), g_sp, p_sp)
    pred_iob2, conflicts = [], 0
    for tags, ch in zip(pred_m, p_chunks, strict=True):
        w, c = faithful_iob2(tags, scheme, ch)
        pred_iob2.append(w)
        conflicts += c
    conll = metrics.conlleval_scores(gold_iob2, pred_iob2_plain, chunks=(g_chunks, p_chunks))
    conll["note"] = CONLLEVAL_NOTE
    figures = {
        "precision": strict["precision"], "recall": strict["recall"], "f1": strict["f1"],
        "macro": strict["macro"], "macro_f1": strict["macro"]["f1"],
        "accuracy": metrics.token_accuracy(gold_m, pred_m),
        "entities": {"gold": strict["support"], "predicted": strict["predicted"], "correct": strict["correct"]},
        "per_type": strict["per_type"],
        "strict_note": STRICT_NOTE,
        "conlleval": conll,
        "ill_formed_predictions": ill_formed,
        "errors": entity_error_block(gold, g_sp, p_sp),
        "predictions_conll": {"tags": "iob2", "conflicts": conflicts},
    }
    return figures, gold_iob2, pred_iob2, oov_entities(lookup, gold.tokens, g_sp, p_sp)


def label_figures(gold: Gold, gold_m: Sequence[Sequence[str]], pred_m: Sequence[Sequence[str]]) -> dict:
    """Token accuracy, macro and per-label figures and error analysis of a plain-label model."""
    ls = metrics.label_scores(gold_m, pred_m)
    return {
        "accuracy": ls["accuracy"], "correct": ls["correct"], "macro": ls["macro"],
        "per_type": ls["per_type"],
        "errors": label_error_block(gold, gold_m, pred_m, ls["confusion"]),
        "predictions_conll": {"tags": "plain", "conflicts": 0},
    }
