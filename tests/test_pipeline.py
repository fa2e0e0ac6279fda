"""tagger run: pipeline validation, variables, make-style skipping, failures, shipped pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, SAMPLE, SHARED, needs_shared

from tagger.cli import main
from tagger.errors import TaggerError
from tagger.pipeline.runner import PipelineFailed, run_pipeline
from tagger.pipeline.spec import load_pipeline

PIPELINES = ROOT / "pipelines"
HAS = set(main.commands)
TINY_TRAIN = 'epochs = 2\nhidden = 16\nchar_filters = 8\nbatch_size = 8\nthreads = 1\nquiet = true\n'


def _tiny(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` sentences of a CoNLL file."""
    blocks = [b for b in src.read_text().split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
    dst.write_text("\n\n".join(blocks[:n]) + "\n")
    return dst


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    _tiny(SAMPLE / "train.conll", d / "a.conll", 30)
    _tiny(SAMPLE / "dev.conll", d / "dev.conll", 10)
    _tiny(SAMPLE / "test.conll", d / "test.conll", 10)
    _tiny(SAMPLE / "train.conll", d / "b.conll", 12)
    (d / "news.txt").write_text("The Bundesbank met in Hong Kong on Monday. Peter Blackburn spoke.\n")
    return d


def _write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _statuses(summary: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in summary["stages"]}


PREP = """
[[stages]]
name = "{name}"
command = "prepare"
[stages.options]
train = "{train}"
embeddings = "none"
embedding_dim = 8
quiet = true
"""


def _two_branches(corpus: Path) -> str:
    """prep_a → train_a (→ evaluate_a when evaluate exists); prep_b independent."""
    text = f'[vars]\nDATA = "{corpus}"\n'
    text += PREP.format(name="prep_a", train="${DATA}/a.conll") + 'dev = "${DATA}/dev.conll"\n'
    text += '\n[[stages]]\nname = "train_a"\ncommand = "train"\nargs = ["${stages.prep_a.out}"]\n'
    text += "[stages.options]\n" + TINY_TRAIN
    text += PREP.format(name="prep_b", train="${DATA}/b.conll")
    if "evaluate" in HAS:
        text += ('\n[[stages]]\nname = "evaluate_a"\ncommand = "evaluate"\nargs = ["${stages.train_a.out}"]\n'
                 '[stages.options]\ndata = "${DATA}/test.conll"\nthreads = 1\nquiet = true\n')
    return text


# --------------------------------------------------------------------------- skip logic


def test_skip_rerun_downstream_and_force(tmp_path, corpus):
    p = _write(tmp_path, _two_branches(corpus))
    wd = tmp_path / "runs"
    ev = {"evaluate_a": "ran"} if "evaluate" in HAS else {}
    s = run_pipeline(p, workdir=wd, commands=main)
    assert _statuses(s) == {"prep_a": "ran", "train_a": "ran", "prep_b": "ran", **ev}
    assert (wd / ".stamps" / "train_a.json").is_file() and (wd / "train_a" / "train_summary.json").is_file()
    saved = json.loads((wd / "summary.json").read_text())
    assert saved["status"] == "ok" and _statuses(saved) == _statuses(s)
    metrics = {x["name"]: x["metric"] for x in saved["stages"]}
    assert metrics["prep_a"] == {"name": "sentences", "value": {"train": 30, "dev": 10}}
    assert metrics["train_a"]["name"] == "dev f1" and 0 <= metrics["train_a"]["value"] <= 1

    # Nothing changed: everything is skipped.
    s = run_pipeline(p, workdir=wd, commands=main)
    assert set(_statuses(s).values()) == {"skipped"}

    # Changing prep_b's input reruns prep_b only.
    with open(corpus / "b.conll", "a") as fh:
        fh.write("\nExtra NN I-NP O\n")
    s = run_pipeline(p, workdir=wd, commands=main)
    assert _statuses(s) == {"prep_a": "skipped", "train_a": "skipped", "prep_b": "ran",
                            **{k: "skipped" for k in ev}}
    assert "b.conll" in s["stages"][2]["reason"]

    if ev:  # the test file is read by evaluate only
        _tiny(SAMPLE / "test.conll", corpus / "test.conll", 9)
        s = run_pipeline(p, workdir=wd, commands=main)
        assert _statuses(s) == {"prep_a": "skipped", "train_a": "skipped", "prep_b": "skipped", "evaluate_a": "ran"}

    # --force STAGE reruns it and, as its output changes, what depends on it.
    s = run_pipeline(p, workdir=wd, force="prep_a", until_stage="train_a", commands=main)
    assert _statuses(s) == {"prep_a": "ran", "train_a": "ran", "prep_b": "not selected",
                            **{k: "not selected" for k in ev}}
    # --force (all) in a dry run: everything would run; the dry run changes nothing.
    s = run_pipeline(p, workdir=wd, force=True, dry_run=True, commands=main)
    assert set(_statuses(s).values()) == {"would run"}
    s = run_pipeline(p, workdir=wd, from_stage="prep_b", dry_run=True, commands=main)
    assert _statuses(s) == {"prep_a": "not selected", "train_a": "not selected", "prep_b": "up to date",
                            **{k: "would run" for k in ev}}  # evaluate_a: train_a reran since
    # A deleted output reruns its stage.
    import shutil

    shutil.rmtree(wd / "prep_b")
    s = run_pipeline(p, workdir=wd, from_stage="prep_b", until_stage="prep_b", commands=main)
    assert _statuses(s)["prep_b"] == "ran" and s["stages"][2]["reason"] == "output missing"


def test_cli_force_stage_and_summary_table(tmp_path, corpus):
    p = _write(tmp_path, f'[vars]\nDATA = "{corpus}"\n' + PREP.format(name="prep", train="${DATA}/b.conll"))
    r = CliRunner().invoke(main, ["run", str(p), "--workdir", str(tmp_path / "w")])
    assert r.exit_code == 0, r.output
    assert "prep" in r.output and "ran" in r.output and "sentences 12" in r.output
    r = CliRunner().invoke(main, ["run", str(p), "--workdir", str(tmp_path / "w")])
    assert r.exit_code == 0 and "skipped (up to date)" in r.output
    # `--force PIPELINE.toml`: the pipeline file is not taken for a stage name.
    r = CliRunner().invoke(main, ["run", "--force", str(p), "--workdir", str(tmp_path / "w"), "--dry-run"])
    assert r.exit_code == 0 and "would run (forced)" in r.output, r.output
    r = CliRunner().invoke(main, ["run", str(p), "--force", "nope", "--workdir", str(tmp_path / "w")])
    assert r.exit_code == 2 and "--force nope" in r.output and "Traceback" not in r.output


# --------------------------------------------------------------------------- failures


def test_failing_stage_stops_and_keeps_earlier_outputs(tmp_path, corpus):
    text = f'[vars]\nDATA = "{corpus}"\n' + PREP.format(name="prep", train="${DATA}/b.conll")
    text += '\n[[stages]]\nname = "train"\ncommand = "train"\nargs = ["${stages.prep.out}"]\n'
    text += "[stages.options]\nlr = -1.0\n"
    text += PREP.format(name="prep2", train="${DATA}/b.conll")
    p = _write(tmp_path, text)
    wd = tmp_path / "w"
    r = CliRunner().invoke(main, ["run", str(p), "--workdir", str(wd)])
    assert r.exit_code == 2, r.output
    assert f"error: {p}: stage 'train' (train) failed: --lr must be positive" in r.output
    assert "Traceback" not in r.output
    assert (wd / "prep" / "prepare.json").is_file() and (wd / ".stamps" / "prep.json").is_file()
    assert not (wd / ".stamps" / "train.json").exists() and not (wd / "prep2").exists()
    saved = json.loads((wd / "summary.json").read_text())
    assert saved["status"] == "failed"
    assert _statuses(saved) == {"prep": "ran", "train": "failed", "prep2": "not run"}
    with pytest.raises(PipelineFailed) as exc:
        run_pipeline(p, workdir=wd, commands=main)
    assert exc.value.exit_code == 2 and _statuses(exc.value.summary)["prep"] == "skipped"


# --------------------------------------------------------------------------- validation


GOOD = """
[pipeline]
name = "v"
[vars]
DATA = "{data}"
[[stages]]
name = "prep"
command = "prepare"
[stages.options]
train = "${{DATA}}/a.conll"
embeddings = "none"
[[stages]]
name = "train"
command = "train"
args = ["${{stages.prep.out}}"]
[stages.options]
epochs = 1
"""

BAD = [
    # (replace this, with this, expected key, expected message part)
    ('name = "v"', 'name = "v"\nworkdir = "/tmp"', "pipeline.workdir", "unknown key"),
    ('[pipeline]', 'steps = 1\n[pipeline]', "steps", "unknown key"),
    ('command = "train"', 'command = "train"\nepochs = 3', "stages[1].epochs", "unknown stage key"),
    ("epochs = 1", "epoch = 1", "stages[1].options.epoch", "unknown option --epoch for 'train'"),
    ("epochs = 1", 'epochs = "many"', "stages[1].options.epochs", "not a valid integer"),
    ("epochs = 1", 'out = "x"', "stages[1].options.out", "set by the pipeline runner"),
    ("epochs = 1", 'crf = "yes"', "stages[1].options.crf", "is a flag"),
    ('command = "train"', 'command = "trian"', "stages[1].command", "unknown command 'trian'"),
    ("a.conll", "missing.conll", "stages[0].options.train", "missing.conll: no such file or directory"),
    ("${{DATA}}/a.conll", "${{CORPUS}}/a.conll", "stages[0].options.train", "undefined variable ${CORPUS}"),
    ("stages.prep.out", "stages.train.out", "stages[1].args[0]", "a stage cannot use its own output"),
    ("stages.prep.out", "stages.prpe.out", "stages[1].args[0]", "no stage named 'prpe'"),
    ('train = "${{DATA}}/a.conll"', 'train = "${{stages.train.out}}"', "stages[0].options.train",
     "stage 'train' comes later"),
    ('name = "train"', 'name = "../train"', "stages[1].name", "simple name"),
    ('name = "train"', 'name = "prep"', "stages[1].name", "duplicate stage name"),
    ('command = "train"', 'command = "train"\nout = "../x"', "stages[1].out", "relative name"),
    ('args = ["${{stages.prep.out}}"]', "args = []", "stages[1].args", "takes PREPARED"),
]


@pytest.mark.parametrize("old,new,key,msg", BAD, ids=[b[2] + ":" + b[3][:12] for b in BAD])
def test_validation_errors_name_file_and_key(tmp_path, corpus, old, new, key, msg):
    text = GOOD.replace(old, new).format(data=corpus)
    assert text != GOOD.format(data=corpus)
    p = _write(tmp_path, text)
    r = CliRunner().invoke(main, ["run", str(p), "--workdir", str(tmp_path / "w")])
    assert r.exit_code == 2, r.output
    assert f"error: {p}: {key}: " in r.output and msg in r.output, r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "w").exists()  # nothing ran


def test_validation_runs_before_anything(tmp_path, corpus):
    """A mistake in the last stage stops the pipeline before the first one runs."""
    p = _write(tmp_path, GOOD.replace("epochs = 1", "epochs = 1\nbogus = 2").format(data=corpus))
    with pytest.raises(TaggerError, match=r"stages\[1\]\.options\.bogus"):
        run_pipeline(p, workdir=tmp_path / "w", commands=main)
    assert not (tmp_path / "w").exists()


def test_bad_toml_and_missing_file(tmp_path):
    p = _write(tmp_path, "[[stages]\nname=")
    r = CliRunner().invoke(main, ["run", str(p)])
    assert r.exit_code == 2 and f"{p}: invalid TOML" in r.output
    r = CliRunner().invoke(main, ["run", str(tmp_path / "none.toml")])
    assert r.exit_code == 2 and "pipeline file not found" in r.output


# --------------------------------------------------------------------------- variables


def test_variables_from_vars_env_and_set(tmp_path, corpus, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data").symlink_to(corpus)
    _write(tmp_path / "sub", GOOD.format(data="data"))  # relative to the pipeline file
    monkeypatch.chdir(tmp_path)
    p = Path("sub/p.toml")

    def train_arg(**kw) -> str:
        st = load_pipeline(p, workdir="w", **kw, commands=main).stages[0]
        return st.argv[st.argv.index("--train") + 1]

    monkeypatch.delenv("DATA", raising=False)
    assert Path(train_arg()) == Path("sub/data/a.conll")
    other = tmp_path / "other"
    other.mkdir()
    _tiny(SAMPLE / "dev.conll", other / "a.conll", 5)
    assert Path(train_arg(env={"DATA": str(other)})) == other / "a.conll"
    # --set wins over the environment; its relative paths are relative to the current directory.
    assert Path(train_arg(env={"DATA": "/nowhere"}, sets={"DATA": "other"})) == Path("other/a.conll")
    with pytest.raises(TaggerError, match=r"--set DATTA: .* no variable DATTA \(did you mean 'DATA'\?\)"):
        load_pipeline(p, sets={"DATTA": "x"}, env={}, commands=main)
    # Through the CLI: --set and the environment, shown in the dry run.
    r = CliRunner().invoke(main, ["run", str(p), "--dry-run", "--set", "DATA=other"])
    assert r.exit_code == 0 and "--train other/a.conll" in r.output, r.output
    r = CliRunner(env={"DATA": str(other)}).invoke(main, ["run", str(p), "--dry-run"])
    assert r.exit_code == 0 and f"--train {other}/a.conll" in r.output, r.output
    r = CliRunner().invoke(main, ["run", str(p), "--set", "DATA"])
    assert r.exit_code == 2 and "expected KEY=VALUE" in r.output
    assert not (tmp_path / "runs").exists()


def test_option_mapping_numbers_flags_and_literal_dollar(tmp_path, corpus):
    text = GOOD.format(data=corpus).replace("epochs = 1", 'epochs = "${N}"\nlr = 0.1\ncrf = false\nquiet = true')
    text = text.replace("[vars]", "[vars]\nN = 3").replace('embeddings = "none"', 'embeddings = "$${X}"')
    text = text.replace('name = "prep"', 'name = "prep.v1"').replace("stages.prep.out", "stages.prep.v1.out")
    prep, train = load_pipeline(_write(tmp_path, text), workdir=tmp_path / "w", env={}, commands=main).stages
    assert prep.argv[2:4] == ["--embeddings", "${X}"]
    assert train.argv == [str(tmp_path / "w" / "prep.v1"), "--epochs", "3", "--lr", "0.1", "--no-crf", "--quiet",
                          "--out", str(tmp_path / "w" / "train"), "--force"]
    assert train.deps == ["prep.v1"]


# --------------------------------------------------------------------------- shipped pipelines


def _needs(*commands):
    missing = [c for c in commands if c not in HAS]
    return pytest.mark.skipif(bool(missing), reason=f"tagger {' '.join(missing)} not available yet")


@_needs("evaluate", "annotate")
def test_sample_pipeline_validates():
    pipe = load_pipeline(PIPELINES / "sample.toml", env={}, commands=main)
    assert [s.name for s in pipe.stages] == ["prepare", "train", "evaluate", "annotate"]
    assert pipe.workdir == Path("runs/sample")
    assert Path(pipe.stages[0].argv[1]).resolve() == (SAMPLE / "train.conll").resolve()


@_needs("evaluate", "annotate")
@pytest.mark.parametrize("name", ["conll2003-ner", "conll2000-chunk", "ud-english-lines-upos"])
def test_shared_pipelines_need_data(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    r = CliRunner(env={"DATA": None}).invoke(main, ["run", f"pipelines/{name}.toml", "--dry-run"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"error: pipelines/{name}.toml: stages[0].options." in r.output
    assert "undefined variable ${DATA}" in r.output


@needs_shared
@_needs("evaluate", "annotate")
@pytest.mark.parametrize("name", ["conll2003-ner", "conll2000-chunk", "ud-english-lines-upos"])
def test_shared_pipelines_validate(name):
    pipe = load_pipeline(PIPELINES / f"{name}.toml", sets={"DATA": str(SHARED)}, env={}, commands=main)
    assert pipe.stages[0].command == "prepare" and pipe.stages[1].command == "train"


@_needs("evaluate", "annotate")
def test_tiny_end_to_end(tmp_path, corpus):
    """prepare → train → evaluate → annotate with tiny settings, through the CLI."""
    text = f'[pipeline]\nname = "tiny"\n[vars]\nDATA = "{corpus}"\n'
    text += PREP.format(name="prepare", train="${DATA}/a.conll") + 'dev = "${DATA}/dev.conll"\n'
    text += '\n[[stages]]\nname = "train"\ncommand = "train"\nargs = ["${stages.prepare.out}"]\n'
    text += "[stages.options]\n" + TINY_TRAIN
    text += ('\n[[stages]]\nname = "evaluate"\ncommand = "evaluate"\nargs = ["${stages.train.out}"]\n'
             '[stages.options]\ndata = "${DATA}/test.conll"\nthreads = 1\n')
    text += ('\n[[stages]]\nname = "annotate"\ncommand = "annotate"\n'
             'args = ["${stages.train.out}", "${DATA}/news.txt"]\nout = "news.jsonl"\n')
    p = _write(tmp_path, text)
    wd = tmp_path / "w"
    r = CliRunner().invoke(main, ["run", str(p), "--workdir", str(wd)])
    assert r.exit_code == 0, r.output
    saved = json.loads((wd / "summary.json").read_text())
    assert _statuses(saved) == {"prepare": "ran", "train": "ran", "evaluate": "ran", "annotate": "ran"}
    assert saved["stages"][2]["metric"]["name"] == "f1"
    assert (wd / "annotate" / "news.jsonl").is_file() and (wd / "evaluate" / "metrics.json").is_file()
    lines = r.output.splitlines()
    assert any(line.startswith("evaluate") and " f1 " in line for line in lines), r.output
    r = CliRunner().invoke(main, ["run", str(p), "--workdir", str(wd)])
    assert r.exit_code == 0 and r.output.count("skipped (up to date)") == 4


# --------------------------------------------------------------------------- declarations


def test_inputs_are_the_declared_parameters(tmp_path):
    """What a stage reads is what its command declares (InputPath), resolved next to the file."""
    sub = tmp_path / "sub"
    (sub / "d").mkdir(parents=True)
    (sub / "d" / "pos.txt").write_text("good\n")
    (sub / "d" / "vec.txt").write_text("good 0.1 0.2\n")
    (sub / "prep").mkdir()
    text = ('[[stages]]\nname = "clf"\ncommand = "classify train"\n[stages.options]\n'
            'label_file = ["pos=d/pos.txt"]\nembeddings = "d/vec.txt"\n')
    p = _write(sub, text)
    (clf,) = load_pipeline(p, workdir=tmp_path / "w", env={}, commands=main).stages
    assert clf.argv[:4] == ["--label-file", f"pos={sub}/d/pos.txt", "--embeddings", f"{sub}/d/vec.txt"]
    assert [i.path for i in clf.inputs] == [f"{sub}/d/pos.txt", f"{sub}/d/vec.txt"]
    # a name, not a path: left to the command
    p = _write(sub, text.replace('"d/vec.txt"', '"glove-6b-50d"'))
    (clf,) = load_pipeline(p, workdir=tmp_path / "w", env={}, commands=main).stages
    assert "glove-6b-50d" in clf.argv and len(clf.inputs) == 1
    # DIR:split names the directory DIR
    ev = ('[[stages]]\nname = "ev"\ncommand = "evaluate"\nargs = ["prep"]\n[stages.options]\ndata = "prep:dev"\n')
    (st,) = load_pipeline(_write(sub, ev), workdir=tmp_path / "w", env={}, commands=main).stages
    assert st.argv[1:3] == ["--data", f"{sub}/prep:dev"] and [i.path for i in st.inputs] == [f"{sub}/prep"] * 2
    # the pipeline runner itself is no stage
    p = _write(sub, '[[stages]]\nname = "r"\ncommand = "run"\n')
    with pytest.raises(TaggerError, match=r"stages\[0\]\.command: a pipeline cannot run 'run'"):
        load_pipeline(p, commands=main)
