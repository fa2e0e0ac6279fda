"""Feature columns: read beside the words (prepare --feature-column), embedded by the model, and
read again from the same columns by evaluate, annotate and the server."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

import tagger
from tagger.commands.annotate import AnnotateOptions, annotate_paths
from tagger.commands.evaluate.run import evaluate
from tagger.commands.prepare import PrepareOptions, format_summary, prepare
from tagger.commands.train import TrainOptions, train
from tagger.errors import InputError, ModelError, TaggerError
from tagger.formats.conll import iter_conll
from tagger.formats.conllu import iter_conllu
from tagger.formats.jsonl import record_from_object
from tagger.prediction import SentenceTokens
from tagger.prepared import load_prepared

FAST = dict(hidden=16, char_encoder="none", casing=False, epochs=12, batch_size=8, seed=1, threads=1, ema=0.0,
            word_dropout=0.0, dropout=0.0, lr=0.05, feature_dim=4)


def corpus(n: int, seed: int) -> list[list[tuple[str, str, str]]]:
    """Sentences of (word, tag, label) where only the tag column says which words are entities:
    the words are drawn at random, a word tagged ``P`` is a one-word entity ``B-ENT``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sent = []
        for _ in range(rng.randint(3, 8)):
            tag = rng.choice("PQQ")
            sent.append((f"w{rng.randrange(12)}", tag, "B-ENT" if tag == "P" else "O"))
        out.append(sent)
    return out


def write(path, sentences, columns=(0, 1, 2)) -> str:
    path.write_text("".join("".join(" ".join(tok[c] for c in columns) + "\n" for tok in s) + "\n"
                            for s in sentences))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("featdata")
    return {"dir": d, "train": write(d / "train.conll", corpus(240, 1)), "dev": write(d / "dev.conll", corpus(60, 2)),
            "test": write(d / "test.conll", corpus(60, 3)), "test_sentences": corpus(60, 3)}


@pytest.fixture(scope="module")
def models(data):
    """The same corpus trained with the tag column as a feature and without it."""
    d = data["dir"]
    out = {}
    for name, columns in (("with", ["1"]), ("without", [])):
        prepare(PrepareOptions(train=data["train"], dev=data["dev"], test=data["test"], embeddings="none",
                               embedding_dim=8, feature_columns=columns), d / f"P-{name}")
        summary = train(d / f"P-{name}", d / f"M-{name}", TrainOptions(**FAST))
        out[name] = (d / f"P-{name}", d / f"M-{name}", summary)
    return out


# ----------------------------------------------------------------------------------------- readers


def test_conll_reader_reads_feature_columns(tmp_path):
    f = tmp_path / "a.conll"
    f.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n")
    sents = list(iter_conll(f, 0, -1, feature_columns=[1, 2]))
    assert sents[0].features == [["NNP", "VBZ"], ["B-NP", "B-VP"]] and sents[1].features == [["NNP"], ["B-NP"]]
    assert list(iter_conll(f, 0, -1))[0].features is None


def test_conll_reader_errors_name_the_line(tmp_path):
    f = tmp_path / "a.conll"
    f.write_text("EU NNP B-ORG\nrejects VBZ O\n")
    with pytest.raises(InputError, match=r"a\.conll:1: missing feature column: --feature-column 3"):
        list(iter_conll(f, 0, -1, feature_columns=[3]))
    with pytest.raises(InputError, match=r"a\.conll:1: feature column 2 is the label column"):
        list(iter_conll(f, 0, -1, feature_columns=[2]))


def test_conllu_reader_reads_feature_fields(tmp_path):
    f = tmp_path / "a.conllu"
    f.write_text("1\tHe\the\tPRON\tPRP\tCase=Nom\t2\tnsubj\t_\t_\n2\tleft\tleave\tVERB\tVBD\t_\t0\troot\t_\t_\n\n")
    (s,) = list(iter_conllu(f, "upos", feature_fields=["xpos", "feats", "lemma"]))
    assert s.labels == ["PRON", "VERB"]
    assert s.features == [["PRP", "VBD"], ["Case=Nom", "_"], ["he", "leave"]]
    with pytest.raises(TaggerError, match="unknown CoNLL-U feature field 'pos'"):
        list(iter_conllu(f, "upos", feature_fields=["pos"]))
    with pytest.raises(TaggerError, match="label field 'upos' cannot also be a feature field"):
        list(iter_conllu(f, "upos", feature_fields=["upos"]))


def test_prepare_takes_columns_comma_separated_or_repeated(tmp_path):
    f = tmp_path / "a.conll"
    f.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n")
    for given in (["1,2"], ["1", "2"], [" 1 , 2 "]):
        opts = PrepareOptions(train=str(f), embeddings="none", feature_columns=given)
        opts.validate()
        assert opts.feature_columns == ["1", "2"]
    prepare(PrepareOptions(train=str(f), embeddings="none", feature_columns=["1,2"]), tmp_path / "P")
    prep = load_prepared(tmp_path / "P")
    assert prep.feature_names == ["1", "2"] and prep.feature_values("train") == [[["NNP", "VBZ"], ["B-NP", "B-VP"]]]


def test_prepare_refuses_a_repeated_column_and_a_word_as_column_number(tmp_path, data):
    with pytest.raises(TaggerError, match="each column once"):
        prepare(PrepareOptions(train=data["train"], embeddings="none", feature_columns=["1", "1"]), tmp_path / "P")
    with pytest.raises(TaggerError, match="feature columns are column numbers, not 'pos'"):
        prepare(PrepareOptions(train=data["train"], embeddings="none", feature_columns=["pos"]), tmp_path / "P")


# ----------------------------------------------------------------------------------------- prepare and train


def test_prepared_directory_keeps_the_columns_and_their_vocabulary(models):
    prep = load_prepared(models["with"][0])
    assert prep.feature_names == ["1"] and prep.features[0].itos == ["<pad>", "<unk>", "Q", "P"]
    values = prep.feature_values("train")
    tokens, _ = prep.sentences("train")
    assert len(values) == len(tokens) and all(len(v[0]) == len(t) for v, t in zip(values, tokens, strict=True))
    assert prep.manifest["vocab"]["features"] == {"1": 2}
    assert "feature columns: 1 (2 values)" in format_summary(prep.manifest)
    assert load_prepared(models["without"][0]).feature_values("train") is None


def test_the_model_learns_from_the_feature_column(models):
    # The words say nothing about the labels: only the feature column does.
    assert models["with"][2]["best_dev"] > 0.97
    assert models["without"][2]["best_dev"] < 0.8
    cfg = json.loads((models["with"][1] / "config.json").read_text())
    assert cfg["model"]["feature_sizes"] == [4] and cfg["model"]["feature_dim"] == 4
    assert cfg["vocab"]["features"] == [{"column": "1", "values": ["<pad>", "<unk>", "Q", "P"]}]


def test_a_model_saved_before_feature_columns_and_context_existed_still_loads(tmp_path, models):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(models["without"][1], old)
    cfg = json.loads((old / "config.json").read_text())
    for key in ("feature_sizes", "feature_dim", "context"):
        del cfg["model"][key]
    del cfg["vocab"]["features"]
    (old / "config.json").write_text(json.dumps(cfg))
    p = tagger.load(old)
    assert p.feature_columns == [] and p.context == 0
    assert p.predict([["w1", "w2"]])[0].tags == tagger.load(models["without"][1]).predict([["w1", "w2"]])[0].tags


def test_a_config_whose_feature_vocabulary_disagrees_is_refused(tmp_path, models):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(models["with"][1], bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["vocab"]["features"][0]["values"].append("R")
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="vocabulary sizes disagree"):
        tagger.load(bad)


# ----------------------------------------------------------------------------------------- prediction


def test_predict_takes_the_values_as_argument_or_with_the_tokens(models, data):
    p = tagger.load(models["with"][1])
    assert p.feature_columns == ["1"]
    tokens = [["w1", "w2", "w3"], ["w4"]]
    values = [[["P", "Q", "P"]], [["Q"]]]
    by_argument = p.predict(tokens, features=values, scheme="iob2")
    with_tokens = p.predict([SentenceTokens(t, v) for t, v in zip(tokens, values, strict=True)], scheme="iob2")
    assert [x.tags for x in by_argument] == [x.tags for x in with_tokens] == [["B-ENT", "O", "B-ENT"], ["O"]]
    same_word = p.predict([["w1", "w1"]], features=[[["Q", "P"]]], scheme="iob2")[0]
    assert same_word.tags == ["O", "B-ENT"]
    with pytest.raises(TaggerError, match="reads the feature column"):
        p.predict(tokens)
    with pytest.raises(TaggerError, match="one value of each per token"):
        p.predict(tokens, features=[[["P"]], [["Q"]]])
    with pytest.raises(TaggerError, match="reads no feature columns"):
        tagger.load(models["without"][1]).predict(tokens, features=values)


def test_a_featured_sentence_keeps_its_values_when_sliced_and_pickled():
    import pickle

    s = SentenceTokens(["a", "b", "c"], [["X", "Y", "Z"]])
    assert s[1:].features == [["Y", "Z"]] and s[0] == "a" and list(s) == ["a", "b", "c"]
    t = pickle.loads(pickle.dumps(s))
    assert type(t) is SentenceTokens and t == s and t.features == s.features


# ----------------------------------------------------------------------------------------- evaluate


def test_evaluate_reads_the_model_columns_from_a_file_and_a_prepared_split(models, data, tmp_path):
    m = models["with"][1]
    from_file = evaluate(m, data["test"])
    from_split = evaluate(m, f"{models['with'][0]}:test")
    assert from_file["f1"] == from_split["f1"] > 0.97
    lacking = write(tmp_path / "words.conll", data["test_sentences"], columns=(0, 2))
    with pytest.raises(InputError, match=r"words\.conll:1: feature column 1 is the label column"):
        evaluate(m, lacking)
    with pytest.raises(TaggerError, match="has none"):
        evaluate(m, f"{models['without'][0]}:test")


# ----------------------------------------------------------------------------------------- annotate


def test_annotate_conll_input_reads_the_columns(models, data, tmp_path):
    m = models["with"][1]
    out = tmp_path / "out.conll"
    summary = annotate_paths(m, [data["test"]], str(out), AnnotateOptions(output_format="conll"))
    assert summary.files_failed == 0 and summary.errors == 0
    lines = [ln.split() for ln in out.read_text().splitlines() if ln.strip()]
    gold = [tok for s in data["test_sentences"] for tok in s]
    assert [ln[:3] for ln in lines] == [list(t) for t in gold]  # the input kept, a column added
    assert sum(ln[3] == ln[2] for ln in lines) / len(lines) > 0.97
    # Two worker processes, and sentences tagged in pieces of two tokens: each piece keeps its columns.
    two = tmp_path / "two.conll"
    split = annotate_paths(m, [data["test"]], str(two), AnnotateOptions(output_format="conll", workers=2,
                                                                        chunk_size=16, max_length=2))
    assert split.split > 0 and split.errors == 0
    lines2 = [ln.split() for ln in two.read_text().splitlines() if ln.strip()]
    assert [ln[:3] for ln in lines2] == [list(t) for t in gold]
    assert sum(ln[3] == ln[2] for ln in lines2) / len(lines2) > 0.97


def test_annotate_jsonl_needs_tokens_with_their_features(models, tmp_path):
    m = models["with"][1]
    src = tmp_path / "in.jsonl"
    src.write_text('{"tokens": ["w1", "w2"], "features": {"1": ["P", "Q"]}}\n{"text": "w1 w2"}\n'
                   '{"tokens": ["w1"], "features": {"1": []}}\n')
    out = tmp_path / "out.jsonl"
    summary = annotate_paths(m, [str(src)], str(out), AnnotateOptions())
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert recs[0]["tags"] == ["B-ENT", "O"]
    assert "not raw text" in recs[1]["error"] and "one per token" in recs[2]["error"]
    assert summary.errors == 2


def test_annotate_text_input_is_refused_with_the_reason(models, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("w1 w2 w3\n")
    r = subprocess.run([sys.executable, "-m", "tagger.cli", "annotate", str(models["with"][1]), str(src),
                        "--out", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "reads the feature column(s) 1 beside the words" in r.stderr and "--input-format conll" in r.stderr


def test_jsonl_record_features_are_checked_per_token():
    r = record_from_object({"tokens": ["a", "b"], "features": {"1": ["X", "Y"]}}, features=["1"])
    assert r.error is None and r.sentences[0].features == [["X", "Y"]]
    assert "a list of 2 strings" in record_from_object({"tokens": ["a", "b"], "features": {"1": ["X"]}},
                                                       features=["1"]).error


# ----------------------------------------------------------------------------------------- export and serve


def test_onnx_export_refuses_and_torch_export_keeps_them(models, tmp_path):
    pytest.importorskip("onnx")
    from tagger.onnx.export import export

    m = models["with"][1]
    with pytest.raises(TaggerError, match="feature columns cannot be exported to ONNX"):
        export(m, tmp_path / "x.onnx")
    export(m, tmp_path / "t", fmt="torch")
    tokens, values = [["w1", "w2"]], [[["P", "Q"]]]
    assert tagger.load(tmp_path / "t").predict(tokens, features=values, scheme="iob2")[0].tags == ["B-ENT", "O"]


def test_serve_takes_features_beside_tokens(models):
    pytest.importorskip("fastapi")
    from tagger.serve import ServeOptions, load_service
    from tagger.serve.service import RequestProblem

    service = load_service(models["with"][1], ServeOptions(threads=1))
    assert service.info["feature_columns"] == ["1"]
    recs = service.records(None, None, [["w1", "w2"]], [{"1": ["P", "Q"]}])
    assert recs[0].sentences[0].features == [["P", "Q"]]
    with pytest.raises(RequestProblem, match="not raw text"):
        service.records("w1 w2", None, None)
    plain = load_service(models["without"][1], ServeOptions(threads=1))
    with pytest.raises(RequestProblem, match="reads no feature columns"):
        plain.records(None, None, [["w1"]], [{"1": ["P"]}])

    from fastapi.testclient import TestClient

    from tagger.serve import create_app

    with TestClient(create_app(service)) as client:
        body = {"tokens": [["w1", "w2"]], "features": [{"1": ["P", "Q"]}], "scheme": "iob2"}
        ok = client.post("/annotate", json=body)
        assert ok.status_code == 200 and ok.json()["results"][0]["tags"] == ["B-ENT", "O"]
        unpaired = client.post("/annotate", json={"texts": ["w1"], "features": [{"1": ["P"]}]})
        assert unpaired.status_code == 422 and "'features' goes with 'tokens'" in unpaired.json()["error"]


def test_dataset_fields_as_feature_columns(tmp_path):
    pytest.importorskip("datasets")
    from tagger.formats.hf import load_hf_dataset

    f = tmp_path / "d.jsonl"
    f.write_text('{"tokens": ["EU", "rejects"], "pos": ["NNP", "VBZ"], "ner_tags": ["B-ORG", "O"]}\n'
                 '{"tokens": ["Peter"], "pos": ["NNP"], "ner_tags": ["B-PER"]}\n')
    corpora = load_hf_dataset(str(f), feature_fields=["pos"])
    assert [s.features for s in corpora["train"].sentences] == [[["NNP", "VBZ"]], [["NNP"]]]
    with pytest.raises(TaggerError, match="no feature column 'chunk'"):
        load_hf_dataset(str(f), feature_fields=["chunk"])
    with pytest.raises(TaggerError, match="feature field 'ner_tags' is the label field"):
        load_hf_dataset(str(f), feature_fields=["ner_tags"])
    f.write_text('{"tokens": ["EU", "rejects"], "pos": ["NNP"], "ner_tags": ["B-ORG", "O"]}\n')
    with pytest.raises(InputError, match=r"d\.jsonl\[train\]:1: 2 tokens but 1 'pos' values"):
        load_hf_dataset(str(f), feature_fields=["pos"])
