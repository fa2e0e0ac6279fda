"""ONNX export (tagger.onnx.export), the torch-free runtime (tagger.onnx.runtime), `tagger export`,
`tagger annotate --runtime onnx` and the shrunk forms (float16 / top-N extra words)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import ROOT, SAMPLE

from tagger.cli import main

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from tagger.nn.bilstm_crf import BiLSTMCRF, ModelConfig  # noqa: E402
from tagger.onnx.export import build_graph  # noqa: E402

EXTRA_WORDS = [f"zz{chr(97 + i)}word" for i in range(26)]  # no digits: prepare normalises them


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def read_sentences(path: Path, limit: int | None = None) -> list[list[str]]:
    out, cur = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if cur:
                out.append(cur)
                cur = []
            continue
        cur.append(line.split()[0])
    if cur:
        out.append(cur)
    return out[:limit]


def _train(root: Path, **train) -> Path:
    from tagger.commands.prepare import PrepareOptions, prepare
    from tagger.commands.train import TrainOptions
    from tagger.commands.train import train as run_train

    prep = root / "prepared"
    if not prep.exists():
        words = sorted({t for s in read_sentences(SAMPLE / "train.conll") for t in s})[:40]
        rng = np.random.default_rng(0)
        lines = [f"{w} " + " ".join(f"{x:.3f}" for x in rng.normal(size=8)) for w in words + EXTRA_WORDS]
        (root / "vectors.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        prepare(PrepareOptions(train=str(SAMPLE / "train.conll"), dev=str(SAMPLE / "dev.conll"),
                               embeddings=str(root / "vectors.txt")), prep)
    out = root / ("model-" + "-".join(f"{k}{v}" for k, v in sorted(train.items())))
    run_train(prep, out, TrainOptions(epochs=2, hidden=16, char_dim=8, char_filters=8, batch_size=16, seed=1,
                                      threads=1, **train))
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def model_dir(root) -> Path:
    """A small CRF tagger with pretrained-only (extra) words."""
    return _train(root)


@pytest.fixture(scope="module")
def onnx_dir(model_dir, root) -> Path:
    out = root / "exported"
    r = run_cli("export", model_dir, "--out", out, "--format", "onnx")
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def sentences() -> list[list[str]]:
    sents = read_sentences(SAMPLE / "test.conll")
    return [*sents, ["zzcword", "Zzhword", "zzyword"], ["x"], []]


# ---------------------------------------------------------------------------- the graph


def _random_inputs(m: BiLSTMCRF, rng: np.random.Generator):
    c = m.config
    n, width = 11, 6
    words = torch.from_numpy(rng.integers(0, c.num_words + c.num_extra, size=n))
    chars = torch.from_numpy(rng.integers(1, c.num_chars, size=(n, width)))
    lens = rng.integers(0, width + 1, size=n)
    lens[0] = 0  # a token without characters
    chars[torch.arange(width)[None, :] >= torch.from_numpy(lens)[:, None]] = 0
    cas = torch.from_numpy(rng.integers(0, 9, size=n))
    lengths = torch.tensor([7, 1, 4, 6, 1])
    rows = torch.from_numpy(rng.integers(0, n, size=(len(lengths), 7)))
    return words, chars, cas, rows, lengths


@pytest.mark.parametrize("extra", ["none", "float32", "float16"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("casing", [True, False])
@pytest.mark.parametrize("encoder,kernel", [("cnn", 3), ("cnn", 4), ("lstm", 3), ("none", 3)])
def test_graph_matches_torch(encoder, kernel, casing, layers, extra):
    torch.manual_seed(0)
    n_extra = 0 if extra == "none" else 9
    mc = ModelConfig(num_words=25, num_extra=n_extra, word_dim=6, num_chars=17, num_tags=5, char_encoder=encoder,
                     char_dim=4, char_filters=5, char_kernel=kernel, casing=casing, casing_dim=3, hidden=7,
                     layers=layers)
    m = BiLSTMCRF(mc).eval()
    rows = None
    if n_extra:
        rows = torch.randn(n_extra, 6)
        if extra == "float16":
            rows = rows.half().float()  # the torch model sees the float16 values, as a shrunk export loads them
        m.word_embed.set_extra(rows)
    table = None if rows is None else rows.numpy().astype(np.float16 if extra == "float16" else np.float32)
    proto = build_graph(m, table)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for _ in range(3):
        words, chars, cas, rows_, lengths = _random_inputs(m, rng)
        with torch.no_grad():
            cf = m.char_features(chars) if m.char_encoder is not None else None
            ref = m.emissions_from_features(m.features(words, cf, cas), rows_, lengths).numpy()
        got = sess.run(None, {"token_words": words.numpy(), "token_chars": chars.numpy(),
                              "token_casing": cas.numpy(), "rows": rows_.numpy(), "lengths": lengths.numpy()})[0]
        mask = (torch.arange(rows_.shape[1])[None, :] < lengths[:, None]).numpy()
        assert got.shape == ref.shape
        assert np.abs(got - ref)[mask].max() < 1e-5


# ---------------------------------------------------------------------------- the runtime


def _same(a, b, nbest: bool = False):
    assert [p.tags for p in a] == [p.tags for p in b]
    for pa, pb in zip(a, b):
        assert pa.tokens == pb.tokens
        np.testing.assert_allclose(pa.scores, pb.scores, atol=1e-5)
        assert [(e.label, e.start, e.end) for e in pa.entities] == [(e.label, e.start, e.end) for e in pb.entities]
        np.testing.assert_allclose([e.score for e in pa.entities], [e.score for e in pb.entities], atol=1e-5)
        if nbest:
            assert [t for t, _ in pa.nbest] == [t for t, _ in pb.nbest]
            np.testing.assert_allclose([p for _, p in pa.nbest], [p for _, p in pb.nbest], atol=1e-5)


def test_onnx_predictor_equals_torch(model_dir, onnx_dir, sentences):
    import tagger
    from tagger.runtime import load_predictor

    tp, op = tagger.load(model_dir), load_predictor(onnx_dir, "onnx")
    assert op.has_crf and tp.has_crf
    assert (op.task, op.scheme, op.tag_names) == (tp.task, tp.scheme, tp.tag_names)
    _same(tp.predict(sentences, nbest=3), op.predict(sentences, nbest=3), nbest=True)
    _same(tp.predict(sentences, batch_size=3, token_scores=False), op.predict(sentences, batch_size=3,
                                                                               token_scores=False))
    _same(tp.predict(sentences, confidences=False, scheme="bioes"),
          op.predict(sentences, confidences=False, scheme="bioes"))
    assert op.predict([]) == []


def test_softmax_model(root, sentences):
    import tagger
    from tagger.onnx.export import export
    from tagger.runtime import load_predictor

    m = _train(root, crf=False, char_encoder="lstm", layers=2)
    export(m, root / "softmax-onnx")
    tp, op = tagger.load(m), load_predictor(root / "softmax-onnx", "onnx")
    assert not op.has_crf and not tp.has_crf
    _same(tp.predict(sentences), op.predict(sentences))


def test_runtime_imports_no_torch(onnx_dir):
    code = (
        "import sys\n"
        "from tagger.runtime import load_predictor\n"
        f"p = load_predictor({str(onnx_dir)!r}, 'onnx')\n"
        "out = p.predict([['Peter', 'lives', 'in', 'Paris', '.']], nbest=2)\n"
        "assert out[0].tags and out[0].nbest\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


# ---------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("workers", [1, 2])
def test_annotate_runtime_onnx(model_dir, onnx_dir, tmp_path, workers):
    src = SAMPLE / "test.conll"
    a, b = tmp_path / "torch.jsonl", tmp_path / "onnx.jsonl"
    r = run_cli("annotate", model_dir, src, "--out", a, "--output-format", "jsonl", "-q", "--nbest", "2")
    assert r.exit_code == 0, r.output
    r = run_cli("annotate", onnx_dir, src, "--out", b, "--output-format", "jsonl", "-q", "--nbest", "2",
                "--runtime", "onnx", "--workers", workers)
    assert r.exit_code == 0, r.output
    ra = [json.loads(x) for x in a.read_text().splitlines()]
    rb = [json.loads(x) for x in b.read_text().splitlines()]
    assert [x["tags"] for x in ra] == [x["tags"] for x in rb]
    for x, y in zip(ra, rb):
        assert [e["label"] for e in x.get("entities", [])] == [e["label"] for e in y.get("entities", [])]
        for e, f in zip(x.get("entities", []), y.get("entities", [])):
            assert e["score"] == pytest.approx(f["score"], abs=1e-5)


def test_export_and_runtime_errors(model_dir, onnx_dir, tmp_path, monkeypatch):
    r = run_cli("export", SAMPLE, "--out", tmp_path / "x")  # a directory, but no model
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    r = run_cli("export", model_dir, "--out", busy)
    assert r.exit_code == 2 and "not an empty directory" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("export", model_dir, "--out", empty, "--format", "torch", "-q").exit_code == 0
    # each runtime names the other when given the other's directory
    r = run_cli("annotate", onnx_dir, SAMPLE / "test.conll", "--out", tmp_path / "o.conll")
    assert r.exit_code == 2 and "--runtime onnx" in r.output
    r = run_cli("annotate", model_dir, SAMPLE / "test.conll", "--out", tmp_path / "o.conll", "--runtime", "onnx")
    assert r.exit_code == 2 and "export it first" in r.output
    # no onnx package
    monkeypatch.setitem(sys.modules, "onnx", None)
    r = run_cli("export", model_dir, "--out", tmp_path / "y")
    assert r.exit_code == 2 and "tagger[onnx]" in r.output
    assert not (tmp_path / "y").exists()


def test_corrupt_onnx_dir(onnx_dir, tmp_path):
    import shutil

    from tagger.errors import ModelError
    from tagger.onnx.runtime import OnnxPredictor

    bad = tmp_path / "bad"
    shutil.copytree(onnx_dir, bad)
    (bad / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the ONNX model"):
        OnnxPredictor.load(bad)
    cfg = json.loads((onnx_dir / "config.json").read_text())
    cfg["crf"]["transitions"] = [[1.0]]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="crf.transitions"):
        OnnxPredictor.load(bad)


# ---------------------------------------------------------------------------- shrinking


def test_shrink(model_dir, root, sentences):
    import tagger
    from tagger.modeldir import header_dtype
    from tagger.onnx.export import export
    from tagger.runtime import load_predictor

    full = tagger.load(model_dir)
    n_full = full.model.config.num_extra
    assert n_full >= len(EXTRA_WORDS)
    extra_full = json.loads((model_dir / "extra_words.json").read_text())

    small = root / "small-torch"
    info = export(model_dir, small, "torch", max_extra_words=10, float16=True)
    assert info["extra_words"] == 10 and info["bytes"] < sum(p.stat().st_size for p in model_dir.iterdir()
                                                              if p.name != "checkpoint.safetensors")
    assert header_dtype(small / "extra_embeddings.safetensors", "extra") == "F16"
    # the most frequent words are kept: the first of the pretrained file's order
    assert json.loads((small / "extra_words.json").read_text()) == extra_full[:10]
    sp = tagger.load(small)
    assert sp.model.config.num_extra == 10 and sp.model.word_embed.extra.dtype == torch.float32
    cfg = json.loads((small / "config.json").read_text())
    assert cfg["model"]["num_extra"] == 10 and cfg["format"] == "tagger-model"
    # words kept keep their vectors (to float16 precision); words dropped read as unknown
    kept, dropped = extra_full[0], extra_full[-1]
    assert sp.lookup(kept) == full.lookup(kept) and sp.lookup(dropped) == 1
    a, b = full.predict(sentences), sp.predict(sentences)
    same = sum(x.tags == y.tags for x, y in zip(a, b))
    assert same >= len(sentences) - 2

    # float16 only: the same words; emissions differ by float16 rounding of the extra rows
    half = root / "half-torch"
    export(model_dir, half, "torch", float16=True)
    hp = tagger.load(half)
    assert hp.model.config.num_extra == n_full
    assert [p.tags for p in hp.predict(sentences)] == [p.tags for p in a]

    # ONNX of the shrunk model = the shrunk torch model
    export(model_dir, root / "small-onnx", "onnx", max_extra_words=10, float16=True)
    op = load_predictor(root / "small-onnx", "onnx")
    _same(b, op.predict(sentences))

    # evaluate reads the shrunk torch directory
    r = run_cli("evaluate", small, "--data", SAMPLE / "test.conll", "-q")
    assert r.exit_code == 0, r.output


def test_evaluate_runtime_onnx(model_dir, onnx_dir):
    a = run_cli("evaluate", model_dir, "--data", SAMPLE / "test.conll", "--json", "-q")
    b = run_cli("evaluate", onnx_dir, "--data", SAMPLE / "test.conll", "--json", "-q", "--runtime", "onnx")
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    assert json.loads(a.output)["f1"] == json.loads(b.output)["f1"]
