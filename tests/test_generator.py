"""Tests for tagger.commands.generate, tagger.kneser_ney and ``tagger generate``."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tagger import modeldir
from tagger.cli import main
from tagger.commands.generate import (
    EOS,
    EOS_ID,
    UNK,
    UNK_ID,
    Generator,
    GeneratorOptions,
    LMVocab,
    batchify,
    filter_logits,
    perplexity_from,
    stream,
    train_generator,
    trigram_baseline,
)
from tagger.errors import ModelError, TaggerError
from tagger.formats.detect import detect_text_format
from tagger.formats.read import read_sentences
from tagger.kneser_ney import KneserNeyTrigram
from tagger.nn.language_model import LMConfig, LSTMLanguageModel, default_cutoffs, stream_log_likelihood

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
CHAIN = "a b c d e f g h".split()
TINY = dict(embeddings="none", embedding_dim=24, hidden=24, dropout=0.0, bptt=10, batch_size=4, epochs=40, lr=0.02,
            min_count=1, threads=1)


@pytest.fixture(scope="module")
def chain_model() -> Generator:
    """A tiny model of a corpus with one deterministic continuation: a b c ... h <eos> a b ..."""
    gen, _ = train_generator([CHAIN] * 40, None, GeneratorOptions(**TINY))
    return gen


# --------------------------------------------------------------------------- reading


def test_detects_conll_and_text(tmp_path):
    assert detect_text_format(SAMPLE / "train.conll") == "conll"
    text = tmp_path / "t.txt"
    text.write_text("the cat sat .\nthe cat sat on the mat .\n\nthe dog ran .\n")
    assert detect_text_format(text) == "text"
    assert read_sentences(text) == [["the", "cat", "sat", "."], "the cat sat on the mat .".split(),
                                    ["the", "dog", "ran", "."]]
    same = tmp_path / "same.txt"  # equal-length lines in blocks look like CoNLL: --format text decides
    same.write_text("the cat sat .\nthe dog ran .\n\na b c d\n")
    assert detect_text_format(same) == "conll"
    assert read_sentences(same, format="text") == [["the", "cat", "sat", "."], ["the", "dog", "ran", "."], list("abcd")]
    conll = read_sentences(SAMPLE / "train.conll")
    assert len(conll) == 400 and all(len(s) > 0 for s in conll)
    assert all(not t.startswith(("B-", "I-")) for s in conll for t in s)  # the token column, not labels
    conllu = tmp_path / "x.conllu"
    conllu.write_text("# text = Hi there\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n"
                      "2\tthere\tthere\tADV\tRB\t_\t1\tadvmod\t_\t_\n\n")
    assert read_sentences(conllu) == [["Hi", "there"]]


def test_vocab_unk_and_stream():
    v = LMVocab.build([["x", "y", "x"], ["x", "z"]], min_count=2)
    assert v.itos == [UNK, EOS, "x"]
    assert v.encode(["x", "y", "never"]) == [2, UNK_ID, UNK_ID]
    assert stream([[2, 3], [4]]) == [EOS_ID, 2, 3, EOS_ID, 4, EOS_ID]
    assert batchify(list(range(10)), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(TaggerError):
        batchify([1, 2], 3)


# --------------------------------------------------------------------------- perplexity


@pytest.mark.parametrize("batch_size", [1, 3])
def test_uniform_model_perplexity_is_vocab_size(batch_size):
    V = 37
    m = LSTMLanguageModel(LMConfig(vocab_size=V, embed_dim=8, hidden=8, tie=False))
    with torch.no_grad():
        m.decoder.weight.zero_()
        m.decoder.bias.zero_()
    ids = stream([[random.Random(i).randrange(V) for _ in range(7)] for i in range(11)])
    ll, n = stream_log_likelihood(m, ids, batch_size=batch_size, bptt=5)
    assert n == len(ids) - 1 == 11 * 8
    assert perplexity_from(ll, n) == pytest.approx(V, rel=1e-5)


@pytest.mark.parametrize("cutoffs, tie, embed", [([], True, 8), ([], True, 6), ([], False, 8), ([4, 9], False, 16)])
def test_output_layers_are_distributions(cutoffs, tie, embed):
    m = LSTMLanguageModel(LMConfig(vocab_size=15, embed_dim=embed, hidden=16, tie=tie, cutoffs=cutoffs)).eval()
    logp, _ = m(torch.tensor([[1, 2, 3]]))
    assert logp.shape == (1, 3, 15)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(1, 3), atol=1e-5)
    h, _ = m.features(torch.tensor([[1, 2, 3]]))
    tgt = torch.tensor([4, 0, 14])
    assert torch.allclose(m.target_log_probs(h[0], tgt), logp[0].gather(1, tgt[:, None]).squeeze(1), atol=1e-5)


def test_batched_evaluation_matches_single_stream_closely(chain_model):
    sents = [CHAIN] * 5
    one = chain_model.evaluate(sents, batch_size=1)
    four = chain_model.evaluate(sents, batch_size=4)
    assert one["tokens"] == four["tokens"] == 45
    assert one["perplexity"] < 1.5 and four["perplexity"] < 3


def test_default_cutoffs():
    assert default_cutoffs(100) == []
    assert default_cutoffs(12000) == [2000, 6000]
    assert default_cutoffs(5000) == [2000]


# --------------------------------------------------------------------------- sampling


def test_greedy_reproduces_the_deterministic_continuation(chain_model):
    s = chain_model.sample("a b c", words=5, temperature=0)
    assert s.tokens == ["d", "e", "f", "g", "h"]
    s = chain_model.sample("e f", words=20, temperature=0, stop_at_eos=True)
    assert s.tokens == ["g", "h"] and s.stopped_at_eos and s.text == "e f g h"
    s = chain_model.sample("e f g", words=3, temperature=0)
    assert s.tokens == ["h", EOS, "a", "b"] and s.text == "e f g h\na b"


def test_sampling_is_seeded_and_reproducible():
    torch.manual_seed(0)
    m = LSTMLanguageModel(LMConfig(vocab_size=30, embed_dim=8, hidden=8))
    gen = Generator(m, LMVocab([f"w{i}" for i in range(28)]), {})
    a = gen.sample("w1 w2", words=25, temperature=1.5, seed=7)
    b = gen.sample("w1 w2", words=25, temperature=1.5, seed=7)
    c = gen.sample("w1 w2", words=25, temperature=1.5, seed=8)
    assert a.tokens == b.tokens and a.tokens != c.tokens
    assert len([t for t in a.tokens if t != EOS]) == 25
    k1 = gen.sample("w1", words=15, top_k=1, seed=3)
    assert k1.tokens == gen.sample("w1", words=15, temperature=0).tokens  # top-1 is greedy
    assert UNK not in gen.sample("nope", words=40, temperature=3.0, seed=1, allow_unk=False).tokens
    assert gen.sample("nope w1", words=1).unknown_seed == ["nope"]
    with pytest.raises(TaggerError):
        gen.sample("w1", temperature=-1)


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [False, False, True, True]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [False, False, True, True]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [False, True, True, True]
    assert torch.isinf(filter_logits(logits, top_p=0.9)).tolist() == [False, False, False, True]
    assert not torch.isinf(filter_logits(logits)).any()


# --------------------------------------------------------------------------- Kneser-Ney


CORPUS = [[2, 3, 4], [2, 3, 5, 6], [3, 4, 4, 2], [6], [2, 3, 4, 7]]


@pytest.mark.parametrize("context", [(EOS_ID, EOS_ID), (2, 3), (3, 4), (7, 2), (0, 0), (5, 9), (9, 9)])
def test_kneser_ney_sums_to_one(context):
    kn = KneserNeyTrigram(10, bos=EOS_ID, eos=EOS_ID).fit(CORPUS)
    dist = kn.distribution(*context)
    assert sum(dist) == pytest.approx(1.0, abs=1e-12)
    assert min(dist) > 0  # unseen words (and <unk>) keep some mass


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 7), max_size=6), min_size=1, max_size=12), st.integers(0, 7), st.integers(0, 7))
def test_kneser_ney_is_a_distribution_for_any_corpus(corpus, u, v):
    kn = KneserNeyTrigram(8, bos=1, eos=1).fit(corpus)
    assert sum(kn.distribution(u, v)) == pytest.approx(1.0, abs=1e-9)


def test_kneser_ney_prefers_seen_continuations_and_scores_text():
    kn = KneserNeyTrigram(10, bos=EOS_ID, eos=EOS_ID).fit(CORPUS)
    assert kn.prob(4, 2, 3) > kn.prob(5, 2, 3) > kn.prob(9, 2, 3)
    seen = kn.perplexity(CORPUS)
    assert 1 < seen < 10  # better than uniform on its own training text
    assert kn.perplexity([[9, 8, 9]]) > seen


def test_trigram_baseline_on_same_vocab():
    train = [s.split() for s in ["the cat sat", "the cat ran", "a dog sat"]]
    v = LMVocab.build(train, min_count=1)
    res = trigram_baseline(v, train, [["the", "cat", "flew"]])
    assert res["tokens"] == 4 and math.isfinite(res["perplexity"])


# --------------------------------------------------------------------------- model dirs and CLI


def test_model_dir_round_trip(chain_model, tmp_path):
    chain_model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    back = Generator.load(tmp_path / "m")
    x = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(back.model(x)[0], chain_model.model(x)[0])
    assert back.sample("a", words=6, seed=2).tokens == chain_model.sample("a", words=6, seed=2).tokens
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model"]["vocab_size"] += 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError):
        Generator.load(tmp_path / "m")


def test_cli_train_sample_evaluate(tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(" ".join(CHAIN) for _ in range(30)) + "\n")
    held = tmp_path / "held.txt"
    held.write_text("a b c d e f g h\na b c x\n")
    runner = CliRunner()
    flags = ["--embeddings", "none", "--embedding-dim", "16", "--hidden", "16", "--dropout", "0", "--bptt", "8",
             "--batch-size", "4",
             "--epochs", "25", "--lr", "0.02", "--min-count", "1", "--threads", "1", "-q"]
    res = runner.invoke(main, ["generate", "train", "--text", str(text), "--dev", str(held),
                               "--out", str(tmp_path / "lm"), *flags])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["generate", "sample", str(tmp_path / "lm"), "--seed-text", "b c", "--words", "4",
                               "--temperature", "0"])
    assert res.exit_code == 0 and res.stdout.strip() == "b c d e f g"
    sample = ["generate", "sample", str(tmp_path / "lm"), "--words", "12", "--seed", "5", "--top-p", "0.9", "--json"]
    s1, s2 = runner.invoke(main, sample), runner.invoke(main, sample)
    assert s1.exit_code == 0 and s1.stdout == s2.stdout and json.loads(s1.stdout)["generated"]
    res = runner.invoke(main, ["generate", "evaluate", str(tmp_path / "lm"), "--text", str(held),
                               "--baseline-train", str(text)])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("perplexity: ") and "trigram perplexity: " in res.stdout
    res = runner.invoke(main, ["generate", "evaluate", str(tmp_path / "lm"), "--text", str(held), "--json"])
    data = json.loads(res.stdout)
    assert data["tokens"] == 14 and data["perplexity"] > 1


def test_cli_wrong_kind_and_bad_input_exit_2(tmp_path):
    clf = tmp_path / "clf"
    clf.mkdir()
    modeldir.write_config(clf, "classifier", {})
    tagger_dir = tmp_path / "tagger"
    tagger_dir.mkdir()
    modeldir.write_config(tagger_dir, "tagger", {})
    runner = CliRunner()
    for d in (clf, tagger_dir):
        res = runner.invoke(main, ["generate", "sample", str(d), "--seed-text", "x"])
        assert res.exit_code == 2 and "a generator model is needed" in res.output
    res = runner.invoke(main, ["classify", "predict", str(tagger_dir), str(tmp_path), "--out", "-"])
    assert res.exit_code == 2
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\ncaf\xe9\n")
    res = runner.invoke(main, ["generate", "train", "--text", str(bad), "--out", str(tmp_path / "lm")])
    assert res.exit_code == 2 and f"{bad}:2" in res.output


# --------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    """Killed mid-run and resumed: the same perplexities, learning-rate decays and weights, bit for bit."""
    from resume_util import assert_same_run, kill_after, metrics, metrics_lines, run

    args = ["generate", "train", "--text", SAMPLE / "train.conll", "--dev", SAMPLE / "news.txt", "--embeddings", "none",
            "--embedding-dim", 32, "--hidden", 64, "--bptt", 10, "--batch-size", 8, "--epochs", 8, "--min-count", 1,
            "--lr", "0.03", "--lr-decay", "0.5", "--seed", 3, "--threads", 1, "-q"]
    full = run(*args, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    assert len({r["lr"] for r in metrics(tmp_path / "full")}) > 1  # the plateau decay is part of what resumes
    killed = tmp_path / "killed"
    kill_after([*args, "--out", killed], killed, lines=2)
    assert 2 <= metrics_lines(killed) < 8
    bad = run(*args, "--out", killed, "--resume", "--bptt", 20)
    assert bad.returncode == 2 and "--bptt 20 conflicts with the saved configuration (bptt = 10)" in bad.stderr
    res = run(*args, "--out", killed, "--resume")
    assert res.returncode == 0, res.stderr
    assert_same_run(killed, tmp_path / "full")
    a, b = (Generator.load(d) for d in (killed, tmp_path / "full"))
    assert a.sample("the", words=8, seed=2).tokens == b.sample("the", words=8, seed=2).tokens


def test_training_into_a_directory_and_resume_of_a_finished_run(tmp_path):
    sents = [CHAIN] * 20
    opts = GeneratorOptions(**{**TINY, "epochs": 2})
    gen, summary = train_generator(sents, None, opts, out=tmp_path / "lm")
    assert summary["epochs"] == 2 and summary["best_dev"] is None
    back = Generator.load(tmp_path / "lm")
    assert back.sample("a b", words=4, temperature=0).tokens == gen.sample("a b", words=4, temperature=0).tokens
    _, again = train_generator(sents, None, None, out=tmp_path / "lm", resume=True)  # finished: nothing to do
    assert again["epochs"] == 2
    _, more = train_generator(sents, None, None, out=tmp_path / "lm", resume=True, given={"epochs": 3})
    assert more["epochs"] == 3
    with pytest.raises(TaggerError, match="training data differ from those of the saved run"):
        train_generator([["x", "y"]] * 20, None, None, out=tmp_path / "lm", resume=True, given={"epochs": 4})


def test_long_conll_file_without_docstart_or_suffix_is_conll(tmp_path):
    """Blank lines are counted over the lines the sniffed rows come from, not the whole 64 KB head
    (eng.testa, which starts without -DOCSTART-, was read as text: its POS and NER columns became words)."""
    sentences = [[f"w{i}{j} NN I-NP O" for j in range(3 + i % 9)] for i in range(2000)]
    path = tmp_path / "corpus"
    path.write_text("\n\n".join("\n".join(s) for s in sentences) + "\n")
    assert detect_text_format(path) == "conll"
    got = read_sentences(path)
    assert len(got) == 2000 and got[0] == ["w00", "w01", "w02"]
