"""Tests for tagger.commands.classify and ``tagger classify``: readers, folds, training, outputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tagger.cli import main
from tagger.commands.classify import (
    Classifier,
    ClassifierOptions,
    classification_scores,
    cross_validate,
    stratified_folds,
    stratified_split,
    train_classifier,
)
from tagger.errors import InputError, ModelError, TaggerError
from tagger.formats.examples import Example, read_data, read_examples, read_label_files
from tagger.formats.text import tokenize
from tagger.nn.classifier import ClassifierConfig, LSTMClassifier, pad_batch

POS_WORDS = ["good", "great", "superb", "lovely", "brilliant"]
NEG_WORDS = ["bad", "awful", "dull", "boring", "terrible"]
MID_WORDS = ["bland", "odd", "strange"]
FILLER = ["the", "film", "was", "a", "story", "and", "plot", "it", "acting", "really", "very", "this"]

# Small, fast settings for the synthetic tasks (no pretrained vectors).
FAST = dict(embeddings="none", embedding_dim=16, hidden=16, epochs=8, batch_size=16, lr=0.01,
            dropout=0.1, embed_dropout=0.0, patience=8, dev_fraction=0.0, threads=1)


def synthetic(n: int, seed: int = 0, classes: int = 2) -> list[Example]:
    """Texts of filler words with one label-bearing word at a random position."""
    rng = random.Random(seed)
    groups = [("pos", POS_WORDS), ("neg", NEG_WORDS), ("mid", MID_WORDS)][:classes]
    out = []
    for i in range(n):
        label, words = groups[i % classes]
        toks = [rng.choice(FILLER) for _ in range(rng.randint(3, 9))]
        toks.insert(rng.randint(0, len(toks)), rng.choice(words))
        out.append(Example(" ".join(toks), label, "synthetic", i + 1))
    return out


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --------------------------------------------------------------------------- tokenizer


def test_tokenize_splits_clitics_and_punctuation():
    assert tokenize("it's so good, don't you think?") == ["it", "'s", "so", "good", ",", "do", "n't", "you", "think",
                                                           "?"]
    assert tokenize("the u.s. well-made 12.5") == ["the", "u.s.", "well-made", "12.5"]
    assert tokenize("") == []


# --------------------------------------------------------------------------- readers


def test_read_tsv_with_header(tmp_path):
    f = write(tmp_path / "d.tsv", "text\tlabel\ngood film\tpos\n\nbad\tfilm\tneg\n")
    ex = read_examples(f)
    assert [(e.text, e.label, e.line) for e in ex] == [("good film", "pos", 2), ("bad\tfilm", "neg", 4)]


def test_read_csv_quoted_and_multiline(tmp_path):
    f = write(tmp_path / "d.csv", 'id,text,label\n1,"good, really",pos\n2,"two\nlines",neg\n3,bad,neg\n')
    ex = read_examples(f)
    assert [(e.text, e.label, e.line, e.id) for e in ex] == [
        ("good, really", "pos", 2, "1"), ("two\nlines", "neg", 3, "2"), ("bad", "neg", 5, "3")]


def test_read_jsonl(tmp_path):
    f = write(tmp_path / "d.jsonl", '{"text": "good", "label": "pos"}\n\n{"text": "bad", "label": 0}\n')
    ex = read_examples(f)
    assert [(e.text, e.label, e.line) for e in ex] == [("good", "pos", 1), ("bad", "0", 3)]


def test_format_detection_without_extension(tmp_path):
    assert read_examples(write(tmp_path / "a", '{"text": "x", "label": "y"}\n'))[0].label == "y"
    assert read_examples(write(tmp_path / "b", "x y\tz\n"))[0].label == "z"


def test_label_files_and_encoding(tmp_path):
    pos = write(tmp_path / "p.txt", "good\n\ngreat\n")
    neg = write(tmp_path / "n.txt", "caf\u00e9 bad\n", encoding="latin-1")
    with pytest.raises(InputError) as err:
        read_label_files([f"pos={pos}", f"neg={neg}"])
    assert f"{neg}:1" in str(err.value) and "--encoding" in str(err.value)
    ex = read_label_files([f"pos={pos}", ("neg", str(neg))], encoding="latin-1")
    assert [(e.text, e.label, e.line) for e in ex] == [("good", "pos", 1), ("great", "pos", 3),
                                                       ("caf\u00e9 bad", "neg", 1)]
    with pytest.raises(TaggerError, match="LABEL=FILE"):
        read_label_files(["nolabel"])


@pytest.mark.parametrize(
    "name, content, line, message",
    [
        ("a.tsv", "good\tpos\nno tab here\n", 2, "no tab"),
        ("b.tsv", "good\tpos\nbad\t \n", 2, "empty label"),
        ("c.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n', 2, "invalid JSON"),
        ("d.jsonl", '{"text": "a"}\n', 1, "label"),
        ("e.jsonl", '["a", "b"]\n', 1, "JSON object"),
        ("f.jsonl", '{"text": 3, "label": "x"}\n', 1, "text"),
        ("g.csv", "text,label\na,x\nb,y,z\n", 3, "CSV fields"),
        ("h.csv", "sentence,polarity\na,x\n", 1, "header"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, name, content, line, message):
    f = write(tmp_path / name, content)
    with pytest.raises(InputError) as err:
        read_examples(f)
    assert err.value.path == str(f) and err.value.line == line
    assert message in str(err.value)


def test_unlabelled_reading_keeps_every_line(tmp_path):
    f = write(tmp_path / "in.txt", "first\n\nthird\n")
    ex = read_examples(f, need_label=False)
    assert [(e.text, e.line) for e in ex] == [("first", 1), ("", 2), ("third", 3)]
    with pytest.raises(InputError, match="no labels"):
        read_examples(f)


def test_read_data_needs_something():
    with pytest.raises(TaggerError, match="no training data"):
        read_data()


# --------------------------------------------------------------------------- folds


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from("abc"), min_size=5, max_size=60), st.integers(2, 5), st.integers(0, 9))
def test_folds_disjoint_cover_and_stratified(labels, k, seed):
    if k > len(labels) or all(labels.count(lab) < k for lab in labels):
        with pytest.raises(TaggerError):
            stratified_folds(labels, k, seed)
        return
    folds = stratified_folds(labels, k, seed)
    flat = [i for f in folds for i in f]
    assert sorted(flat) == list(range(len(labels)))  # disjoint and covering
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for lab in set(labels):  # each class spread evenly
        per_fold = [sum(labels[i] == lab for i in f) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1
    assert folds == stratified_folds(labels, k, seed)


def test_stratified_split_is_seeded_and_disjoint():
    labels = ["a"] * 30 + ["b"] * 10
    keep, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(keep + held) == list(range(40)) and not set(keep) & set(held)
    assert sum(labels[i] == "b" for i in held) == 2 and len(held) == 8
    assert (keep, held) == stratified_split(labels, 0.2, seed=3)


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_pooling_ignores_padding(pooling, bidirectional):
    torch.manual_seed(0)
    m = LSTMClassifier(ClassifierConfig(num_words=20, num_extra=0, word_dim=8, num_labels=3, hidden=6,
                                        pooling=pooling, bidirectional=bidirectional)).eval()
    short, long = [2, 3, 4], [5, 6, 7, 8, 9, 10, 11]
    alone = m(*pad_batch([short], [0]))
    words, lengths = pad_batch([short, long], [0, 1])
    together = m(words, lengths)
    assert together.shape == (2, 3)
    assert torch.allclose(alone[0], together[0], atol=1e-6)


def test_binary_uses_one_logit_and_multiclass_softmax():
    b = LSTMClassifier(ClassifierConfig(num_words=10, num_extra=0, word_dim=4, num_labels=2, hidden=3))
    assert b.out.out_features == 1
    p = b.probabilities(torch.tensor([[0.0], [2.0]]))
    assert torch.allclose(p.sum(1), torch.ones(2)) and p[0, 1] == 0.5
    mc = LSTMClassifier(ClassifierConfig(num_words=10, num_extra=0, word_dim=4, num_labels=4, hidden=3))
    assert mc.out.out_features == 4


def test_learns_separable_binary_task():
    train, test = synthetic(240, seed=1), synthetic(80, seed=2)
    clf, summary = train_classifier(train, None, ClassifierOptions(**FAST))
    assert clf.labels == ["neg", "pos"]
    pred = clf.predict([e.text for e in test])
    acc = sum(p[0] == e.label for p, e in zip(pred, test, strict=True)) / len(test)
    assert acc >= 0.95, summary["history"]


def test_learns_separable_three_class_task_with_early_stopping():
    train, test = synthetic(300, seed=3, classes=3), synthetic(60, seed=4, classes=3)
    opts = ClassifierOptions(**{**FAST, "dev_fraction": 0.2, "pooling": "mean", "patience": 3, "epochs": 10})
    clf, summary = train_classifier(train, None, opts)
    assert clf.model.config.num_outputs == 3 and summary["best_dev"] is not None
    probs = clf.predict_proba([e.text for e in test])
    assert probs.shape == (60, 3) and abs(probs.sum(1) - 1).max() < 1e-5
    acc = sum(clf.labels[i] == e.label for i, e in zip(probs.argmax(1), test, strict=True)) / len(test)
    assert acc >= 0.9


def test_training_is_reproducible():
    train = synthetic(60, seed=5)
    opts = ClassifierOptions(**{**FAST, "epochs": 2})
    a, _ = train_classifier(train, None, opts)
    b, _ = train_classifier(train, None, opts)
    for (k, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k


def test_single_label_is_an_error():
    with pytest.raises(TaggerError, match="only one label"):
        train_classifier([Example("a b", "x", "s", 1)] * 4, None, ClassifierOptions(**FAST))


def test_cross_validate_reports_each_fold():
    res = cross_validate(synthetic(90, seed=6), 3, ClassifierOptions(**{**FAST, "epochs": 12}))
    assert [f["test"] for f in res["folds"]] == [30, 30, 30]
    assert all(f["train"] == 60 for f in res["folds"])
    assert all(f["dev_accuracy"] is None for f in res["folds"])  # FAST has no inner dev split
    assert res["mean_accuracy"] == pytest.approx(sum(f["accuracy"] for f in res["folds"]) / 3)
    assert res["mean_accuracy"] > 0.8 and res["std_accuracy"] >= 0


def test_cross_validation_folds_record_the_inner_dev_score_that_picked_their_epoch():
    res = cross_validate(synthetic(60, seed=6), 2, ClassifierOptions(**{**FAST, "epochs": 4, "dev_fraction": 0.2}))
    assert all(0.0 <= f["dev_accuracy"] <= 1.0 for f in res["folds"])
    assert all(1 <= f["best_epoch"] <= f["epochs"] <= 4 for f in res["folds"])


def test_scores_and_confusion():
    s = classification_scores(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"], ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["confusion"]["labels"] == ["a", "b", "c"]
    assert s["confusion"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert s["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert s["per_class"]["b"]["precision"] == pytest.approx(2 / 3) and s["per_class"]["b"]["recall"] == 1.0
    assert s["per_class"]["c"]["f1"] == 0.0


def test_model_dir_round_trip(tmp_path):
    clf, _ = train_classifier(synthetic(60, seed=7), None, ClassifierOptions(**{**FAST, "epochs": 1}))
    clf.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    back = Classifier.load(tmp_path / "m")
    texts = ["good film", "", "awful plot", "never seen words"]
    assert (back.predict_proba(texts) == clf.predict_proba(texts)).all()
    assert json.loads((tmp_path / "m" / "config.json").read_text())["kind"] == "classifier"


# --------------------------------------------------------------------------- CLI


def _fast_flags() -> list[str]:
    return ["--embeddings", "none", "--embedding-dim", "16", "--hidden", "16", "--epochs", "6", "--batch-size", "16",
            "--lr", "0.01", "--dropout", "0.1", "--embed-dropout", "0", "--dev-fraction", "0", "--threads", "1", "-q"]


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    train = write(d / "train.tsv", "".join(f"{e.text}\t{e.label}\n" for e in synthetic(200, seed=8)))
    res = CliRunner().invoke(main, ["classify", "train", "--train", str(train), "--out", str(d / "model"),
                                    *_fast_flags()])
    assert res.exit_code == 0, res.output
    return d


def test_cli_evaluate_writes_metrics_and_report(cli_model):
    d = cli_model
    data = write(d / "test.jsonl",
                 "".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in synthetic(40, seed=9)))
    res = CliRunner().invoke(main, ["classify", "evaluate", str(d / "model"), "--data", str(data), "--out",
                                    str(d / "ev"), "--json"])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    metrics = json.loads((d / "ev" / "metrics.json").read_text())
    assert metrics["accuracy"] == printed["accuracy"] >= 0.9
    assert set(metrics["per_class"]) == {"neg", "pos"} and metrics["examples"] == 40
    assert sum(map(sum, metrics["confusion"]["matrix"])) == 40
    report = (d / "ev" / "report.md").read_text()
    assert "accuracy" in report and "Confusion matrix" in report


def test_cli_predict_keeps_order_and_every_line(cli_model):
    d = cli_model
    lines = ["a really superb story", "", "the plot was awful", "zzz unknown words", "good"]
    inp = write(d / "in.txt", "\n".join(lines) + "\n")
    jl = write(d / "in.jsonl", '{"id": 7, "text": "dull film"}\n{"text": "lovely", "label": "pos"}\n')
    out = d / "pred.jsonl"
    res = CliRunner().invoke(main, ["classify", "predict", str(d / "model"), str(inp), str(jl), "--out", str(out)])
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in recs] == lines + ["dull film", "lovely"]
    assert [r["line"] for r in recs] == [1, 2, 3, 4, 5, 1, 2]
    assert recs[0]["label"] == "pos" and recs[2]["label"] == "neg" and recs[5]["label"] == "neg"
    assert recs[5]["id"] == 7 and recs[6]["gold"] == "pos"
    for r in recs:
        assert r["probability"] == max(r["probabilities"].values())
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-5


def test_cli_cross_validation(tmp_path):
    pos = write(tmp_path / "p.txt", "".join(e.text + "\n" for e in synthetic(80, seed=10) if e.label == "pos"))
    neg = write(tmp_path / "n.txt", "".join(e.text + "\n" for e in synthetic(80, seed=10) if e.label == "neg"))
    rep = tmp_path / "cv.json"
    res = CliRunner().invoke(main, ["classify", "train", "--label-file", f"pos={pos}", "--label-file", f"neg={neg}",
                                    "--cv", "4", "--cv-report", str(rep), *_fast_flags()])
    assert res.exit_code == 0, res.output
    assert "4-fold cross-validation accuracy:" in res.stdout and "±" in res.stdout
    data = json.loads(rep.read_text())
    assert len(data["folds"]) == 4 and sum(f["test"] for f in data["folds"]) == 80


def test_cli_errors_exit_2(cli_model, tmp_path):
    runner = CliRunner()
    bad = write(tmp_path / "bad.tsv", "good\tpos\nmissing the tab\n")
    res = runner.invoke(main, ["classify", "train", "--train", str(bad), "--out", str(tmp_path / "m"), *_fast_flags()])
    assert res.exit_code == 2 and f"{bad}:2" in res.output
    # A model directory of another kind.
    other = tmp_path / "gen"
    other.mkdir()
    from tagger import modeldir

    modeldir.write_config(other, "generator", {})
    res = runner.invoke(main, ["classify", "evaluate", str(other), "--data", str(bad)])
    assert res.exit_code == 2 and "generator model" in res.output
    res = runner.invoke(main, ["classify", "predict", str(tmp_path / "none"), str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(main, ["classify", "train", "--train", str(bad), "--out", str(cli_model / "model"), "-q"])
    assert res.exit_code == 2 and "already exists" in res.output


# --------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    from resume_util import assert_same_run, kill_after, metrics_lines, run

    data = write(tmp_path / "train.tsv", "".join(f"{e.text}\t{e.label}\n" for e in synthetic(3000, seed=11, classes=3)))
    args = ["classify", "train", "--train", data, "--embeddings", "none", "--embedding-dim", 16, "--hidden", 32,
            "--epochs", 6, "--batch-size", 16, "--lr", "0.01", "--word-dropout", "0.2", "--patience", 10,
            "--dev-fraction", "0.1", "--seed", 4, "--threads", 1, "-q"]
    full = run(*args, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    killed = tmp_path / "killed"
    kill_after([*args, "--out", killed], killed, lines=2)
    assert 2 <= metrics_lines(killed) < 6
    bad = run(*args, "--out", killed, "--resume", "--hidden", 8)
    assert bad.returncode == 2
    assert "--hidden 8 conflicts with the saved configuration (hidden = 32)" in bad.stderr
    res = run(*args, "--out", killed, "--resume", "--epochs", 6)  # the same command with --resume added
    assert res.returncode == 0, res.stderr
    assert_same_run(killed, tmp_path / "full")
    configs = [json.loads((d / "config.json").read_text()) for d in (killed, tmp_path / "full")]
    assert configs[0] == configs[1]
    assert (Classifier.load(killed).predict_proba(["a good film"]) == Classifier.load(tmp_path / "full").predict_proba(
        ["a good film"])).all()


def test_resume_needs_the_same_data_and_a_started_run(tmp_path):
    opts = ClassifierOptions(**{**FAST, "epochs": 1})
    with pytest.raises(TaggerError, match="nothing to resume"):
        train_classifier(synthetic(40, seed=1), None, opts, out=tmp_path / "m", resume=True)
    train_classifier(synthetic(40, seed=1), None, opts, out=tmp_path / "m")
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "train.toml",
            "train_summary.json"} <= {p.name for p in (tmp_path / "m").iterdir()}
    with pytest.raises(TaggerError, match="already exists"):
        train_classifier(synthetic(40, seed=1), None, opts, out=tmp_path / "m")
    with pytest.raises(TaggerError, match="training data differ"):
        train_classifier(synthetic(40, seed=2, classes=3), None, None, out=tmp_path / "m", resume=True)
    _, summary = train_classifier(synthetic(40, seed=1), None, None, out=tmp_path / "m", resume=True,
                                  given={"epochs": 2, "hidden": 16})  # same hidden: accepted
    assert summary["epochs"] == 2
    with pytest.raises(TaggerError, match=r"--seed 9 conflicts with the saved configuration \(seed = 1\)"):
        train_classifier(synthetic(40, seed=1), None, None, out=tmp_path / "m", resume=True, given={"seed": 9})


def test_model_with_an_unknown_tokenizer_is_refused(tmp_path):
    clf, _ = train_classifier(synthetic(40, seed=7), None, ClassifierOptions(**{**FAST, "epochs": 1}))
    clf.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["tokenizer"] == "syntok"
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["tokenizer"] = "ptb-lite"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="unknown tokenizer 'ptb-lite'"):
        Classifier.load(tmp_path / "m")
