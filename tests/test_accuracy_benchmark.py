"""``benchmarks/accuracy.py``: a task's pipeline run per seed, read back, merged and reported."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE, benchmark_module

PIPELINE = """
[pipeline]
name = "tiny"

[vars]
SEED = "1"

[[stages]]
name = "prepare"
command = "prepare"
[stages.options]
train = "${DATA}/train.conll"
dev = "${DATA}/dev.conll"
test = "${DATA}/test.conll"
embeddings = "none"
embedding_dim = 8

[[stages]]
name = "train"
command = "train"
args = ["${stages.prepare.out}"]
[stages.options]
seed = "${SEED}"
epochs = 2
hidden = 8
char_encoder = "none"
threads = 1

[[stages]]
name = "evaluate"
command = "evaluate"
args = ["${stages.train.out}"]
[stages.options]
data = "${DATA}/test.conll"
threads = 1

[[stages]]
name = "annotate"
command = "annotate"
args = ["${stages.train.out}", "${DATA}/news.txt"]
out = "news.jsonl"
"""


def accuracy():
    return benchmark_module("accuracy")


@pytest.fixture
def tiny_task(tmp_path, monkeypatch):
    acc = accuracy()
    pipe = tmp_path / "tiny.toml"
    pipe.write_text(PIPELINE)
    spec = acc.TaskSpec("Tiny NER", pipe, "tagger", "f1", 50.0, "evaluate",
                        ("train.conll", "dev.conll", "test.conll"), (("Somebody 2020", "12.3"),), per_type=True)
    monkeypatch.setitem(acc.TASKS, "tiny", spec)
    return spec


def test_each_seed_runs_the_pipeline_and_the_report_has_every_run(tmp_path, tiny_task):
    acc = accuracy()
    out, work = tmp_path / "reports" / "accuracy", tmp_path / "work"
    args = ["--task", "tiny", "--data", str(SAMPLE), "--workdir", str(work), "--out", str(out)]
    assert acc.main([*args, "--seeds", "1", "2"]) == 0
    res = json.loads(out.with_suffix(".json").read_text())["tiny"]
    assert [r["seed"] for r in res["runs"]] == [1, 2]
    for r in res["runs"]:
        assert 0.0 <= r["dev"] <= 100.0 and 0.0 <= r["test"] <= 100.0
        assert r["epochs"] == 2 and r["minutes"] >= 0 and set(r["per_type"]) <= {"LOC", "MISC", "ORG", "PER"}
        assert f"--set SEED={r['seed']}" in r["command"] and "--until evaluate" in r["command"]
        seed_dir = work / "tiny" / f"seed-{r['seed']}"
        assert f"seed = {r['seed']}" in (seed_dir / "train" / "train.toml").read_text()
        assert not (seed_dir / "annotate").exists()  # stages after --until are not run
        # The test score is evaluate's, on the test split, in percent.
        metrics = json.loads((seed_dir / "evaluate" / "metrics.json").read_text())
        assert r["test"] == round(100 * metrics["f1"], 2)
    tests = [r["test"] for r in res["runs"]]
    assert res["mean"] == pytest.approx(sum(tests) / 2, abs=0.006)
    md = out.with_suffix(".md").read_text()
    assert "Tiny NER" in md and "Somebody 2020 12.3" in md and md.count("--set SEED=") == 2

    # A second sitting for seed 2 replaces that run and keeps seed 1's.
    first = res["runs"][0]
    assert acc.main([*args, "--seeds", "2"]) == 0
    again = json.loads(out.with_suffix(".json").read_text())["tiny"]
    assert [r["seed"] for r in again["runs"]] == [1, 2] and again["runs"][0] == first


def test_missing_data_is_refused_before_anything_runs(tmp_path, tiny_task, capsys):
    acc = accuracy()
    rc = acc.main(["--task", "tiny", "--data", str(tmp_path), "--workdir", str(tmp_path / "w"),
                   "--out", str(tmp_path / "r")])
    assert rc == 2 and "missing data files" in capsys.readouterr().err
    assert not (tmp_path / "w").exists() and not (tmp_path / "r.json").exists()


def test_a_failing_run_says_which_command_failed(tmp_path, tiny_task):
    acc = accuracy()
    with pytest.raises(RuntimeError, match=r"--set SEED=1 .*failed \(exit 2\)"):
        acc.run_seed(tiny_task, 1, tmp_path / "no-data", tmp_path / "w", log=lambda m: None)


def test_summary_mean_std_target_and_per_type():
    acc = accuracy()
    spec = acc.TASKS["conll2003"]
    runs = [{"seed": s, "dev": 94.0 + s / 10, "test": t, "minutes": 20.0, "epochs": 40, "command": "c",
             "per_type": {"LOC": 92.0 + s, "MISC": 81.0, "ORG": 89.0, "PER": 96.0}}
            for s, t in ((2, 91.0), (1, 92.0), (3, 92.6))]
    e = acc.summarize(spec, runs)
    assert [r["seed"] for r in e["runs"]] == [1, 2, 3]
    assert e["mean"] == 91.87 and e["std"] == 0.81 and e["meets_target"] and e["per_type_below_floor"] == []
    assert e["dev_mean"] == 94.2 and e["per_type_mean"] == {"LOC": 94.0, "MISC": 81.0, "ORG": 89.0, "PER": 96.0}
    lower = acc.summarize(spec, runs[:1])
    assert lower["std"] == 0.0 and not lower["meets_target"]
    md = acc.render({"conll2003": e}, {"date": "d", "commit": "c", "machine": "m"})
    assert "**91.87** ± 0.81 | ≥ 91.8 (met)" in md and "LOC 94.00, MISC 81.00" in md and "Lample et al. 2016" in md
    assert "PER 95.9 — all met." in md
    for r in runs:  # one type below its floor: the target is not met, whatever the mean
        r["per_type"]["PER"] = 95.0
    low_per = acc.summarize(spec, runs)
    assert low_per["mean"] == 91.87 and not low_per["meets_target"] and low_per["per_type_below_floor"] == ["PER"]
    assert "— below it: PER." in acc.render({"conll2003": low_per}, {"date": "d", "commit": "c", "machine": "m"})
    not_run = next(line for line in md.splitlines() if line.startswith("Not run yet: "))
    assert "UD English-LinES UPOS" in not_run and "--task lines_upos`" in not_run
    assert "--task conll2003_features`" in not_run and "--task conll2003`" not in md


def test_cross_validation_run_is_read_from_cv_json(tmp_path):
    acc = accuracy()
    (tmp_path / "train").mkdir()
    folds = [{"fold": i, "accuracy": a, "dev_accuracy": d, "epochs": e}
             for i, (a, d, e) in enumerate([(0.8, 0.82, 6), (0.78, 0.8, 8)], 1)]
    (tmp_path / "train" / "cv.json").write_text(json.dumps({"mean_accuracy": 0.79, "minutes": 5.5, "folds": folds}))
    r = acc.read_run(acc.TASKS["polarity"], tmp_path)
    assert r == {"dev": 81.0, "test": 79.0, "minutes": 5.5, "epochs": 7.0, "folds": [80.0, 78.0]}


def test_a_recipe_variant_is_the_same_pipeline_with_its_variables_set(tmp_path):
    acc = accuracy()
    words, shipped = acc.TASKS["conll2000_chunk_words"], acc.TASKS["conll2000_chunk"]
    assert words.pipeline == shipped.pipeline
    cmd = acc.pipeline_command(words, 2, tmp_path / "d", tmp_path / "w")
    assert cmd[cmd.index("--set", cmd.index("SEED=2")) + 1] == "FEATURES="
    assert "FEATURES=" not in " ".join(acc.pipeline_command(shipped, 2, tmp_path / "d", tmp_path / "w"))
    features = acc.pipeline_command(acc.TASKS["conll2003_features"], 1, tmp_path / "d", tmp_path / "w")
    assert features[features.index("--set", features.index("SEED=1")) + 1] == "FEATURES=1,2"
    for spec in acc.TASKS.values():  # every task names a pipeline that exists and declares SEED
        assert spec.pipeline.is_file()
        text = spec.pipeline.read_text()
        assert 'SEED = "1"' in text
        assert 'THREADS = "0"' in text  # --set THREADS=1 runs two tasks side by side
        assert all(f"\n{name} = " in text for name, _ in spec.sets)  # a variant sets variables the pipeline has


def test_more_variables_are_passed_to_every_seed(tmp_path, tiny_task, capsys):
    acc = accuracy()
    cmd = acc.pipeline_command(tiny_task, 1, tmp_path / "d", tmp_path / "w", (("THREADS", "1"),))
    assert cmd[cmd.index("THREADS=1") - 1] == "--set"
    with pytest.raises(SystemExit):
        acc.main(["--task", "tiny", "--set", "THREADS"])
    assert "--set takes NAME=VALUE" in capsys.readouterr().err
