"""tagger prepare end to end: sample data, datasets, bad input, shared corpora."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import SAMPLE, SHARED, needs_shared

from tagger.commands.prepare import PrepareOptions, prepare
from tagger.errors import TaggerError
from tagger.prepared import load_prepared


def opts(**kw):
    base = dict(train=str(SAMPLE / "train.conll"), dev=str(SAMPLE / "dev.conll"),
                test=str(SAMPLE / "test.conll"), embeddings="none", embedding_dim=20)
    base.update(kw)
    return PrepareOptions(**base)


def test_prepare_sample(tmp_path):
    m = prepare(opts(), tmp_path / "P")
    assert m["task"] == "entity" and m["scheme"] == "bioes"
    assert m["splits"]["train"]["input_scheme"] == "iob1"
    assert m["splits"]["train"]["sentences"] == 400
    assert set(m["splits"]["test"]["entities"]) == {"PER", "ORG", "LOC", "MISC"}
    assert all(len(h) == 64 for h in m["inputs"].values())
    p = load_prepared(tmp_path / "P")
    toks, labels = p.sentences("train")
    assert len(toks) == 400 and any(lab.startswith("S-") for s in labels for lab in s)
    assert p.matrix.shape == (len(p.words), 20)
    assert json.loads((tmp_path / "P" / "prepare.json").read_text())["splits"]["dev"]["sentences"] == 100


def test_corrupt_prepared_directory_is_a_clean_error(tmp_path):
    """A FIFO (would block), a directory, or a vocabulary with missing keys: TaggerError, no hang."""
    import os
    import shutil

    prepare(opts(), tmp_path / "P")
    cases = {
        "fifo": lambda d: (os.unlink(d / "vocab.json"), os.mkfifo(d / "vocab.json")),
        "directory": lambda d: (os.unlink(d / "prepare.json"), os.mkdir(d / "prepare.json")),
        "dataset is a file": lambda d: (shutil.rmtree(d / "dataset"), (d / "dataset").write_text("x")),
        "vocab keys": lambda d: (d / "vocab.json").write_text('{"words": []}'),
        "vocab a list": lambda d: (d / "vocab.json").write_text("[1, 2]"),
        "extra words": lambda d: (d / "extra_words.json").write_text("{not json"),
    }
    for name, damage in cases.items():
        d = tmp_path / name
        shutil.copytree(tmp_path / "P", d)
        damage(d)
        with pytest.raises(TaggerError, match="corrupt prepared directory"):
            load_prepared(d)


def test_iob2_output_round_trips_entities(tmp_path):
    a = prepare(opts(scheme="iob2"), tmp_path / "A")
    b = prepare(opts(scheme="bioes"), tmp_path / "B")
    assert a["splits"]["train"]["entities"] == b["splits"]["train"]["entities"]


def test_pos_task_is_plain(tmp_path):
    m = prepare(opts(label_column=1), tmp_path / "P")
    assert m["task"] == "plain" and m["scheme"] == "plain"
    assert "entities" not in m["splits"]["train"]


def test_dev_fraction_is_seeded(tmp_path):
    o = opts(dev=None, dev_fraction=0.2, seed=7)
    a = prepare(o, tmp_path / "A")
    prepare(opts(dev=None, dev_fraction=0.2, seed=7), tmp_path / "B")
    assert a["splits"]["dev"]["sentences"] == 80 and a["splits"]["train"]["sentences"] == 320
    pa, pb = load_prepared(tmp_path / "A"), load_prepared(tmp_path / "B")
    assert pa.sentences("dev")[0] == pb.sentences("dev")[0]


def test_pretrained_only_words_are_kept(tmp_path):
    vec = tmp_path / "v.txt"
    vec.write_text("the 0.1 0.2\nzanzibar 0.3 0.4\nchelsea 0.5 0.6\n")
    m = prepare(opts(embeddings=str(vec)), tmp_path / "P")
    p = load_prepared(tmp_path / "P")
    assert "zanzibar" in p.extra and m["vocab"]["extra_words"] == len(p.extra)
    look = p.lookup()
    assert look("Zanzibar") >= look.num_trained  # lowercase lookup reaches the pretrained word
    np.testing.assert_allclose(p.extra_matrix[p.extra.index("zanzibar")], [0.3, 0.4])
    np.testing.assert_allclose(p.matrix[p.words["Chelsea"]], [0.5, 0.6])  # lowercase match


def test_bad_line_fails_and_writes_nothing(tmp_path):
    lines = (SAMPLE / "train.conll").read_text().splitlines()
    # break a token line inside the 5th sentence
    starts = [i for i, line in enumerate(lines)
              if line and not line.startswith("-DOCSTART-") and (i == 0 or not lines[i - 1])]
    bad_line = starts[4] + 1
    lines[bad_line] = lines[bad_line].rsplit(" ", 1)[0]
    f = tmp_path / "bad.conll"
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "P"
    r = subprocess.run([sys.executable, "-m", "tagger.cli", "prepare", "--train", str(f), "--out", str(out),
                        "--embeddings", "none"], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"bad.conll:{bad_line + 1}:" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".P*"))


def test_existing_out_needs_force(tmp_path):
    prepare(opts(), tmp_path / "P")
    with pytest.raises(TaggerError, match="already exists"):
        prepare(opts(), tmp_path / "P")
    prepare(opts(), tmp_path / "P", force=True)


def test_option_errors(tmp_path):
    with pytest.raises(TaggerError):
        prepare(opts(train=None), tmp_path / "P")
    with pytest.raises(TaggerError):
        prepare(opts(dev_fraction=1.5), tmp_path / "P")
    with pytest.raises(TaggerError, match="label-field"):
        prepare(opts(format="conllu", label_field="lemma"), tmp_path / "P")
    assert not (tmp_path / "P").exists()


def test_hf_datasets_local_files(tmp_path):
    """The datasets path on local files: ClassLabel ids mapped back to tag strings."""
    import datasets

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    rows = {"tokens": [["John", "lives", "in", "Paris"], ["Mary", "Smith"]], "ner_tags": [[1, 0, 0, 3], [1, 2]]}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=feats),
                               "validation": datasets.Dataset.from_dict(rows, features=feats)})
    dd.save_to_disk(str(tmp_path / "ds"))
    m = prepare(PrepareOptions(dataset=str(tmp_path / "ds"), embeddings="none", embedding_dim=8), tmp_path / "P")
    assert m["splits"]["train"]["entities"] == {"LOC": 1, "PER": 2}
    assert "dev" in m["splits"] and m["splits"]["train"]["input_scheme"] == "iob2"
    # a JSON-lines file through datasets.load_dataset("json", ...)
    js = tmp_path / "d.jsonl"
    js.write_text('{"tokens": ["a", "b"], "pos_tags": ["DT", "NN"]}\n')
    m = prepare(PrepareOptions(dataset=str(js), embeddings="none", embedding_dim=8), tmp_path / "Q")
    assert m["task"] == "plain" and m["splits"]["train"]["labels"] == {"DT": 1, "NN": 1}


def test_hf_hub_name_unreachable_is_clean_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaggerError, match="cannot load dataset|not found"):
        prepare(PrepareOptions(dataset="no-such-user/no-such-dataset-xyz", embeddings="none"), tmp_path / "P")


def test_word2vec_on_corpus(tmp_path):
    m = prepare(opts(embeddings="word2vec", embedding_dim=16), tmp_path / "P")
    assert m["embeddings"]["dim"] == 16 and m["embeddings"]["token_coverage"] > 0.99


@needs_shared
def test_conll2003_counts(tmp_path):
    d = SHARED / "conll2003"
    m = prepare(PrepareOptions(train=str(d / "eng.train"), dev=str(d / "eng.testa"), test=str(d / "eng.testb"),
                               embeddings="glove-6b-50d"), tmp_path / "P")
    s = m["splits"]
    assert (s["train"]["sentences"], s["train"]["tokens"], s["train"]["documents"]) == (14041, 203621, 946)
    assert (s["dev"]["sentences"], s["dev"]["tokens"], s["dev"]["documents"]) == (3250, 51362, 216)
    assert (s["test"]["sentences"], s["test"]["tokens"], s["test"]["documents"]) == (3453, 46435, 231)
    assert s["train"]["entities"] == {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}
    assert s["dev"]["entities"] == {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}
    assert s["test"]["entities"] == {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}
    assert m["embeddings"]["token_coverage"] > 0.95


@needs_shared
def test_ud_lines_conllu(tmp_path):
    d = SHARED / "ud-english-lines"
    m = prepare(PrepareOptions(train=str(d / "en_lines-ud-train.conllu"), dev=str(d / "en_lines-ud-dev.conllu"),
                               test=str(d / "en_lines-ud-test.conllu"), format="conllu", embeddings="none"),
                tmp_path / "P")
    s = m["splits"]
    assert [s[k]["sentences"] for k in ("train", "dev", "test")] == [3457, 1118, 1121]
    assert [s[k]["tokens"] for k in ("train", "dev", "test")] == [64684, 21637, 19984]
    assert m["vocab"]["labels"] == 17 and m["task"] == "plain"


@needs_shared
def test_conll2000_pos(tmp_path):
    d = SHARED / "conll2000"
    m = prepare(PrepareOptions(train=str(d / "train.txt"), test=str(d / "test.txt"), label_column=1,
                               dev_fraction=0.1, embeddings="none"), tmp_path / "P")
    s = m["splits"]
    assert m["vocab"]["labels"] == 44 and m["task"] == "plain"
    assert all(s[k]["repaired"] == 0 for k in s)
    assert s["train"]["sentences"] + s["dev"]["sentences"] == 8936 and s["test"]["sentences"] == 2012
