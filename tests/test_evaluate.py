"""Tests for tagger evaluate: strict and conlleval scoring, error analysis, report files, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from tagger import metrics, schemes
from tagger.cli import main
from tagger.commands.evaluate.errors import ERROR_KINDS, entity_errors
from tagger.commands.evaluate.gold import Gold, gold_in_model_scheme, read_gold, resolve_format
from tagger.commands.evaluate.run import evaluate
from tagger.commands.evaluate.scoring import faithful_iob2
from tagger.errors import InputError, ModelError, TaggerError
from tagger.schemes import Span

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def S(*triples):
    return [Span(*t) for t in triples]


# ---------------------------------------------------------------------------- model fixtures


def _train(tmp: Path, name: str, label_column: int, epochs: int, test: bool = True) -> tuple[Path, Path]:
    from tagger.commands.prepare import PrepareOptions, prepare
    from tagger.commands.train import TrainOptions, train

    prep = tmp / f"{name}-prepared"
    model = tmp / f"{name}-model"
    prepare(PrepareOptions(train=str(SAMPLE / "train.conll"), dev=str(SAMPLE / "dev.conll"),
                           test=str(SAMPLE / "test.conll") if test else None, label_column=label_column,
                           embeddings="none", embedding_dim=30), prep)
    train(prep, model, TrainOptions(epochs=epochs, hidden=32, optimizer="adam", lr=0.02, char_filters=20,
                                    dropout=0.2, word_dropout=0.0, patience=100, threads=1))
    return prep, model


@pytest.fixture(scope="session")
def ner(tmp_path_factory):
    """(prepared dir, model dir) of a small NER model trained on the bundled sample."""
    return _train(tmp_path_factory.mktemp("ner"), "ner", -1, epochs=5)


@pytest.fixture(scope="session")
def pos(tmp_path_factory):
    """(prepared dir without a test split, model dir) of a small POS tagger (column 1 of the sample)."""
    return _train(tmp_path_factory.mktemp("pos"), "pos", 1, epochs=3, test=False)


@pytest.fixture(scope="session")
def ner_report(ner, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "R"
    return evaluate(ner[1], SAMPLE / "test.conll", out, threads=1), out


def read_predictions(path: Path) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    toks, gold, pred = [[]], [[]], [[]]
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split(" ")
        if not line:
            if toks[-1]:
                toks.append([]), gold.append([]), pred.append([])
            continue
        assert len(cols) == 3, line
        toks[-1].append(cols[0]), gold[-1].append(cols[1]), pred[-1].append(cols[2])
    if not toks[-1]:
        toks.pop(), gold.pop(), pred.pop()
    return toks, gold, pred


# ---------------------------------------------------------------------------- a port of conlleval.pl


def _split(tag: str) -> tuple[str, str]:
    return (tag[0], tag[2:]) if "-" in tag else (tag, "")


def _end(pt, t, pty, ty):
    return (pt in ("B", "I") and t in ("B", "O")) or (pt != "O" and pt != "." and pty != ty)


def _start(pt, t, pty, ty):
    return t == "B" or (pt == "O" and t == "I") or (t != "O" and t != "." and pty != ty)


def conlleval_pl(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """conlleval.pl's main loop (IOB2 tags), line by line, sentence breaks included."""
    rows = []
    for g, p in zip(gold, pred, strict=True):
        rows += [(False, a, b) for a, b in zip(g, p, strict=True)]
        rows.append((True, "O", "O"))
    correct_chunk = found_correct = found_guessed = correct_tags = tokens = 0
    in_correct = False
    lc, lg, lct, lgt = "O", "O", "", ""
    for boundary, c_tag, g_tag in rows:
        c, ct = _split(c_tag)
        g, gt = _split(g_tag)
        if in_correct:
            ec, eg = _end(lc, c, lct, ct), _end(lg, g, lgt, gt)
            if ec and eg and lgt == lct:
                in_correct = False
                correct_chunk += 1
            elif ec != eg or gt != ct:
                in_correct = False
        sc, sg = _start(lc, c, lct, ct), _start(lg, g, lgt, gt)
        if sc and sg and gt == ct:
            in_correct = True
        found_correct += sc
        found_guessed += sg
        if not boundary:
            correct_tags += c == g and ct == gt
            tokens += 1
        lc, lg, lct, lgt = c, g, ct, gt
    if in_correct:
        correct_chunk += 1
    return {"correct": correct_chunk, "found_gold": found_correct, "found_pred": found_guessed,
            "accuracy": correct_tags / tokens if tokens else 0.0}


# ---------------------------------------------------------------------------- strict (seqeval) figures


def strict(seqs, scheme):
    return [schemes.strict_spans(s, scheme) for s in seqs]


def test_strict_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    s = metrics.count_chunks(metrics.entity_report(gold, pred, "iob2"), strict(gold, "iob2"), strict(pred, "iob2"))
    assert (s["correct"], s["predicted"], s["support"]) == (2, 3, 3)
    assert s["precision"] == s["recall"] == s["f1"] == pytest.approx(2 / 3)
    assert s["per_type"]["PER"]["f1"] == 1.0
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0,
                                    "correct": 0}
    assert s["per_type"]["ORG"]["precision"] == 0.5 and s["per_type"]["ORG"]["recall"] == 1.0
    assert s["macro"]["f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert s["macro"]["precision"] == pytest.approx((1 + 0 + 0.5) / 3)
    e = metrics.entity_scores(gold, pred, "iob2")  # train's dev scores
    assert (e["f1"], e["macro_f1"], e["accuracy"]) == (s["f1"], s["macro"]["f1"], 5 / 6)


def test_no_entities_scores_zero():
    s = metrics.entity_scores([["O", "O"]], [["O", "O"]], "bioes")
    assert (s["precision"], s["recall"], s["f1"], s["macro_f1"], s["per_type"]) == (0.0, 0.0, 0.0, 0.0, {})
    c = metrics.conlleval_scores([["O"]], [["O"]])
    assert c["macro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0} and c["found_gold"] == c["found_pred"] == 0


def test_strict_ill_formed_sequences_are_not_entities():
    # iob2: I- without B- is no entity in strict mode; a type switch ends the entity
    assert strict([["O", "I-PER", "I-PER"], ["B-PER", "I-LOC"]], "iob2") == [[], S(("PER", 0, 1))]
    # bioes: B- without E-, lone I-/E- are ill formed
    assert strict([["B-PER", "O", "S-LOC"], ["I-PER", "E-PER"], ["B-PER", "I-PER", "E-PER"]], "bioes") == [
        S(("LOC", 2, 3)), [], S(("PER", 0, 3))]
    gold = [["B-PER", "E-PER", "O"]]
    pred = [["B-PER", "I-PER", "O"]]  # ill formed: strict finds nothing, conlleval finds PER[0, 2)
    s = metrics.entity_report(gold, pred, "bioes")
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)
    c = metrics.conlleval_scores([schemes.convert(x, "bioes", "iob2")[0] for x in gold],
                                 [schemes.convert(x, "bioes", "iob2")[0] for x in pred])
    assert c["f1"] == 1.0


def test_iob1_gold_is_converted_to_the_model_scheme():
    labels = [["I-PER", "B-PER", "O", "I-LOC", "I-LOC"], ["I-ORG", "O"]]  # CoNLL-2003 style
    g = Gold([["w"] * len(x) for x in labels], labels, [1, 7], "x.conll", "x.conll", None, "conll", None, True)
    conv, detected, repairs = gold_in_model_scheme(g, "entity", "bioes")
    assert detected == "iob1" and repairs == 0
    assert conv == [["S-PER", "S-PER", "O", "B-LOC", "E-LOC"], ["S-ORG", "O"]]
    pred = [["S-PER", "S-PER", "O", "S-LOC", "O"], ["S-ORG", "O"]]
    s = metrics.count_chunks(metrics.entity_report(conv, pred, "bioes"), strict(conv, "bioes"), strict(pred, "bioes"))
    assert (s["correct"], s["predicted"], s["support"]) == (3, 4, 4)
    assert s["f1"] == pytest.approx(0.75)
    # an iob1 model reads gold the way entity_scores does (via IOB2)
    conv1, _, _ = gold_in_model_scheme(g, "entity", "iob1")
    assert strict(conv1, "iob1")[0] == S(("PER", 0, 1), ("PER", 1, 2), ("LOC", 3, 5))


def test_plain_gold_for_an_entity_model_names_file_and_line():
    g = Gold([["a", "b"], ["c", "d"]], [["O", "O"], ["O", "NN"]], [3, 6], "x.conll", "x.conll", None, "conll", None,
             True)
    with pytest.raises(InputError, match=r"^x\.conll:7: gold label 'NN' is not an entity tag"):
        gold_in_model_scheme(g, "entity", "bioes")
    only_o = Gold([["a"]], [["O"]], [1], "x", "x", None, "conll", None, True)
    assert gold_in_model_scheme(only_o, "entity", "bioes")[1] == "bioes"


TAGS = {s: ["O"] + [f"{p}-{t}" for t in ("PER", "LOC") for p in ("BI" if s == "iob2" else "BIES")]
        for s in ("iob2", "bioes")}


def _seqs(scheme):
    return st.lists(st.lists(st.sampled_from(TAGS[scheme]), max_size=8), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), scheme=st.sampled_from(["iob2", "bioes", "iob1"]))
def test_strict_spans_are_the_entities_seqeval_scores(data, scheme):
    """The error analysis reads the entities seqeval's strict mode scores, so its counts explain the figures."""
    from seqeval.scheme import IOB2, IOBES, Entities

    tags = "iob2" if scheme == "iob1" else scheme
    gold = data.draw(_seqs(tags))
    pred = [data.draw(st.lists(st.sampled_from(TAGS[tags]), min_size=len(g), max_size=len(g))) for g in gold]
    for seqs in (gold, pred):
        conv, _ = metrics.to_strict_scheme(seqs, scheme)
        ref = Entities(conv, IOBES if scheme == "bioes" else IOB2).entities
        assert strict(seqs, scheme) == [[Span(e.tag, e.start, e.end) for e in sent] for sent in ref]
    s = metrics.count_chunks(metrics.entity_report(gold, pred, scheme), strict(gold, scheme), strict(pred, scheme))
    for v in [s, *s["per_type"].values()]:
        assert v["precision"] == (v["correct"] / v["predicted"] if v["predicted"] else 0.0)
        assert v["recall"] == (v["correct"] / v["support"] if v["support"] else 0.0)


# ---------------------------------------------------------------------------- conlleval figures


def test_conlleval_differs_from_strict_on_i_without_b():
    gold = [["I-PER", "I-PER", "O"]]  # IOB2 reading: strict sees no entity, conlleval one chunk
    pred = [["B-PER", "I-PER", "O"]]
    s = metrics.count_chunks(metrics.entity_report(gold, pred, "iob2"), strict(gold, "iob2"), strict(pred, "iob2"))
    assert (s["support"], s["predicted"], s["correct"]) == (0, 1, 0)
    assert s["f1"] == 0.0
    c = metrics.conlleval_scores(gold, pred)
    assert (c["found_gold"], c["found_pred"], c["correct"]) == (1, 1, 1)
    assert c["precision"] == c["recall"] == c["f1"] == 1.0
    assert c["accuracy"] == pytest.approx(2 / 3)
    assert {k: c[k] for k in ("correct", "found_gold", "found_pred", "accuracy")} == conlleval_pl(gold, pred)


def test_conlleval_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], ["B-ORG"]]
    pred = [["B-PER", "I-PER", "I-LOC", "I-LOC", "I-LOC"], ["I-ORG"]]  # LOC[2,5) vs LOC[3,5); ORG ok
    c = metrics.conlleval_scores(gold, pred)
    assert (c["found_gold"], c["found_pred"], c["correct"]) == (3, 3, 2)
    assert c["per_type"]["LOC"]["f1"] == 0.0 and c["per_type"]["ORG"]["f1"] == 1.0
    assert c["accuracy"] == pytest.approx(3 / 6)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_conlleval_counts_match_the_perl_loop(data):
    gold = data.draw(_seqs("iob2"))
    pred = [data.draw(st.lists(st.sampled_from(TAGS["iob2"]), min_size=len(g), max_size=len(g))) for g in gold]
    c = metrics.conlleval_scores(gold, pred)
    assert {k: c[k] for k in ("correct", "found_gold", "found_pred")} == {
        k: v for k, v in conlleval_pl(gold, pred).items() if k != "accuracy"}
    assert c["precision"] == (c["correct"] / c["found_pred"] if c["found_pred"] else 0.0)
    assert c["recall"] == (c["correct"] / c["found_gold"] if c["found_gold"] else 0.0)


@settings(max_examples=100, deadline=None)
@given(scheme=st.sampled_from(["iob2", "bioes"]), data=st.data())
def test_faithful_iob2_keeps_both_readings(scheme, data):
    tags = data.draw(st.lists(st.sampled_from(TAGS[scheme]), max_size=10))
    out, conflicts = faithful_iob2(tags, scheme)
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in out)
    assert schemes.strict_spans(out, "iob2") == schemes.strict_spans(tags, scheme)  # always
    if conflicts == 0:
        assert schemes.to_spans(out, "iob2") == schemes.to_spans(tags, scheme)
    if schemes.is_well_formed(tags, scheme):
        assert conflicts == 0 and out == schemes.convert(tags, scheme, "iob2")[0]


def test_faithful_iob2_examples():
    assert faithful_iob2(["B-PER", "O", "S-LOC"], "bioes") == (["I-PER", "O", "B-LOC"], 0)
    assert faithful_iob2(["S-PER", "B-PER", "O"], "bioes") == (["B-PER", "O", "O"], 1)


# ---------------------------------------------------------------------------- error analysis


def test_error_categories():
    gold = [S(("PER", 0, 2), ("LOC", 4, 5), ("ORG", 6, 8), ("MISC", 9, 10), ("LOC", 11, 12))]
    pred = [S(("PER", 0, 2),  # correct
              ("PER", 4, 5),  # type
              ("ORG", 6, 7),  # boundary
              ("LOC", 9, 11),  # boundary+type (overlaps MISC only)
              ("ORG", 13, 14))]  # spurious; LOC[11,12) is missed
    ea = entity_errors(gold, pred)
    assert ea["counts"] == {"boundary": 1, "type": 1, "boundary+type": 1, "missed": 1, "spurious": 1}
    kinds = {(k, g, p) for k, _, g, p in ea["events"]}
    assert ("type", Span("LOC", 4, 5), Span("PER", 4, 5)) in kinds
    assert ("boundary", Span("ORG", 6, 8), Span("ORG", 6, 7)) in kinds
    assert ("boundary+type", Span("MISC", 9, 10), Span("LOC", 9, 11)) in kinds
    assert ("missed", Span("LOC", 11, 12), None) in kinds
    assert ("spurious", None, Span("ORG", 13, 14)) in kinds
    assert ea["confusion"] == {("PER", "PER"): 1, ("LOC", "PER"): 1, ("ORG", "ORG"): 1, ("MISC", "LOC"): 1,
                               ("LOC", "O"): 1, ("O", "ORG"): 1}
    # the prediction-side kinds are exactly the false positives
    c = ea["counts"]
    false_positives = len(pred[0]) - len(set(gold[0]) & set(pred[0]))
    assert c["type"] + c["boundary"] + c["boundary+type"] + c["spurious"] == false_positives


def test_error_boundary_prefers_same_type_overlap():
    gold = [S(("PER", 0, 2), ("LOC", 2, 4))]
    pred = [S(("LOC", 1, 4))]  # overlaps PER and LOC; same type LOC wins: boundary error
    ea = entity_errors(gold, pred)
    assert ea["counts"]["boundary"] == 1 and ea["counts"]["missed"] == 0
    assert ea["events"] == [("boundary", 0, Span("LOC", 2, 4), Span("LOC", 1, 4))]
    assert ea["confusion"] == {("PER", "LOC"): 1, ("LOC", "LOC"): 1}


def test_label_scores():
    ls = metrics.label_scores([["NN", "VB", "NN"], ["DT"]], [["NN", "NN", "NN"], ["DT"]])
    assert ls["accuracy"] == 0.75
    assert ls["per_type"]["NN"]["precision"] == pytest.approx(2 / 3) and ls["per_type"]["NN"]["recall"] == 1.0
    assert ls["per_type"]["VB"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0,
                                    "correct": 0}
    assert ls["confusion"] == {"labels": ["DT", "NN", "VB"], "matrix": [[1, 0, 0], [0, 2, 0], [0, 1, 0]]}


# ---------------------------------------------------------------------------- a trained model


def test_model_on_its_training_data_scores_high(ner):
    r = evaluate(ner[1], SAMPLE / "train.conll", threads=1)
    assert r["task"] == "entity" and r["gold_scheme"] == "iob1" and r["scheme"] == "bioes"
    assert r["sentences"] == 400 and r["entities"]["gold"] == 787
    assert r["f1"] > 0.9 and r["accuracy"] > 0.95
    assert r["unseen_labels"] == []


def test_report_files(ner_report):
    r, out = ner_report
    m = json.loads((out / "metrics.json").read_text())
    for key in ("f1", "precision", "recall", "accuracy", "per_type", "conlleval", "errors", "oov", "sentences",
                "tokens", "seconds", "unseen_labels", "macro"):
        assert key in m, key
    assert m["f1"] == r["f1"] and m["sentences"] == 100 and m["tokens"] == 1124
    assert set(m["per_type"]) == {"PER", "ORG", "LOC", "MISC"}
    assert set(m["errors"]["counts"]) == {*ERROR_KINDS, "total"}
    assert m["errors"]["confusion"]["labels"][-1] == "O"
    assert m["learning_curve"]["epochs"] == 5
    for name in ("per_type_f1.png", "confusion.png", "learning_curve.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC
        import matplotlib.image

        assert matplotlib.image.imread(out / name).ndim == 3
    report = (out / "report.md").read_text()
    for part in ("## Summary", "## Per type", "## Errors", "## Confusion", "## Top", "strict", "conlleval",
                 "![F1 per type](per_type_f1.png)", "(confusion.png)", "(learning_curve.png)"):
        assert part in report, part


def test_predictions_conll_rescored_equals_metrics(ner_report):
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    r, out = ner_report
    toks, gold, pred = read_predictions(out / "predictions.conll")
    assert len(toks) == r["sentences"] and sum(map(len, toks)) == r["tokens"]
    assert all(t == "O" or t[:2] in ("B-", "I-") for s in gold + pred for t in s)
    assert f1_score(gold, pred, mode="strict", scheme=IOB2) == pytest.approx(r["f1"], abs=1e-12)
    c = conlleval_pl(gold, pred)
    assert c["correct"] == r["conlleval"]["correct"] and c["found_pred"] == r["conlleval"]["found_pred"]
    assert c["accuracy"] == pytest.approx(r["conlleval"]["accuracy"])
    # the gold column is the test file converted to IOB2
    from tagger.formats.read import read_corpus

    src = [s.labels for s in read_corpus(SAMPLE / "test.conll").sentences]
    assert gold == [schemes.convert(s, "iob1", "iob2")[0] for s in src]


def test_gold_schemes_and_prepared_dir_agree(ner, ner_report, tmp_path):
    from tagger.formats.read import read_corpus

    r, _ = ner_report
    corpus = read_corpus(SAMPLE / "test.conll")
    for target in ("iob2", "bioes"):
        path = tmp_path / f"test.{target}"
        path.write_text("\n\n".join("\n".join(f"{t} {schemes.convert(s.labels, 'iob1', target)[0][i]}"
                                              for i, t in enumerate(s.tokens)) for s in corpus.sentences) + "\n")
        other = evaluate(ner[1], path, threads=1)
        assert other["gold_scheme"] == target
        assert (other["f1"], other["conlleval"]["f1"]) == (r["f1"], r["conlleval"]["f1"])
    prepared = evaluate(ner[1], ner[0], threads=1)  # default split: test
    assert prepared["split"] == "test" and prepared["f1"] == r["f1"]
    assert prepared["source"].endswith("test.conll")
    dev = evaluate(ner[1], f"{ner[0]}:dev", threads=1)
    assert dev["sentences"] == 100 and dev["split"] == "dev"


def test_unseen_labels_are_reported(ner, tmp_path):
    path = tmp_path / "gold.conll"
    path.write_text("Euro B-EVENT\n2024 I-EVENT\nin O\nBerlin B-LOC\n\nParis B-LOC\n")
    warnings = []
    r = evaluate(ner[1], path, threads=1, log=warnings.append)
    assert r["unseen_labels"] == ["B-EVENT", "E-EVENT"]
    assert any("B-EVENT" in w and w.startswith("warning:") for w in warnings)
    assert r["per_type"]["EVENT"]["support"] == 1 and r["per_type"]["EVENT"]["recall"] == 0.0


def test_learning_curve_missing_is_noted(ner, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(ner[1], model)
    (model / "metrics.jsonl").unlink()
    r = evaluate(model, SAMPLE / "dev.conll", tmp_path / "R", threads=1)
    assert "note" in r["learning_curve"] and not (tmp_path / "R" / "learning_curve.png").exists()
    assert "learning curve skipped" in (tmp_path / "R" / "report.md").read_text()


def test_pos_model_accuracy_and_oov(pos, tmp_path):
    prep, model = pos
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["task"] == "plain" and resolve_format(cfg, {})["label_column"] == 1
    r = evaluate(model, SAMPLE / "test.conll", tmp_path / "R", threads=1)  # column 1 from the model config
    assert r["task"] == "plain" and r["gold_scheme"] == "plain"
    assert "f1" not in r and r["accuracy"] > 0.6
    assert "NNP" in r["per_type"] and set(r["per_type"]["NNP"]) >= {"precision", "recall", "f1", "support"}
    o = r["oov"]
    assert o["oov"]["tokens"] == o["pretrained_only"]["tokens"] + o["unknown"]["tokens"] > 0
    assert o["in_vocabulary"]["tokens"] + o["oov"]["tokens"] == r["tokens"]
    assert o["pretrained_only"]["tokens"] == 0  # --embeddings none keeps no pretrained-only words
    iv, ov = o["in_vocabulary"], o["oov"]
    acc = (iv["accuracy"] * iv["tokens"] + ov["accuracy"] * ov["tokens"]) / r["tokens"]
    assert acc == pytest.approx(r["accuracy"])
    assert r["errors"]["top"] and r["errors"]["top"][0]["count"] >= r["errors"]["top"][-1]["count"]
    toks, gold, pred = read_predictions(tmp_path / "R" / "predictions.conll")
    same = sum(a == b for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True))
    assert same / r["tokens"] == pytest.approx(r["accuracy"])
    assert (tmp_path / "R" / "confusion.png").read_bytes()[:8] == PNG_MAGIC
    # the format flags override the model's defaults: column 2 holds chunk tags
    chunks = evaluate(model, SAMPLE / "test.conll", threads=1, label_column=2)
    assert "I-NP" in chunks["unseen_labels"]


# ---------------------------------------------------------------------------- CLI


def run_cli(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def test_cli_summary_and_json(ner, tmp_path):
    res = run_cli(ner[1], "--data", SAMPLE / "test.conll", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "strict micro" in res.stdout and "conlleval" in res.stdout and "PER" in res.stdout
    res = run_cli(ner[1], "--data", SAMPLE / "test.conll", "--json", "--out", tmp_path / "R", "--threads", "1")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m == json.loads((tmp_path / "R" / "metrics.json").read_text())


@pytest.mark.parametrize("case", ["no-data", "no-model", "classifier", "no-split", "no-test-split", "pos-column",
                                  "split-of-file", "bad-columns"])
def test_cli_errors_exit_2(case, ner, pos, tmp_path):
    from tagger import modeldir

    model, data, extra = ner[1], SAMPLE / "test.conll", []
    expect = None
    if case == "no-data":
        data, expect = tmp_path / "missing.conll", "missing.conll: file not found"
    elif case == "no-model":
        model, expect = tmp_path / "nomodel", "model directory not found"
    elif case == "classifier":
        model = tmp_path / "clf"
        model.mkdir()
        modeldir.write_config(model, "classifier", {})
        expect = "this is a classifier model"
    elif case == "no-split":
        data, expect = f"{ner[0]}:nope", "no 'nope' split"
    elif case == "no-test-split":
        model, data, expect = pos[1], pos[0], "no 'test' split"
    elif case == "pos-column":
        extra, expect = ["--label-column", "1"], "test.conll:3: gold label 'NN' is not an entity tag"
    elif case == "split-of-file":
        data, expect = f"{SAMPLE / 'test.conll'}:test", "needs a prepared directory"
    elif case == "bad-columns":
        data = tmp_path / "bad.conll"
        data.write_text("a O\nb O\n\nc d O\n")
        expect = "bad.conll:4: expected 2 columns"
    res = run_cli(model, "--data", data, *extra)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    assert expect in err[0], err[0]


def test_library_errors():
    with pytest.raises(TaggerError):
        read_gold("/nonexistent/file.conll", resolve_format({}, {}))
    with pytest.raises(ModelError):
        evaluate("/nonexistent/model", SAMPLE / "test.conll")
    with pytest.raises(TypeError):
        resolve_format({}, {"colour": 1})
