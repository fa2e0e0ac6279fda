"""Tests for batch annotation (tagger.commands.annotate, tagger.formats.text, ``tagger annotate``)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagger import schemes
from tagger.cli import main
from tagger.commands.annotate import (
    AnnotateOptions,
    Engine,
    annotate_paths,
    annotate_stream,
    annotate_text,
)
from tagger.commands.annotate.items import read_items
from tagger.commands.annotate.run import SNIFFED
from tagger.errors import TaggerError
from tagger.formats.conll import iter_conll
from tagger.formats.detect import sniff
from tagger.formats.text import iter_pieces, iter_text_sentences, split_sentences, tokenize

OPTS = dict(progress=False, threads=1)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def predictor(model_dir):
    import tagger

    return tagger.load(model_dir)


def run_cli(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def split_keep_ends(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def line_of(text: str, pos: int) -> int:
    """1-based line of a character offset (\\n, \\r\\n and a lone \\r end lines)."""
    return text.count("\n", 0, pos) + text.count("\r", 0, pos) - text.count("\r\n", 0, pos) + 1


def iob2_tags(predictor) -> set[str]:
    """The tags annotate writes by default: the model's entity types in IOB2."""
    types = {t[2:] for t in predictor.tag_names if t[:2] in ("B-", "I-", "E-", "S-")}
    return {"O"} | {f"{p}-{t}" for t in types for p in "BI"}


def strip_eol(line: bytes) -> tuple[bytes, bytes]:
    for eol in (b"\r\n", b"\n", b"\r"):
        if line.endswith(eol):
            return line[: -len(eol)], eol
    return line, b""


# ---------------------------------------------------------------------------- tokenisation


def test_tokenize_conll_style():
    text = ("The U.S. Army can't stop German-born Mr. J. O'Neill at 3 p.m. in Norway's capital "
            "(e.g. Oslo), said McDonald's Inc. \"Yes.\"")
    assert tokenize(text) == [
        "The", "U.S.", "Army", "ca", "n't", "stop", "German-born", "Mr.", "J.", "O'Neill", "at", "3",
        "p.m.", "in", "Norway", "'s", "capital", "(", "e.g.", "Oslo", ")", ",", "said", "McDonald", "'s",
        "Inc.", '"', "Yes", ".", '"',
    ]


def test_split_sentences_offsets():
    text = "Hello there.  Mr. Smith went to Washington. He left!"
    sents = split_sentences(text)
    assert len(sents) == 3
    assert [text[a:b] for a, b in sents[1]] == ["Mr.", "Smith", "went", "to", "Washington", "."]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(["Paris", "U.S.", "can't", "é", "東京", "😀", ",", ".", "-", "O'Neill", "\r\n", "\n",
                         "\n\n", " ", "  ", "well-known", "3.5", "(x)", "Mr.", "\ufeff", "\t", "Bank"]),
        max_size=60,
    ),
    st.integers(min_value=5, max_value=200),
    st.sampled_from([2, 7, 1 << 16]),
)
def test_text_stream_covers_every_character_once(pieces, max_chars, piece_size):
    text = "".join(pieces)
    lines = list(iter_pieces(io.StringIO(text, newline=""), piece_size))
    assert "".join(lines) == text
    covered = []
    for s in iter_text_sentences(lines, max_chars=max_chars):
        assert s.tokens
        for tok, (a, b) in zip(s.tokens, s.offsets):
            assert text[a:b] == tok
            covered.extend(range(a, b))
        assert s.line == line_of(text, s.start)
    assert sorted(covered) == covered, "tokens overlap or are out of order"
    nonspace = [i for i, c in enumerate(text) if not (c.isspace() or c == "\ufeff")]
    assert set(nonspace) <= set(covered)


def test_sniff_format():
    def sniff_format(head: bytes, name: str = "") -> str:
        return sniff(head, name, SNIFFED)

    assert sniff_format(b"", "a.conllu") == "conllu"
    assert sniff_format(b'{"text": "x"}\n') == "jsonl"
    assert sniff_format(b"-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n") == "conll"
    assert sniff_format(b"# sent_id = 1\n1\tHi\t_\t_\t_\t_\t_\t_\t_\t_\n") == "conllu"
    assert sniff_format(b"The cat sat. It was happy, very happy.\n") == "text"
    assert sniff_format(b"The cat sat .\nIt was happy , very happy .\n") == "tokens"
    assert sniff_format(b"Hello world.\n\nBye now.\n", "a.txt") == "text"  # the suffix decides


# ---------------------------------------------------------------------------- prediction


def reference_predictions(predictor, sents, nbest):
    """Per sentence, unbatched: Predictor's model forward and a float64 copy of its CRF."""
    import copy

    import torch

    from tagger.features import collate

    crf64 = copy.deepcopy(predictor.model.crf).double()
    itos = predictor.labels.itos
    out = []
    with torch.no_grad():
        for s in sents:
            batch = collate([predictor.featurizer.encode(s)], [0])
            em = predictor.model.emissions(batch).double()
            mask = batch.mask
            path = crf64.decode(em, mask)[0]
            tags = [itos[t] for t in path[0].tolist()]
            scores = crf64.marginals(em, mask)[0].gather(1, path[0, :, None]).squeeze(1).tolist()
            ents = []
            for sp in schemes.to_spans(tags, predictor.scheme):
                lp = crf64.span_log_prob(em, mask, torch.tensor([0]), torch.tensor([sp.start]),
                                         torch.tensor([sp.end]), path[:, sp.start : sp.end])
                ents.append((sp.label, sp.start, sp.end, lp.exp().item()))
            kp, klp = crf64.nbest(em, mask, nbest, normalize=True)
            nb = [([itos[t] for t in kp[0, q].tolist()], klp[0, q].exp().item())
                  for q in range(nbest) if torch.isfinite(klp[0, q])]
            out.append((tags, scores, ents, nb))
    return out


def assert_matches_reference(preds, ref, token_scores=True):
    for p, (tags, scores, ents, nb) in zip(preds, ref):
        assert p.tags == tags
        if token_scores:
            assert p.scores == pytest.approx(scores, abs=1e-5)
        else:
            assert p.scores == []
        assert [(e.label, e.start, e.end) for e in p.entities] == [e[:3] for e in ents]
        for e, want in zip(p.entities, ents):
            assert e.score == pytest.approx(min(1.0, want[3]), abs=1e-5)
        assert [t for t, _ in p.nbest] == [t for t, _ in nb]
        for (_, a), (_, b) in zip(p.nbest, nb):
            assert a == pytest.approx(b, abs=1e-5)


def test_predict_matches_unbatched_float64_reference(predictor):
    """Batched, length-sorted, cached-feature prediction = the model's plain forward + a float64 CRF."""
    sents = [s.tokens for s in iter_conll(SAMPLE / "test.conll", label_column=None)]
    sents = [sents[0], [], *sents[1:], ["x" * 200, "Paris"]]  # an empty sentence, an over-long token
    ref = reference_predictions(predictor, [s for s in sents if s], nbest=2)
    ref.insert(1, ([], [], [], []))
    for batch_size in (1, 16, 1000):
        preds = predictor.predict(sents, batch_size=batch_size, nbest=2)
        assert len(preds) == len(sents) and [p.tokens for p in preds] == [list(s) for s in sents]
        assert_matches_reference(preds, ref)
    assert len(predictor.cache) > 0
    assert_matches_reference(predictor.predict(sents, batch_size=16, nbest=2, token_scores=False), ref,
                             token_scores=False)
    plain = predictor.predict(sents, batch_size=16, confidences=False)
    assert [p.tags for p in plain] == [r[0] for r in ref]
    assert all(e.score == 1.0 for p in plain for e in p.entities)


def test_token_cache_follows_weight_changes(model_dir):
    import torch

    import tagger

    p = tagger.load(model_dir)
    sents = [["Peter", "Blackburn", "visited", "Paris", "."], ["EU", "rejects", "German", "call"]]
    p.predict(sents)
    with torch.no_grad():  # in place: the cached character-encoder outputs are stale now
        for w in p.model.char_encoder.parameters():
            w.mul_(-3.0)
    assert_matches_reference(p.predict(sents, nbest=2), reference_predictions(p, sents, nbest=2))


# ---------------------------------------------------------------------------- CoNLL / CoNLL-U


CONLL_CRLF = (
    b"-DOCSTART- -X- -X- O\r\n\r\n"
    b"EU NNP I-NP I-ORG\r\nrejects VBZ I-VP O\r\nGerman JJ I-NP I-MISC\r\ncall NN I-NP O\r\n. . O O\r\n\r\n"
    b"Peter NNP I-NP I-PER\r\nBlackburn NNP I-NP I-PER\r\n\r\n"
    b"-DOCSTART- -X- -X- O\r\n\r\n"
    b"BRUSSELS NNP I-NP I-LOC\r\n1996-08-22 CD I-NP O"  # no final line break
)


@pytest.mark.parametrize("data", [CONLL_CRLF, "sample"])
def test_conll_keeps_every_byte(predictor, tmp_path, data):
    src = tmp_path / "in.conll"
    src.write_bytes((SAMPLE / "test.conll").read_bytes() if data == "sample" else data)
    out = tmp_path / "out.conll"
    summary = annotate_paths(predictor, [src], out, AnnotateOptions(**OPTS))
    assert summary.ok and summary.files == 1
    tags = iob2_tags(predictor)
    lines_in = split_keep_ends(src.read_bytes())
    lines_out = split_keep_ends(out.read_bytes())
    assert len(lines_in) == len(lines_out)
    tokens = 0
    for a, b in zip(lines_in, lines_out):
        content, eol = strip_eol(a)
        if not content.strip() or content.startswith(b"-DOCSTART-"):
            assert b == a
            continue
        out_content, out_eol = strip_eol(b)
        assert out_eol == eol
        assert out_content.startswith(content + b" ")
        assert out_content[len(content) + 1:].decode() in tags
        tokens += 1
    assert tokens == summary.tokens


def test_conll_tab_separated_and_jsonl_output(predictor, tmp_path):
    src = tmp_path / "tab.conll"
    src.write_bytes(b"EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n")
    out = tmp_path / "tab.out"
    annotate_paths(predictor, [src], out, AnnotateOptions(**OPTS))
    for a, b in zip(src.read_bytes().split(b"\n"), out.read_bytes().split(b"\n")):
        assert b == a or (b.startswith(a + b"\t") and b.count(b"\t") == a.count(b"\t") + 1)
    out2 = tmp_path / "tab.jsonl"
    annotate_paths(predictor, [src], out2, AnnotateOptions(output_format="jsonl", **OPTS))
    recs = jsonl(out2)
    assert [r["tokens"] for r in recs] == [["EU", "rejects"], ["Peter"]]
    assert [r["line"] for r in recs] == [1, 4]


CONLLU = (
    "# newdoc id = d1\n# sent_id = 1\n# text = Peter lives in Paris.\n"
    "1\tPeter\tPeter\tPROPN\tNNP\t_\t2\tnsubj\t_\t_\n"
    "2\tlives\tlive\tVERB\tVBZ\t_\t0\troot\t_\t_\n"
    "3-4\tin\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "3\tin\tin\tADP\tIN\t_\t4\tcase\t_\t_\n"
    "4\tParis\tParis\tPROPN\tNNP\t_\t2\tobl\t_\tSpaceAfter=No\n"
    "5\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\tNER=old\n"
    "\n"
)


@pytest.mark.parametrize("field_", ["misc", "misc:ENT", "upos", "xpos"])
def test_conllu_field(predictor, tmp_path, field_):
    src = tmp_path / "in.conllu"
    src.write_text(CONLLU, encoding="utf-8")
    out = tmp_path / "out.conllu"
    summary = annotate_paths(predictor, [src], out, AnnotateOptions(conllu_field=field_, **OPTS))
    assert summary.ok and summary.tokens == 5
    tags = iob2_tags(predictor)
    for a, b in zip(CONLLU.split("\n"), out.read_text(encoding="utf-8").split("\n")):
        ca, cb = a.split("\t"), b.split("\t")
        if len(ca) != 10 or "-" in ca[0]:
            assert a == b
            continue
        col = {"upos": 3, "xpos": 4}.get(field_, 9)
        assert ca[:col] + ca[col + 1:] == cb[:col] + cb[col + 1:]
        if col != 9:
            assert cb[col] in tags
            continue
        key = field_.partition(":")[2] or "NER"
        items = cb[9].split("|")
        assert items[-1].split("=")[0] == key and items[-1].split("=")[1] in tags
        kept = [] if ca[9] == "_" else [x for x in ca[9].split("|") if not x.startswith(key + "=")]
        assert items[:-1] == kept



def swap_first_columns(data: bytes) -> bytes:
    """CoNLL lines ``TOKEN POS ...`` → ``POS TOKEN ...`` (other lines unchanged)."""
    out = []
    for line in data.splitlines(keepends=True):
        cols = line.split(b" ")
        if len(cols) >= 2 and not line.startswith(b"-DOCSTART-"):
            cols[0], cols[1] = cols[1], cols[0]
        out.append(b" ".join(cols))
    return b"".join(out)


def test_conll_tokens_from_the_model_token_column(tmp_path):
    """A model trained on CoNLL with the tokens in column 1 tags column 1 of CoNLL input, as evaluate reads it."""
    import tagger
    from tagger.commands.prepare import PrepareOptions, prepare
    from tagger.commands.train import TrainOptions, train

    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.conll").write_bytes(swap_first_columns((SAMPLE / f"{split}.conll").read_bytes()))
    prepare(PrepareOptions(train=str(tmp_path / "train.conll"), dev=str(tmp_path / "dev.conll"), token_column=1,
                           embeddings="none", embedding_dim=16), tmp_path / "prepared")
    train(tmp_path / "prepared", tmp_path / "model",
          TrainOptions(epochs=2, hidden=16, batch_size=16, device="cpu", threads=1, patience=2))
    predictor = tagger.load(tmp_path / "model")
    assert predictor.config["data"]["token_column"] == 1
    src = tmp_path / "test.conll"
    words = [s.tokens for s in iter_conll(SAMPLE / "test.conll", label_column=None)]
    as_jsonl = tmp_path / "test.jsonl"
    assert annotate_paths(predictor, [src], as_jsonl, AnnotateOptions(output_format="jsonl", **OPTS)).ok
    recs = jsonl(as_jsonl)
    assert [r["tokens"] for r in recs] == words  # the words, not the POS tags of column 0
    # the same tags as for the words given as tokenised text
    tok = tmp_path / "test.tok"
    tok.write_text("".join(" ".join(w) + "\n" for w in words), encoding="utf-8")
    annotate_paths(predictor, [tok], tmp_path / "tok.jsonl", AnnotateOptions(**OPTS))
    assert [r["tags"] for r in recs] == [r["tags"] for r in jsonl(tmp_path / "tok.jsonl")]
    # CoNLL output: the input lines plus the tag of that line's word
    as_conll = tmp_path / "test.out.conll"
    assert annotate_paths(predictor, [src], as_conll, AnnotateOptions(**OPTS)).ok
    token_lines = [ln for ln in as_conll.read_text(encoding="utf-8").splitlines()
                   if ln.strip() and not ln.startswith("-DOCSTART-")]
    assert [ln.split()[-1] for ln in token_lines] == [t for r in recs for t in r["tags"]]
    assert [ln.split()[1] for ln in token_lines] == [w for s in words for w in s]
    # an explicit token column wins over the model's
    first = annotate_paths(predictor, [src], tmp_path / "pos.jsonl",
                           AnnotateOptions(output_format="jsonl", token_column=0, **OPTS))
    assert first.ok and jsonl(tmp_path / "pos.jsonl")[0]["tokens"] != words[0]


# ---------------------------------------------------------------------------- raw text


UNICODE_TEXT = (
    "\ufeffJosé Müller visited Zürich and 東京 with Peter Blackburn 😀.\r\n"
    "The U.S. team didn't\r\nwin in Paris.\r\n\r\n"
    "Café owners in São Paulo said on Monday that Norway's EU plan was \"fair\" 🎉 .\r\n"
    "\r\n\r\n  \r\nLast paragraph with Berlin\rand a lone CR."
)


def test_text_offsets_slice_the_original(predictor, tmp_path):
    src = tmp_path / "doc.txt"
    src.write_bytes(UNICODE_TEXT.encode("utf-8"))
    out = tmp_path / "doc.jsonl"
    summary = annotate_paths(predictor, [src], out, AnnotateOptions(**OPTS))
    assert summary.ok
    original = open(src, encoding="utf-8", newline="").read()
    assert original == UNICODE_TEXT
    recs = jsonl(out)
    n_entities = 0
    for r in recs:
        assert original[r["start"]:r["end"]] == r["text"]
        assert len(r["tokens"]) == len(r["tags"]) == len(r["offsets"])
        for tok, (a, b) in zip(r["tokens"], r["offsets"]):
            assert original[a:b] == tok
        for e in r["entities"]:
            assert original[e["start"]:e["end"]] == e["text"]
            assert e["start"] == r["offsets"][e["token_start"]][0]
            assert e["end"] == r["offsets"][e["token_end"] - 1][1]
            assert 0.0 <= e["score"] <= 1.0
            n_entities += 1
        assert r["line"] == line_of(original, r["start"])
    tokens = [t for r in recs for t in r["tokens"]]
    for word in ("José", "Müller", "Zürich", "東京", "😀", "U.S.", "n't", "São", "'s", "🎉", "CR"):
        assert word in tokens
    assert recs[0]["line"] == 1 and recs[-1]["tokens"][-1] == "."
    assert n_entities > 0


def test_text_to_conll_and_annotate_text(predictor, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("Peter lives in Paris. He likes it.\n", encoding="utf-8")
    out = tmp_path / "a.conll"
    annotate_paths(predictor, [src], out, AnnotateOptions(output_format="conll", **OPTS))
    blocks = out.read_text().strip("\n").split("\n\n")
    assert [[ln.split()[0] for ln in b.split("\n")] for b in blocks] == [
        ["Peter", "lives", "in", "Paris", "."], ["He", "likes", "it", "."]]
    recs = annotate_text(predictor, "Peter lives in Paris. He likes it.", AnnotateOptions(**OPTS))
    assert [r["tokens"] for r in recs] == [["Peter", "lives", "in", "Paris", "."], ["He", "likes", "it", "."]]


# ---------------------------------------------------------------------------- tokens / jsonl


def test_tokens_format_empty_lines_kept(predictor, tmp_path):
    src = tmp_path / "s.tok"
    src.write_text("Peter lives in Paris .\n\nEU rejects it\n", encoding="utf-8")
    out = tmp_path / "s.jsonl"
    annotate_paths(predictor, [src], out, AnnotateOptions(**OPTS))
    recs = jsonl(out)
    assert [r["tokens"] for r in recs] == [["Peter", "lives", "in", "Paris", "."], [], ["EU", "rejects", "it"]]
    assert recs[1] == {"line": 2, "tokens": [], "tags": [], "entities": []}
    for r in recs:
        for e in r["entities"]:
            assert e["text"] == " ".join(r["tokens"][e["start"]:e["end"]])
    out2 = tmp_path / "s.conll"
    annotate_paths(predictor, [src], out2, AnnotateOptions(output_format="conll", **OPTS))
    expected = "".join(
        "".join(f"{t} {g}\n" for t, g in zip(r["tokens"], r["tags"])) + "\n" for r in recs
    )
    assert out2.read_text() == expected  # the empty line stays one blank line


def test_jsonl_invalid_records_reported_not_dropped(model_dir, tmp_path):
    src = tmp_path / "r.jsonl"
    src.write_bytes(
        b'{"id": 1, "text": "Peter lives in Paris. He left.", "meta": {"k": [1, 2]}}\n'
        b'{"id": 2, "text": broken\n'
        b"\n"
        b'{"id": 3, "tokens": ["EU", "rejects", "German", "call"]}\n'
        b"[1, 2]\n"
        b'{"id": 5}\n'
        b'{"id": 6, "text": "caf\xff"}\n'
        b'{"id": 7, "text": ""}\n'
    )
    out = tmp_path / "r.out.jsonl"
    res = run_cli("annotate", model_dir, src, "--out", out, "-q")
    assert res.exit_code == 1
    assert "5 record(s) with errors" not in res.output and "4 record(s) with errors" in res.output
    recs = jsonl(out)
    assert len(recs) == 7  # every non-blank line, in order
    assert recs[0]["id"] == 1 and recs[0]["meta"] == {"k": [1, 2]} and recs[0]["sentences"] == [[0, 5], [5, 8]]
    assert "error" not in recs[0]
    text = "Peter lives in Paris. He left."
    for tok, (a, b) in zip(recs[0]["tokens"], recs[0]["offsets"]):
        assert text[a:b] == tok
    assert recs[1]["line"] == 2 and recs[1]["error"].startswith("invalid JSON") and "broken" in recs[1]["input"]
    assert recs[2]["id"] == 3 and len(recs[2]["tags"]) == 4
    assert [r["line"] for r in recs[3:6]] == [5, 6, 7] and all("error" in r for r in recs[3:6])
    assert recs[6] == {"id": 7, "text": "", "tokens": [], "tags": [], "entities": [], "offsets": [], "sentences": []}


def test_overlong_sentence_split_and_rejoined(predictor, tmp_path):
    words = "Peter Blackburn of the EU visited Paris and Berlin on Monday".split()
    long = (words * 3)[:31]
    src = tmp_path / "long.tok"
    src.write_text(" ".join(long) + "\n" + " ".join(words) + "\n", encoding="utf-8")
    out = tmp_path / "long.jsonl"
    summary = annotate_paths(predictor, [src], out, AnnotateOptions(max_length=12, **OPTS))
    assert summary.ok and summary.split == 1 and summary.records == 2
    recs = jsonl(out)
    assert len(recs) == 2 and recs[0]["tokens"] == long and len(recs[0]["tags"]) == 31
    spans = schemes.to_spans(recs[0]["tags"], "iob2")  # the default output scheme
    assert [(e["label"], e["start"], e["end"]) for e in recs[0]["entities"]] == [tuple(s) for s in spans]
    full = annotate_paths(predictor, [src], tmp_path / "full.jsonl", AnnotateOptions(**OPTS))
    assert full.split == 0 and jsonl(tmp_path / "full.jsonl")[1]["tags"] == recs[1]["tags"]


# ---------------------------------------------------------------------------- options


def test_nbest_and_scheme(predictor, tmp_path):
    src = tmp_path / "n.tok"
    src.write_text("Peter Blackburn visited Paris .\nEU rejects German call .\n", encoding="utf-8")
    out = tmp_path / "n.jsonl"
    annotate_paths(predictor, [src], out, AnnotateOptions(nbest=3, scheme="iob2", **OPTS))
    for r in jsonl(out):
        assert 1 <= len(r["nbest"]) <= 3
        probs = [x["prob"] for x in r["nbest"]]
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
        assert r["nbest"][0]["tags"] == r["tags"]
        for tags in [r["tags"]] + [x["tags"] for x in r["nbest"]]:
            assert not any(t[:2] in ("S-", "E-") for t in tags)


def test_workers_keep_input_order(predictor, tmp_path):
    sents = [s.tokens for s in iter_conll(SAMPLE / "dev.conll", label_column=None)]
    src = tmp_path / "many.tok"
    src.write_text("".join(" ".join(s) + "\n" for s in sents), encoding="utf-8")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    annotate_paths(predictor, [src], one, AnnotateOptions(chunk_size=16, batch_size=8, **OPTS))
    s2 = annotate_paths(predictor, [src], two, AnnotateOptions(chunk_size=16, batch_size=8, workers=2, **OPTS))
    assert s2.ok and s2.records == len(sents)
    assert [r["tokens"] for r in jsonl(two)] == sents

    def rounded(recs):
        for r in recs:
            for e in r["entities"]:
                e["score"] = round(e["score"], 3)
        return recs

    assert rounded(jsonl(one)) == rounded(jsonl(two))


def test_directory_mirror_glob_and_resume(predictor, tmp_path):
    src = tmp_path / "corpus"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("Peter lives in Paris.\n", encoding="utf-8")
    (src / "sub" / "b.txt").write_text("EU rejects German call.\n", encoding="utf-8")
    (src / "sub" / "deeper" / "c.txt").write_text("Berlin.\n", encoding="utf-8")
    (src / "sub" / "skip.conll").write_text("EU B-ORG\n", encoding="utf-8")
    (src / ".hidden.txt").write_text("x\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = annotate_paths(predictor, [src], out, AnnotateOptions(glob="*.txt", **OPTS))
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == ["a.txt.jsonl", "sub/b.txt.jsonl", "sub/deeper/c.txt.jsonl"]
    assert summary.files == 3 and summary.ok
    # --resume skips finished outputs (left untouched) and redoes missing ones
    (out / "sub" / "b.txt.jsonl").unlink()
    marker = (out / "a.txt.jsonl").read_bytes() + b"#"
    (out / "a.txt.jsonl").write_bytes(marker)
    again = annotate_paths(predictor, [src], out, AnnotateOptions(glob="*.txt", resume=True, **OPTS))
    assert again.files == 1 and again.files_skipped == 2
    assert (out / "a.txt.jsonl").read_bytes() == marker
    assert (out / "sub" / "b.txt.jsonl").exists()
    # several inputs: one subdirectory per input directory, files by name
    out2 = tmp_path / "out2"
    annotate_paths(predictor, [src / "sub", src / "a.txt"], out2, AnnotateOptions(glob="*.txt", **OPTS))
    assert sorted(p.relative_to(out2).as_posix() for p in out2.rglob("*") if p.is_file()) == [
        "a.txt.jsonl", "sub/b.txt.jsonl", "sub/deeper/c.txt.jsonl"]


def test_stdin_to_stdout_and_to_file(model_dir, tmp_path):
    res = run_cli("annotate", model_dir, "-", "--out", "-", "--input-format", "tokens", "-q",
                  input="Peter lives in Paris .\nEU rejects it .\n")
    assert res.exit_code == 0
    recs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["tokens"][0] for r in recs] == ["Peter", "EU"]
    res = run_cli("annotate", model_dir, "-", "--out", tmp_path / "o.jsonl", "-q",
                  input='{"text": "Peter lives in Paris."}\n')
    assert res.exit_code == 0 and jsonl(tmp_path / "o.jsonl")[0]["tokens"][0] == "Peter"
    buf = io.BytesIO()
    annotate_stream(model_dir, io.BytesIO(b"EU B-ORG\r\nrejects O\r\n"), buf,
                    AnnotateOptions(input_format="conll", **OPTS))
    assert buf.getvalue().split(b"\r\n")[0].startswith(b"EU B-ORG ")


def test_interrupted_run_leaves_no_finished_file(predictor, tmp_path, monkeypatch):
    src = tmp_path / "big.tok"
    src.write_text("Peter lives in Paris .\n" * 50, encoding="utf-8")
    out = tmp_path / "res" / "big.jsonl"
    calls = {"n": 0}
    real = Engine.predict

    def flaky(self, sentences):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the file
        return real(self, sentences)

    monkeypatch.setattr(Engine, "predict", flaky)
    with pytest.raises(KeyboardInterrupt):
        annotate_paths(predictor, [src], out, AnnotateOptions(chunk_size=10, **OPTS))
    assert calls["n"] == 3
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # the partial temporary file is gone too
    monkeypatch.setattr(Engine, "predict", real)
    assert annotate_paths(predictor, [src], out, AnnotateOptions(chunk_size=10, **OPTS)).records == 50
    assert len(jsonl(out)) == 50


def test_failed_file_is_reported_and_others_continue(predictor, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bad.conllu").write_text("1\tonly three\tfields\n", encoding="utf-8")
    (src / "good.txt").write_text("Peter lives in Paris.\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = annotate_paths(predictor, [src], out, AnnotateOptions(**OPTS))
    assert summary.files == 1 and summary.files_failed == 1 and summary.exit_code == 1
    assert "bad.conllu:1" in summary.format()
    assert sorted(p.name for p in out.iterdir()) == ["good.txt.jsonl"]


def test_cli_usage_errors_exit_2(model_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("Hello.\n", encoding="utf-8")
    res = run_cli("annotate", model_dir, src, "--out", src / "out")
    assert res.exit_code == 2 and "inside the input directory" in res.output
    res = run_cli("annotate", model_dir, tmp_path / "missing.txt", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "error:" in res.output
    res = run_cli("annotate", model_dir, src / "a.txt", "--out", tmp_path / "o", "--input-format", "xml")
    assert res.exit_code == 2
    res = run_cli("annotate", model_dir, src / "a.txt", "--out", tmp_path / "o", "--nbest", "-1")
    assert res.exit_code == 2 and "--nbest" in res.output
    res = run_cli("annotate", model_dir, src / "a.txt", "--out", tmp_path / "o", "--conllu-field", "lemma")
    assert res.exit_code == 2 and "--conllu-field" in res.output
    res = run_cli("annotate", model_dir, src, "--out", "-")
    assert res.exit_code == 2 and "stdout" in res.output
    res = run_cli("annotate", model_dir, src / "a.txt", "--out", tmp_path / "ok.jsonl", "-q")
    assert res.exit_code == 0 and (tmp_path / "ok.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_read_conll_groups_lines():
    data = b"-DOCSTART- -X- O\n\nEU B-ORG\n# a note\nrejects O\n\n\nx O"
    items = list(read_items("conll", io.BytesIO(data), "x"))
    assert [it.sents for it in items] == [[["EU", "rejects"]], [["x"]]]
    assert [it.line for it in items] == [3, 8]
    assert b"".join(raw + eol for it in items for raw, eol, _ in it.data.rows) == data


def test_dead_worker_is_an_error_not_a_hang(predictor, tmp_path, monkeypatch):
    src = tmp_path / "w.tok"
    src.write_text("Peter lives in Paris .\n" * 40, encoding="utf-8")
    out = tmp_path / "w.jsonl"
    parent = os.getpid()
    real = Engine.predict

    def dies_in_worker(self, sentences):
        if os.getpid() != parent:
            os._exit(3)  # e.g. killed by the out-of-memory killer
        return real(self, sentences)

    monkeypatch.setattr(Engine, "predict", dies_in_worker)
    with pytest.raises(TaggerError, match="worker process died"):
        annotate_paths(predictor, [src], out, AnnotateOptions(workers=2, chunk_size=10, **OPTS))
    assert not out.exists() and list(tmp_path.iterdir()) == [src]
