"""Output of ``tagger annotate``: items and their predictions as JSON lines or CoNLL bytes.

CoNLL/CoNLL-U input written as CoNLL keeps every input byte and adds the prediction (a last
column, or a CoNLL-U field); other inputs are written as ``token tag`` lines. JSON lines hold
one object per sentence (per record for JSONL input) with tokens, tags, entities and, for raw
text, character offsets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tagger.commands.annotate.items import Item
from tagger.commands.annotate.options import AnnotateOptions, conllu_target
from tagger.formats.jsonl import JsonRecord
from tagger.formats.text import TextSentence
from tagger.predict import Entity, Prediction


def _entity_json(e: Entity, text: str) -> dict:
    return {"start": e.start, "end": e.end, "label": e.label, "text": text, "score": round(e.score, 6),
            "token_start": e.start, "token_end": e.end}


def _char_entity_json(e: Entity, offsets: Sequence[tuple[int, int]], text: str, base: int) -> dict:
    cs, ce = offsets[e.start][0], offsets[e.end - 1][1]
    return {"start": cs, "end": ce, "label": e.label, "text": text[cs - base : ce - base],
            "score": round(e.score, 6), "token_start": e.start, "token_end": e.end}


def _nbest_json(p: Prediction) -> list[dict]:
    return [{"tags": t, "prob": round(pr, 6)} for t, pr in p.nbest]


def dumps(obj) -> bytes:
    """One JSON line (UTF-8; ASCII escapes if the object holds lone surrogates)."""
    try:
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (from \ud800-style JSON escapes): keep them escaped
        return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


def _conll_token(t: str) -> str:
    return "_".join(t.split()) if (" " in t or "\t" in t or not t) else t


def _conll_lines(tokens: Sequence[str], tags: Sequence[str]) -> str:
    return "".join(f"{_conll_token(t)} {g}\n" for t, g in zip(tokens, tags, strict=True))


class Renderer:
    """Turns items and their predictions into output bytes for one (input, output) format pair."""

    def __init__(self, input_format: str, output_format: str, options: AnnotateOptions, encoding: str) -> None:
        self.fin = input_format
        self.fout = output_format
        self.nbest = options.nbest > 0
        self.encoding = encoding
        self.col, self.key = conllu_target(options.conllu_field)
        self._tag_bytes: dict[str, bytes] = {}
        self.render = getattr(self, f"_{input_format}_{output_format}")

    def _tb(self, tag: str) -> bytes:
        b = self._tag_bytes.get(tag)
        if b is None:
            b = self._tag_bytes[tag] = tag.encode(self.encoding, "replace")
        return b

    def _error(self, item: Item) -> bytes:
        if self.fout == "jsonl":
            return dumps({"line": item.line, "error": item.error, "input": item.data})
        return f"# line {item.line}: error: {item.error}\n\n".encode("utf-8", "replace")

    # ---- text
    def _text_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        s: TextSentence = item.data
        p = preds[0]
        base = s.start
        rec = {"line": s.line, "start": base, "end": s.end, "text": s.text, "tokens": s.tokens,
               "offsets": [list(o) for o in s.offsets], "tags": p.tags,
               "entities": [_char_entity_json(e, s.offsets, s.text, base) for e in p.entities]}
        if self.nbest:
            rec["nbest"] = _nbest_json(p)
        return dumps(rec)

    def _text_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        return (_conll_lines(item.data.tokens, preds[0].tags) + "\n").encode("utf-8", "replace")

    def _token_record(self, line: int, tokens: list[str], p: Prediction) -> bytes:
        rec = {"line": line, "tokens": tokens, "tags": p.tags,
               "entities": [_entity_json(e, " ".join(tokens[e.start:e.end])) for e in p.entities]}
        if self.nbest:
            rec["nbest"] = _nbest_json(p)
        return dumps(rec)

    # ---- tokens
    def _tokens_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        return self._token_record(item.line, item.data, preds[0] if preds else Prediction([], [], []))

    def _tokens_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        if not preds:
            return b"\n"
        return (_conll_lines(item.data, preds[0].tags) + "\n").encode("utf-8", "replace")

    # ---- conll / conllu
    def _block_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        return self._token_record(item.line, item.sents[0], preds[0]) if preds else b""

    _conll_jsonl = _block_jsonl
    _conllu_jsonl = _block_jsonl

    def _conll_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        tags = preds[0].tags if preds else []
        parts = []
        tb = self._tb
        for raw, eol, i in item.data.rows:
            if i < 0:
                parts.append(raw + eol)
            else:
                sep = b"\t" if (b"\t" in raw and b" " not in raw.strip()) else b" "
                parts.append(raw + sep + tb(tags[i]) + eol)
        return b"".join(parts)

    def _conllu_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        tags = preds[0].tags if preds else []
        parts = []
        col, key = self.col, self.key
        for raw, eol, i in item.data.rows:
            if i < 0:
                parts.append(raw + eol)
                continue
            cols = raw.split(b"\t")
            tag = self._tb(tags[i])
            if key is None:
                cols[col] = tag
            else:
                kb = key.encode(self.encoding)
                old = [] if cols[9] in (b"_", b"") else [x for x in cols[9].split(b"|") if x.split(b"=", 1)[0] != kb]
                cols[9] = b"|".join([*old, kb + b"=" + tag])
            parts.append(b"\t".join(cols) + eol)
        return b"".join(parts)

    # ---- jsonl
    def _jsonl_jsonl(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        return dumps(self.record(item.data, preds))

    def record(self, r: JsonRecord, preds: list[Prediction]) -> dict:
        """The output object of a JSONL record (not an error record) and its sentences' predictions."""
        rec = dict(r.obj)
        tokens = [t for p in preds for t in p.tokens] if r.text is not None else rec["tokens"]
        tags: list[str] = []
        ents = []
        nbest_rows = []
        for k, p in enumerate(preds):
            off = r.bounds[k]
            tags.extend(p.tags)
            for e in p.entities:
                e2 = Entity(e.label, e.start + off, e.end + off, e.score)
                if r.text is not None:
                    ents.append(_char_entity_json(e2, r.offsets, r.text, 0))
                else:
                    ents.append(_entity_json(e2, " ".join(tokens[e2.start:e2.end])))
            if self.nbest:
                nbest_rows.append(_nbest_json(p))
        rec["tokens"] = tokens
        rec["tags"] = tags
        rec["entities"] = ents
        if r.text is not None:
            rec["offsets"] = [list(o) for o in r.offsets]
            rec["sentences"] = [[r.bounds[k], r.bounds[k + 1]] for k in range(len(r.bounds) - 1)]
        if self.nbest:
            # one n-best list per sentence (a tokens record is a single sentence)
            rec["nbest"] = nbest_rows[0] if (r.text is None and nbest_rows) else nbest_rows
        return rec

    def _jsonl_conll(self, item: Item, preds: list[Prediction]) -> bytes:
        if item.error is not None:
            return self._error(item)
        if not preds:
            return b"\n"
        return "".join(_conll_lines(p.tokens, p.tags) + "\n" for p in preds).encode("utf-8", "replace")


def output_suffix(input_format: str, output_format: str) -> str:
    """The suffix added to an input's name: ``.conll`` (``.conllu`` for CoNLL-U input) or ``.jsonl``."""
    if output_format == "conll":
        return ".conllu" if input_format == "conllu" else ".conll"
    return ".jsonl"


def resolve_output_format(input_format: str, output_format: str) -> str:
    """``auto`` → ``conll`` for CoNLL/CoNLL-U input, ``jsonl`` otherwise."""
    if output_format != "auto":
        return output_format
    return "conll" if input_format in ("conll", "conllu") else "jsonl"
