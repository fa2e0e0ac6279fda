"""Document context (``train --context N``): windows, their streaming in annotate, and a model that
can only be right by reading the sentence before."""

from __future__ import annotations

import json
import pickle
import random

import pytest

import tagger
from tagger.commands.annotate import AnnotateOptions, annotate_paths
from tagger.commands.evaluate.run import evaluate
from tagger.commands.prepare import PrepareOptions, prepare
from tagger.commands.train import TrainOptions, train
from tagger.context import ContextStream, window_sizes, with_context
from tagger.errors import TaggerError
from tagger.features import EncodedCorpus
from tagger.prediction import SentenceTokens
from tagger.tokens import Encoded

FAST = dict(hidden=16, char_encoder="none", casing=False, epochs=15, batch_size=8, seed=1, threads=1, ema=0.0,
            word_dropout=0.0, dropout=0.0, lr=0.05)


def brute_context(sentences, docs, n):
    """Left and right context of each sentence by slicing its document's tokens laid end to end."""
    out = []
    for i, s in enumerate(sentences):
        mine = [j for j in range(len(sentences)) if docs[j] == docs[i]]
        flat = [t for j in mine for t in sentences[j]]
        start = sum(len(sentences[j]) for j in mine if j < i)
        out.append((flat[max(0, start - n) : start], flat[start + len(s) : start + len(s) + n]))
    return out


def random_corpus(rng, n_sent):
    sentences = [[f"t{rng.randrange(100)}" for _ in range(rng.choice([0, 1, 2, 3, 5, 8]))] for _ in range(n_sent)]
    docs, d = [], 0
    for _ in sentences:
        d += rng.random() < 0.25
        docs.append(d)
    return sentences, docs


@pytest.mark.parametrize("seed", range(20))
def test_context_equals_slicing_the_document(seed):
    rng = random.Random(seed)
    sentences, docs = random_corpus(rng, rng.randint(1, 12))
    n = rng.choice([0, 1, 2, 4, 7, 30])
    got = with_context(sentences, docs, n)
    want = brute_context(sentences, docs, n)
    assert [(list(s.left), list(s.right)) for s in got] == want
    assert window_sizes([len(s) for s in sentences], docs, n) == [(len(a), len(b)) for a, b in want]
    assert all(list(s) == t and s.reach == n for s, t in zip(got, sentences, strict=True))


def test_context_carries_feature_values():
    sents = [SentenceTokens(["a", "b"], [["A", "B"]]), SentenceTokens(["c"], [["C"]]), SentenceTokens(["d"], [["D"]])]
    mid = with_context(sents, [0, 0, 0], 2)[1]
    assert list(mid.left) == ["a", "b"] and mid.left.features == [["A", "B"]]
    assert list(mid.right) == ["d"] and mid.right.features == [["D"]] and mid.features == [["C"]]


class _Item:
    def __init__(self, sents, doc):
        self.sents, self.doc = sents, doc


@pytest.mark.parametrize("seed", range(15))
def test_the_stream_gives_what_the_whole_corpus_gives_and_reads_ahead_little(seed):
    rng = random.Random(seed)
    n = rng.choice([1, 3, 6, 20])
    items, flat, docs = [], [], []
    for d in range(rng.randint(1, 4)):
        for _ in range(rng.randint(1, 5)):
            sents = [[f"t{rng.randrange(50)}" for _ in range(rng.randint(1, 6))] for _ in range(rng.randint(0, 3))]
            items.append(_Item(sents, d))
            flat += sents
            docs += [d] * len(sents)
    read = []

    def source():
        for it in items:
            read.append(it)
            yield it

    out, ahead = [], []
    for it in ContextStream(n, lambda it: it.doc if it.sents else None)(source()):
        out.append(it)
        ahead.append(sum(len(s) for x in read[len(out):] for s in x.sents))
    assert out == items  # every item, in order
    got = [(list(s.left), list(s.right)) for it in out for s in it.sents]
    assert got == brute_context(flat, docs, n)
    biggest = max((sum(len(s) for s in it.sents) for it in items), default=0)
    assert max(ahead, default=0) <= n + biggest  # bounded look-ahead


def test_a_piece_of_a_sentence_keeps_the_tokens_around_it():
    s = SentenceTokens(list("abcdef"), [list("ABCDEF")], left=SentenceTokens(["x", "y"], [["X", "Y"]]),
                       right=SentenceTokens(["z"], [["Z"]]), reach=2)
    mid = s[2:4]
    assert (list(mid), mid.features) == (["c", "d"], [["C", "D"]])
    assert (list(mid.left), list(mid.right)) == (["a", "b"], ["e", "f"])
    first, last = s[:2], s[4:]
    assert (list(first.left), first.left.features, list(first.right)) == (["x", "y"], [["X", "Y"]], ["c", "d"])
    assert (list(last.left), list(last.right), last.right.features) == (["c", "d"], ["z"], [["Z"]])
    back = pickle.loads(pickle.dumps(s))
    assert type(back) is SentenceTokens and back.left.features == [["X", "Y"]] and back.reach == 2
    with pytest.raises(ValueError, match="step 1"):
        s[::2]


def test_batches_hold_windows_and_score_the_sentences_alone():
    items = [Encoded([2, 3], [[1], [2]], [1, 1], [1, 2]), Encoded([4], [[3]], [1], [3]),
             Encoded([5, 6, 7], [[1]] * 3, [1] * 3, [1, 1, 1])]
    corpus = EncodedCorpus(items)
    corpus.set_context([0, 0, 1], 1)
    b = corpus.batch([1, 0, 2])
    # sentence 1: a token before it, none after (sentence 2 is another document); sentence 2 alone
    assert b.words.tolist() == [[3, 4, 0], [2, 3, 4], [5, 6, 7]]
    assert b.context.tolist() == [[1, 2], [0, 3], [0, 3]]
    assert b.mask.tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert b.tags.tolist() == [[3, 0, 0], [1, 2, 0], [1, 1, 1]]
    assert corpus.row_lengths().tolist() == [3, 2, 3]


# ------------------------------------------------------------------------------------------ a model


def marker_corpus(n_docs: int, seed: int) -> list[list[list[tuple[str, str]]]]:
    """Documents of two sentences: a marker ``A`` or ``B``, then words that are entities after ``A``
    and not after ``B``. The words alone cannot tell: only the sentence before can."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        marker = rng.choice("AB")
        words = [(f"w{rng.randrange(10)}", "B-ENT" if marker == "A" else "O") for _ in range(rng.randint(1, 4))]
        docs.append([[(marker, "O")], words])
    return docs


def write_docs(path, docs) -> str:
    text = "".join("-DOCSTART- O\n\n" + "".join("".join(f"{w} {lab}\n" for w, lab in s) + "\n" for s in d)
                   for d in docs)
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctx")
    files = {s: write_docs(d / f"{s}.conll", marker_corpus(k, i)) for i, (s, k) in
             enumerate([("train", 150), ("dev", 40), ("test", 40)])}
    prepare(PrepareOptions(train=files["train"], dev=files["dev"], test=files["test"], embeddings="none",
                           embedding_dim=8), d / "P")
    out = {"files": files, "dir": d}
    for name, context in (("with", 4), ("without", 0)):
        out[name] = (d / f"M-{name}", train(d / "P", d / f"M-{name}", TrainOptions(**FAST, context=context)))
    return out


def test_the_model_reads_the_sentence_before(models):
    assert models["with"][1]["best_dev"] > 0.97
    assert models["without"][1]["best_dev"] < 0.8
    assert json.loads((models["with"][0] / "config.json").read_text())["model"]["context"] == 4
    p = tagger.load(models["with"][0])
    assert p.context == 4
    a, b = with_context([["A"], ["w1", "w2"]], [0, 0], 4), with_context([["B"], ["w1", "w2"]], [0, 0], 4)
    assert p.predict(a, scheme="iob2")[1].tags == ["B-ENT", "B-ENT"]
    assert p.predict(b, scheme="iob2")[1].tags == ["O", "O"]


def test_evaluate_and_annotate_read_the_documents(models, tmp_path):
    m, test = models["with"][0], models["files"]["test"]
    scores = evaluate(m, test)
    assert scores["f1"] > 0.97 and evaluate(m, f"{models['dir'] / 'P'}:test")["f1"] == scores["f1"]
    out = tmp_path / "out.conll"
    annotate_paths(m, [test], str(out), AnnotateOptions(output_format="conll", chunk_size=3))
    rows = [ln.split() for ln in out.read_text().splitlines() if ln.strip() and not ln.startswith("-DOCSTART-")]
    assert sum(r[1] == r[2] for r in rows) / len(rows) > 0.97
    # JSON lines: a record is a document of its own unless consecutive records share "doc".
    src = tmp_path / "in.jsonl"
    src.write_text('{"tokens": ["A"], "doc": 1}\n{"tokens": ["w3"], "doc": 1}\n{"tokens": ["w3"]}\n'
                   '{"text": "B w3"}\n')
    annotate_paths(m, [str(src)], str(tmp_path / "o.jsonl"), AnnotateOptions(scheme="iob2"))
    recs = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert recs[1]["tags"] == ["B-ENT"]  # after "A" in its document
    want = tagger.load(m).predict([["w3"]], scheme="iob2")[0].tags
    assert recs[2]["tags"] == want  # alone: no context


def test_a_raw_text_file_is_one_document(models, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("A\nw1 w2\nB\nw1 w2\n")
    out = tmp_path / "o.jsonl"
    annotate_paths(models["with"][0], [str(src)], str(out), AnnotateOptions(input_format="tokens", scheme="iob2"))
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    p = tagger.load(models["with"][0])
    want = p.predict(with_context([["A"], ["w1", "w2"], ["B"], ["w1", "w2"]], [0] * 4, 4), scheme="iob2")
    assert [r["tags"] for r in recs] == [x.tags for x in want]


def test_onnx_export_refuses_a_context_model(models, tmp_path):
    pytest.importorskip("onnx")
    from tagger.onnx.export import export

    with pytest.raises(TaggerError, match="document context cannot be exported to ONNX"):
        export(models["with"][0], tmp_path / "x")


def test_a_served_text_is_a_document(models):
    pytest.importorskip("fastapi")
    from tagger.serve import ServeOptions, load_service

    service = load_service(models["with"][0], ServeOptions(threads=1))
    (rec,) = service.records("A is here. The w1 w2 are there.", None, None)
    first, second = rec.sentences
    assert (list(first.left), list(first.right)) == ([], ["The", "w1", "w2", "are"])
    assert (list(second.left), list(second.right)) == (["A", "is", "here", "."], [])
    (alone,) = service.records(None, None, [["w1", "w2"]])
    assert alone.sentences == [["w1", "w2"]] and getattr(alone.sentences[0], "left", None) is None
