"""``tagger annotate --engine ray``: a Ray Data pipeline writes the records single-process annotate writes.

One local Ray (``ray.init(num_cpus=2)``) for the module: its startup and the actors' are slow.
"""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import SAMPLE, SHARED, needs_shared

from tagger.cli import main
from tagger.commands.annotate import AnnotateOptions, annotate_paths
from tagger.errors import TaggerError

ray = pytest.importorskip("ray")
raydata = pytest.importorskip("tagger.commands.annotate.raydata")

OPTS = dict(progress=False, threads=1)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def single(model_dir, src, tmp_path, **opts) -> bytes:
    """What single-process annotate writes for one input file."""
    out = tmp_path / "single" / (src.name + ".out")
    out.parent.mkdir(exist_ok=True)
    assert annotate_paths(model_dir, [str(src)], str(out), AnnotateOptions(**OPTS, **opts)) is not None
    return out.read_bytes()


def test_ray_output_equals_single_process_output(local_ray, model_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    inp = tmp_path / "in"
    inp.mkdir()
    for name in ("train.conll", "dev.conll", "test.conll", "news.txt"):
        shutil.copy(SAMPLE / name, inp / name)
    texts = ["Peter Smith lives in Berlin. He works for Siemens.", "", "EU rejects German call."]
    (inp / "recs.jsonl").write_text(json.dumps({"id": 1, "text": texts[0]}) + "\n{not json\n"
                                    + json.dumps({"id": 3, "tokens": ["EU", "rejects", "German", "call", "."]}) + "\n")
    (inp / "lines.tok").write_text("EU rejects German call .\n\nPeter Blackburn\n")
    pq.write_table(pa.table({"text": texts, "id": [1, 2, 3]}), inp / "texts.parquet")
    (inp / "bad.conllu").write_text("1\tonly\ttwo columns\n\n")  # malformed CoNLL-U: the file fails
    summary = raydata.annotate_ray(model_dir, [str(inp)], str(tmp_path / "out"), AnnotateOptions(**OPTS), actors=2)
    assert not list(tmp_path.glob(".out.tmp-*"))  # the temporary prefix was renamed into place
    assert "_SUCCESS" in {p.name for p in (tmp_path / "out").iterdir()}
    got = raydata.assemble(tmp_path / "out")
    for name in ("train.conll", "dev.conll", "test.conll", "news.txt", "recs.jsonl", "lines.tok"):
        assert got[str(inp / name)] == single(model_dir, inp / name, tmp_path), name  # byte for byte
    # a Parquet text column is read as the JSONL records {"text": ..., "id": ...}
    as_jsonl = tmp_path / "texts.jsonl"
    as_jsonl.write_text("".join(json.dumps({"text": t, "id": i}, ensure_ascii=False) + "\n"
                                for i, t in zip([1, 2, 3], texts)))
    assert got[str(inp / "texts.parquet")] == single(model_dir, as_jsonl, tmp_path)
    rows = raydata.read_rows(tmp_path / "out")
    bad = [r for r in rows if r["error"]]
    assert {(r["source"].rsplit("/", 1)[-1], r["index"]) for r in bad} == {("recs.jsonl", 1), ("bad.conllu", -1)}
    assert summary.files == 7 and summary.files_failed == 1 and summary.errors == 1 and summary.exit_code == 1
    # every input record gives one row: the records of the sample's CoNLL files are its sentence blocks
    assert summary.records == sum(1 for r in rows if r["index"] >= 0)
    with pytest.raises(TaggerError, match="already exists"):
        raydata.annotate_ray(model_dir, [str(inp)], str(tmp_path / "out"), AnnotateOptions(**OPTS))


def test_ray_actors_run_an_onnx_export(local_ray, model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from tagger.onnx.export import export

    export(model_dir, tmp_path / "onnx", "onnx")
    src = tmp_path / "news.txt"
    shutil.copy(SAMPLE / "news.txt", src)
    opts = AnnotateOptions(**OPTS, runtime="onnx")
    raydata.annotate_ray(tmp_path / "onnx", [str(src)], str(tmp_path / "out"), opts, actors=1)
    want = single(tmp_path / "onnx", src, tmp_path, runtime="onnx")
    assert raydata.assemble(tmp_path / "out")[str(src)] == want


def test_ray_actors_read_the_feature_columns_of_a_featured_model(local_ray, tmp_path):
    from test_feature_columns import FAST, corpus, write

    from tagger.commands.prepare import PrepareOptions, prepare
    from tagger.commands.train import TrainOptions, train

    data = write(tmp_path / "train.conll", corpus(60, 1))
    prepare(PrepareOptions(train=data, embeddings="none", embedding_dim=8, feature_columns=["1"]), tmp_path / "P")
    train(tmp_path / "P", tmp_path / "M", TrainOptions(**{**FAST, "epochs": 2}))
    src = tmp_path / "in.conll"
    write(src, corpus(30, 2))
    (tmp_path / "in.jsonl").write_text('{"tokens": ["w1", "w2"], "features": {"1": ["P", "Q"]}}\n{"text": "w1"}\n')
    inputs = [str(src), str(tmp_path / "in.jsonl")]
    summary = raydata.annotate_ray(tmp_path / "M", inputs, str(tmp_path / "out"), AnnotateOptions(**OPTS), actors=1)
    got = raydata.assemble(tmp_path / "out")
    for name in inputs:
        assert got[name] == single(tmp_path / "M", tmp_path / name.rsplit("/", 1)[-1], tmp_path), name
    assert summary.errors == 1  # the raw-text record: the model needs the tag column


@needs_shared
def test_cli_ray_engine_parquet_parts_on_eng_testb(local_ray, model_dir, tmp_path):
    testb = SHARED / "conll2003" / "eng.testb"
    res = CliRunner().invoke(main, ["annotate", str(model_dir), str(testb), "--out", str(tmp_path / "out"),
                                    "--engine", "ray", "--parts", "parquet", "--workers", "1", "--threads", "1",
                                    "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert all(p.suffix == ".parquet" for p in (tmp_path / "out").iterdir() if p.name != "_SUCCESS")
    assert raydata.assemble(tmp_path / "out") == {str(testb): single(model_dir, testb, tmp_path)}


def test_ray_options_need_the_ray_engine(model_dir, tmp_path):
    res = CliRunner().invoke(main, ["annotate", str(model_dir), str(SAMPLE / "news.txt"), "--out",
                                    str(tmp_path / "o"), "--parts", "parquet"])
    assert res.exit_code == 2 and "--engine ray" in res.output
