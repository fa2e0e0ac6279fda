"""Rendering the figures of ``tagger evaluate``: report.md and the summary table the CLI prints."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tagger.commands.evaluate.errors import ERROR_KINDS
from tagger.commands.evaluate.scoring import CONLLEVAL_NOTE, STRICT_NOTE

TOP_ERRORS_REPORT = 20


def _md(text) -> str:
    """Escape text for a Markdown table cell."""
    s = "" if text is None else str(text)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([*_`\[\]#])", r"\\\1", s)


def _md_context(text: str) -> str:
    """An error example: the span inside ``[[ ]]`` in bold."""
    m = re.search(r"\[\[(.*?)\]\]", text)
    if not m:
        return _md(text)
    return f"{_md(text[:m.start()])}**{_md(m.group(1))}**{_md(text[m.end():])}"


def _table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _f(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f}" if pct else f"{v:.4f}"


def _sentence(note: str) -> str:
    return note[0].upper() + note[1:]


def _by_support(per: dict) -> list[str]:
    """Labels, most frequent first (plain tasks)."""
    return sorted(per, key=lambda k: (-per[k]["support"], k))


def _header(m: dict, ent: bool) -> list[str]:
    L = [f"# Evaluation of `{m['model']}`", ""]
    L.append(f"Data: `{m['data']}` ({m['sentences']:,} sentences, {m['tokens']:,} tokens"
             + (f", {m['entities']['gold']:,} gold entities" if ent else "") + ").  ")
    L.append(f"Task: {m['task']}; model scheme: {m['scheme']}; gold scheme: {m['gold_scheme']}"
             + (f" (converted to {m['scheme']}, {m['gold_repairs']} tags repaired)" if ent else "") + ".  ")
    L.append(f"Prediction took {m['timing'].get('predict', 0):.1f} s, scoring {m['timing'].get('score', 0):.1f} s "
             f"({m['threads'] or '-'} CPU thread(s), device {m['device']}).")
    L.append("")
    if m["unseen_labels"]:
        L.append(f"> **Warning:** gold labels the model never saw in training (it cannot predict them): "
                 f"{_md(', '.join(m['unseen_labels']))}")
        L.append("")
    return L


def _entity_summary(m: dict) -> list[str]:
    c = m["conlleval"]
    L = _table(["", "precision", "recall", "F1"], [
        ["strict, micro (seqeval)", _f(m["precision"], True), _f(m["recall"], True), _f(m["f1"], True)],
        ["strict, macro (seqeval)", _f(m["macro"]["precision"], True), _f(m["macro"]["recall"], True),
         _f(m["macro"]["f1"], True)],
        ["conlleval, micro", _f(c["precision"], True), _f(c["recall"], True), _f(c["f1"], True)],
    ])
    conflicts = m["predictions_conll"]["conflicts"]
    return L + [
        "", f"Token accuracy: {_f(m['accuracy'], True)} % (model scheme); conlleval accuracy "
            f"{_f(c['accuracy'], True)} % (IOB2).  ",
        f"Entities: {m['entities']['gold']:,} gold, {m['entities']['predicted']:,} predicted, "
        f"{m['entities']['correct']:,} correct (strict); conlleval chunks: {c['found_gold']:,} gold, "
        f"{c['found_pred']:,} predicted, {c['correct']:,} correct.  ",
        f"Ill-formed predicted sequences: {m['ill_formed_predictions']:,}.", "",
        f"- **{_sentence(STRICT_NOTE)}.**",
        f"- **{_sentence(CONLLEVAL_NOTE)}.** The figures differ only where a sequence is ill formed.",
        "- `predictions.conll` holds token, gold and predicted tags in IOB2; a predicted chunk that "
        "strict mode rejects is written starting with `I-`, so seqeval (strict) and the conlleval script "
        "both reproduce the figures above from it"
        + (f" (except {conflicts} chunk(s) that one IOB2 line cannot show to both)" if conflicts else "") + ".",
        "",
    ]


def _label_summary(m: dict) -> list[str]:
    return _table(["", "value"], [
        ["token accuracy", f"{_f(m['accuracy'], True)} %"],
        ["macro precision", f"{_f(m['macro']['precision'], True)} %"],
        ["macro recall", f"{_f(m['macro']['recall'], True)} %"],
        ["macro F1", f"{_f(m['macro']['f1'], True)} %"],
    ]) + [""]


def _oov_section(m: dict, ent: bool) -> list[str]:
    o = m["oov"]
    L = ["### Out-of-vocabulary words", "", _md(o["definition"]) + ".", ""]
    L += _table(["words", "tokens", "share %", "accuracy %"], [
        [name.replace("_", " "), f"{o[key]['tokens']:,}", _f(o[key]["share"], True), _f(o[key]["accuracy"], True)]
        for key, name in (("in_vocabulary", "in vocabulary"), ("oov", "OOV (all)"),
                          ("pretrained_only", "OOV, pretrained only"), ("unknown", "OOV, unknown"))
    ])
    if ent and "entities" in o:
        e = o["entities"]
        L += ["", f"Recall of gold entities with an OOV word: {_f(e['with_oov']['recall'], True)} % "
                  f"({e['with_oov']['support']:,}); without: {_f(e['without_oov']['recall'], True)} % "
                  f"({e['without_oov']['support']:,})."]
    return L + [""]


def _per_type_section(m: dict, ent: bool) -> list[str]:
    per = m["per_type"]
    rows = []
    for k in sorted(per) if ent else _by_support(per):
        v = per[k]
        row = [_md(k), _f(v["precision"], True), _f(v["recall"], True), _f(v["f1"], True),
               f"{v['support']:,}", f"{v['predicted']:,}"]
        if ent:
            cv = m["conlleval"]["per_type"].get(k)
            row.append(_f(cv["f1"], True) if cv else "–")
        rows.append(row)
    L = ["## Per type" if ent else "## Per label", ""]
    L += _table(["type" if ent else "label", "precision", "recall", "F1", "support", "predicted"]
                + (["F1 (conlleval)"] if ent else []), rows)
    L.append("")
    if m.get("plots", {}).get("per_type"):
        L += [f"![F1 per type]({m['plots']['per_type']})", ""]
    return L


def _errors_section(m: dict, ent: bool) -> list[str]:
    err = m["errors"]
    L = ["## Errors", ""]
    if ent:
        d = err["definitions"]
        L += _table(["kind", "count", "meaning"], [
            [k, f"{err['counts'][k]:,}", _md(d[k])] for k in ERROR_KINDS
        ] + [["total", f"{err['counts']['total']:,}", ""]], align="lrl")
        L += ["", "Errors are counted on the strict entities: every wrong prediction is one of boundary, type, "
                  "boundary+type or spurious; missed counts the gold entities no prediction touches.", ""]
    else:
        L += [f"{err['counts']['total']:,} of {m['tokens']:,} tokens are tagged wrongly.", ""]
    return L


def _confusion_section(m: dict, ent: bool) -> list[str]:
    err = m["errors"]
    conf = err["confusion"]
    L = ["## Confusion", ""]
    if len(conf["labels"]) <= 20:
        head = ["gold \\ predicted"] + [_md(x) for x in conf["labels"]]
        L += _table(head, [[f"**{_md(lab)}**"] + [f"{x:,}" for x in row]
                           for lab, row in zip(conf["labels"], conf["matrix"], strict=True)])
        L.append("")
        if ent:
            L += [_md(err["definitions"]["confusion"]) + ".", ""]
    else:
        L += [f"{len(conf['labels'])} labels: the full matrix is in metrics.json and the plot; the most frequent "
              "confusions are listed below.", ""]
    if m.get("plots", {}).get("confusion"):
        L += [f"![Confusion matrix]({m['plots']['confusion']})", ""]
    return L


def _example_line(t: dict) -> str:
    return f"{t['example']['line']}" if t["example"]["line"] else f"#{t['example']['sentence'] + 1}"


def _top_errors_section(m: dict, ent: bool) -> list[str]:
    top = m["errors"]["top"][:TOP_ERRORS_REPORT]
    L = [f"## Top {len(top)} errors", ""]
    if not top:
        return L + ["No errors.", ""]
    rows = []
    for t in top:
        if ent:
            g = f"{_md(t['gold']['text'])} ({_md(t['gold']['type'])})" if t["gold"] else "–"
            p = f"{_md(t['predicted']['text'])} ({_md(t['predicted']['type'])})" if t["predicted"] else "–"
            rows.append([f"{t['count']:,}", t["kind"], g, p, _example_line(t), _md_context(t["example"]["text"])])
        else:
            rows.append([f"{t['count']:,}", _md(t["gold"]), _md(t["predicted"]), _md(", ".join(t["words"])),
                         _example_line(t), _md_context(t["example"]["text"])])
    head = ["count", "kind", "gold", "predicted"] if ent else ["count", "gold", "predicted", "words"]
    return L + _table(head + ["line", "example"], rows, align="rlllrl") + [""]


def _learning_curve_section(m: dict) -> list[str]:
    L = ["## Learning curve", ""]
    lc = m["learning_curve"]
    if m.get("plots", {}).get("learning_curve"):
        best = (f"; best dev {lc['metric']} {lc['best_dev']:.4f} at epoch {lc['best_epoch']}"
                if lc.get("best_epoch") else "")
        return L + [f"{lc['epochs']} epochs{best}.", "", f"![Learning curve]({m['plots']['learning_curve']})", ""]
    return L + [_md(lc.get("note", "no training log; learning curve skipped")) + ".", ""]


def render_report(m: dict) -> str:
    """report.md: summary, per type, errors, confusion, top errors, plots."""
    ent = m["task"] == "entity"
    L = _header(m, ent) + ["## Summary", ""]
    L += _entity_summary(m) if ent else _label_summary(m)
    L += _oov_section(m, ent)
    L += _per_type_section(m, ent)
    L += _errors_section(m, ent)
    L += _confusion_section(m, ent)
    L += _top_errors_section(m, ent)
    L += _learning_curve_section(m)
    return "\n".join(L)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _pct_row(name: str, d: dict) -> tuple[str, ...]:
    return (name, *(f"{100 * d[k]:.2f}" for k in ("precision", "recall", "f1")))


def format_summary(m: dict) -> str:
    """A readable summary table of ``metrics.json``."""
    ent = m["task"] == "entity"
    lines = [f"model {m['model']} ({m['task']}, {m['scheme']}) on {m['data']}: {m['sentences']:,} sentences, "
             f"{m['tokens']:,} tokens" + (f", {m['entities']['gold']:,} entities" if ent else "")]
    per = m["per_type"]
    if ent:
        rows = [("", "precision", "recall", "F1"), _pct_row("strict micro", m), _pct_row("strict macro", m["macro"]),
                _pct_row("conlleval", m["conlleval"]), ("", "", "", ""), ("type", "precision", "recall", "F1")]
        rows += [_pct_row(f"{t} ({v['support']})", v) for t, v in sorted(per.items())]
    else:
        rows = [("label", "precision", "recall", "F1")]
        rows += [_pct_row(f"{t} ({per[t]['support']})", per[t]) for t in _by_support(per)]
    lines += [""] + _columns(rows) + [""]
    o = m["oov"]
    acc = lambda b: "–" if b["accuracy"] is None else f"{100 * b['accuracy']:.2f}"  # noqa: E731
    lines.append(f"token accuracy {100 * m['accuracy']:.2f}; OOV {100 * o['oov']['share']:.1f}% of tokens, "
                 f"accuracy {acc(o['oov'])} (pretrained-only {acc(o['pretrained_only'])}, "
                 f"unknown {acc(o['unknown'])}), "
                 f"in-vocabulary {acc(o['in_vocabulary'])}")
    if ent:
        e = m["errors"]["counts"]
        lines.append("errors: " + ", ".join(f"{k} {e[k]:,}" for k in ERROR_KINDS)
                     + f"; ill-formed predicted sequences {m['ill_formed_predictions']:,}")
        lines.append("strict = seqeval mode='strict' (headline); "
                     "conlleval = conlleval chunk counting (repairs ill-formed tags)")
    else:
        lines.append(f"errors: {m['errors']['counts']['total']:,} tokens")
    if m["unseen_labels"]:
        lines.append(f"gold labels never seen in training: {len(m['unseen_labels'])} (unseen_labels in metrics.json)")
    return "\n".join(lines)
