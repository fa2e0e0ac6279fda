"""Training on the bundled sample: learning, determinism, resume after SIGKILL, model files."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import SAMPLE
from resume_util import strip_timing

import tagger
from tagger.commands.prepare import PrepareOptions, prepare
from tagger.commands.train import TrainOptions, train
from tagger.errors import ModelError, TaggerError

SMALL = dict(hidden=32, char_filters=16, epochs=3, batch_size=16, seed=3, threads=1)  # bit-exact needs fixed threads


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("prep")
    vec = d / "vectors.txt"
    # tiny "pretrained" vectors: a word that never occurs in the sample gets a vector too
    vec.write_text("the 0.1 0.2 0.3 0.4\nberlin 0.5 0.1 0.1 0.1\nzanzibar 0.9 0.9 0.9 0.9\n")
    prepare(PrepareOptions(train=str(SAMPLE / "train.conll"), dev=str(SAMPLE / "dev.conll"),
                           test=str(SAMPLE / "test.conll"), embeddings=str(vec)), d / "P")
    return d / "P"


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_learns_the_sample(learned):
    out, summary = learned
    assert summary["best_dev"] > 0.9
    pred = tagger.load(out)
    from tagger.prepared import load_prepared

    toks, gold = load_prepared(pred.config["training"]["prepared"]).sentences("train")
    preds = pred.predict(toks)
    from tagger.metrics import entity_scores

    assert entity_scores(gold, [p.tags for p in preds], "bioes")["f1"] > 0.97


def test_model_directory_contents(learned):
    out, _ = learned
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "metrics.jsonl", "train.toml", "extra_embeddings.safetensors"} <= names
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "tagger" and cfg["scheme"] == "bioes" and cfg["vocab"]["labels"][0] == "<pad>"
    rows = _metrics(out)
    assert [r["epoch"] for r in rows] == list(range(1, 16))
    assert all({"loss", "lr", "dev", "seconds"} <= set(r) for r in rows)


def test_predictor_api(prepared, tmp_path):
    train(prepared, tmp_path / "M", TrainOptions(**SMALL))
    p = tagger.load(tmp_path / "M")
    [r, empty] = p.predict([["Peter", "Smith", "visited", "Zanzibar", "."], []])
    assert len(r.tags) == 5 and empty.tags == []
    assert all(0.0 <= s <= 1.0 for s in r.scores)
    for e in r.entities:
        assert 0 <= e.start < e.end <= 5 and 0.0 < e.score <= 1.0
    # a word never seen in training but in the pretrained vectors keeps its pretrained vector
    idx = p.lookup("Zanzibar")
    assert idx >= p.lookup.num_trained
    vec = p.model.word_embed(torch.tensor([[idx]]))[0, 0]
    torch.testing.assert_close(vec, torch.tensor([0.9, 0.9, 0.9, 0.9]))
    nb = p.predict([["Peter", "Smith", "visited", "Berlin"]], nbest=3)[0].nbest
    assert len(nb) == 3 and all(len(t) == 4 for t, _ in nb)
    assert nb[0][1] >= nb[1][1] >= nb[2][1] and sum(pr for _, pr in nb) <= 1.0 + 1e-6
    assert nb[0][0] == p.predict([["Peter", "Smith", "visited", "Berlin"]])[0].tags
    assert len(nb) == 3
    iob2 = p.predict([["Peter", "Smith"]], scheme="iob2")[0].tags
    assert all(not t.startswith(("E-", "S-")) for t in iob2)


def test_seed_determinism(prepared, tmp_path):
    a = train(prepared, tmp_path / "A", TrainOptions(**SMALL))
    b = train(prepared, tmp_path / "B", TrainOptions(**SMALL))
    assert strip_timing(a["history"]) == strip_timing(b["history"])
    assert (tmp_path / "A" / "model.safetensors").read_bytes() == (tmp_path / "B" / "model.safetensors").read_bytes()


def _cli(*args):
    return [sys.executable, "-m", "tagger.cli", *map(str, args)]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(prepared, tmp_path):
    args = ["--hidden", 32, "--char-filters", 16, "--epochs", 5, "--seed", 5, "--threads", 1, "-q"]
    full = subprocess.run(_cli("train", prepared, "--out", tmp_path / "full", *args), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_cli("train", prepared, "--out", killed_dir, *args), stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once the second epoch's checkpoint exists, mid-third epoch
        m = killed_dir / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(_metrics(killed_dir)) < 5
    bad = subprocess.run(_cli("train", prepared, "--out", killed_dir, "--resume", *args, "--hidden", 8),
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--hidden 8 conflicts with the saved configuration (hidden = 32)" in bad.stderr
    # the same command again with --resume added: every option equals its saved value
    res = subprocess.run(_cli("train", prepared, "--out", killed_dir, "--resume", *args),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert strip_timing(_metrics(killed_dir)) == strip_timing(_metrics(tmp_path / "full"))
    assert (killed_dir / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


def test_resume_without_checkpoint_and_existing_out(prepared, tmp_path):
    with pytest.raises(TaggerError, match="nothing to resume"):
        train(prepared, tmp_path / "X", TrainOptions(**SMALL), resume=True)
    (tmp_path / "Y").mkdir()
    with pytest.raises(TaggerError, match="already exists"):
        train(prepared, tmp_path / "Y", TrainOptions(**SMALL))


def test_config_file(prepared, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nhidden = 16\nepochs = 1\nchar_encoder = 'lstm'\n")
    opts = TrainOptions.from_toml(cfg, seed=2)
    assert (opts.hidden, opts.epochs, opts.char_encoder, opts.seed) == (16, 1, "lstm", 2)
    train(prepared, tmp_path / "M", opts)
    saved = TrainOptions.from_toml(tmp_path / "M" / "train.toml")
    assert saved == opts
    cfg.write_text("hiden = 3\n")
    with pytest.raises(TaggerError, match="unknown option"):
        TrainOptions.from_toml(cfg)


def test_pickle_weights_are_rejected_without_running(learned, tmp_path):
    import shutil

    out, _ = learned
    evil = tmp_path / "evil"
    shutil.copytree(out, evil)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (evil / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelError, match="safetensors"):
        tagger.load(evil)
    assert not marker.exists()


def test_softmax_and_char_lstm_variants(prepared, tmp_path):
    s = train(prepared, tmp_path / "A", TrainOptions(**{**SMALL, "crf": False, "char_encoder": "lstm"}))
    assert s["best_dev"] is not None
    assert len(tagger.load(tmp_path / "A").predict([["a", "b"]])[0].tags) == 2
