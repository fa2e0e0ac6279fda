"""``benchmarks/budgets.py``: short time budgets per corpus, read back, merged and reported."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE, benchmark_module
from test_accuracy_benchmark import PIPELINE


def budgets():
    return benchmark_module("budgets")


def test_a_cut_corpus_keeps_document_lines_and_stops_after_n(tmp_path):
    b = budgets()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "in.conll").write_text("-DOCSTART- O\n\nA O\nB O\n\n\nC O\n\n-DOCSTART- O\n\nD O\nE O\n\nF O\n")
    (tmp_path / "d" / "test.conll").write_text("G O\n")
    corpus = b.Corpus("t", "p.toml", "test.conll", "f1", first=3, train="in.conll", others=("test.conll",))
    out = b.cut_data(corpus, tmp_path / "d", tmp_path / "w")
    assert (out / "in.conll").read_text() == "-DOCSTART- O\n\nA O\nB O\n\n\nC O\n\n-DOCSTART- O\n\nD O\nE O\n\n"
    assert (out / "test.conll").resolve() == (tmp_path / "d" / "test.conll").resolve()  # linked, not copied
    with pytest.raises(RuntimeError, match="has only 4 sentences, not 10"):  # fewer in the file: an error
        b.cut_data(b.Corpus("t", "p.toml", "test.conll", "f1", first=10, train="in.conll"), tmp_path / "d",
                   tmp_path / "w2")


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    b = budgets()
    pipe = tmp_path / "tiny.toml"
    pipe.write_text(PIPELINE)
    monkeypatch.setitem(b.CORPORA, "tiny", b.Corpus("Tiny NER", str(pipe), "test.conll", "f1"))
    monkeypatch.setitem(b.CORPORA, "tiny_5", b.Corpus("Tiny NER, 5 sentences", str(pipe), "test.conll", "f1",
                                                      first=5, train="train.conll",
                                                      others=("dev.conll", "test.conll", "news.txt")))
    return b


def test_each_budget_trains_to_its_limit_and_the_report_has_every_run(tmp_path, tiny):
    out, work = tmp_path / "reports" / "budgets", tmp_path / "work"
    args = ["--data", str(SAMPLE), "--workdir", str(work), "--out", str(out), "--threads", "1"]
    assert tiny.main(["--corpus", "tiny", "--corpus", "tiny_5", "--minutes", "0.03", *args]) == 0
    assert tiny.main(["--corpus", "tiny", "--minutes", "0.03", "--plain", *args]) == 0
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert [(r["corpus"], r["schedule"]) for r in runs] == [("tiny", "budget"), ("tiny", "plain"),
                                                             ("tiny_5", "budget")]
    for r in runs:
        assert 0.0 <= r["dev"] <= 100.0 and 0.0 <= r["test"] <= 100.0 and r["epochs"] >= 1
        assert "--max-minutes 0.03 --seed 1 --epochs 10000 --patience 10000" in r["command"]
        assert ("--budget-decay 0" in r["command"]) == (r["schedule"] == "plain")
    train = (work / "tiny_5" / "data" / "train.conll").read_text()
    assert train.count("\n\n") - train.count("-DOCSTART-") == 5  # the cut corpus: five sentences
    prepared = json.loads((work / "tiny_5" / "prepare" / "prepare.json").read_text())
    assert str(work / "tiny_5" / "data" / "train.conll") in json.dumps(prepared)
    assert sorted(p.name for p in out.parent.iterdir()) == ["budgets.json", "budgets.md"]  # nothing else left there
    md = out.with_suffix(".md").read_text()
    assert "| Tiny NER | budget | " in md and "| Tiny NER | plain | " in md and "0.03 min" in md
    assert f"- tiny_5: `tagger run {tiny.CORPORA['tiny_5'].pipeline} --set DATA={work / 'tiny_5' / 'data'}" in md
    # rerunning a budget replaces its record
    assert tiny.main(["--corpus", "tiny", "--minutes", "0.03", *args]) == 0
    assert len(json.loads(out.with_suffix(".json").read_text())["runs"]) == 3


def test_a_missing_data_file_is_reported_without_running(tmp_path, tiny, capsys):
    assert tiny.main(["--corpus", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "missing data files" in capsys.readouterr().err
