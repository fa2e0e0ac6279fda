"""Reliability: untrusted model directories, checkpoints and pipeline files.

Crafted model directories (pickles in place of safetensors files, bad or absurd configurations,
tensors that disagree with the configuration, NaN weights, symlinks to devices) must be rejected
with a clear :class:`ModelError` / exit status 2, before any large allocation, and must never
execute anything (a malicious pickle would create a marker file).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SAMPLE
from reliability_util import (
    assert_clean_exit_2,
    classifier_model,
    copy_model,
    edit_config,
    evil_pickle,
    generator_model,
    invoke,
    prepared_dir,
    tagger_model,
    write_case_counts,
)

import tagger
from tagger.errors import ModelError

CASES: dict[str, int] = {}


def _count(kind: str) -> None:
    CASES[kind] = CASES.get(kind, 0) + 1


@pytest.fixture(scope="module")
def tmodel(tmp_path_factory):
    return tagger_model(tmp_path_factory)


@pytest.fixture(scope="module")
def cmodel(tmp_path_factory):
    return classifier_model(tmp_path_factory)


@pytest.fixture(scope="module")
def gmodel(tmp_path_factory):
    return generator_model(tmp_path_factory)


def _loaders():
    from tagger.commands.classify import Classifier
    from tagger.commands.generate import Generator

    return {"tagger": tagger.load, "classifier": Classifier.load, "generator": Generator.load}


# --------------------------------------------------------------------------- no pickle anywhere


def test_no_pickle_loading_in_the_package():
    """No code path of the package can unpickle: torch.load / pickle.load(s) are not used."""
    hits = []
    for p in sorted((ROOT / "tagger").rglob("*.py")):
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if any(s in line for s in ("torch.load", "pickle.load", "pickle.Unpickler", "allow_pickle=True",
                                       "joblib.load", "dill.load")):
                hits.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)
    r = subprocess.run(["grep", "-rn", r"torch.load\|pickle.load", str(ROOT / "tagger")],
                       capture_output=True, text=True)
    assert r.stdout == ""


# --------------------------------------------------------------------------- malicious pickles


@pytest.mark.parametrize("kind,filename", [
    ("tagger", "model.safetensors"), ("tagger", "extra_embeddings.safetensors"),
    ("classifier", "model.safetensors"), ("generator", "model.safetensors"),
])
def test_pickle_payload_never_runs(kind, filename, tmodel, cmodel, gmodel, tmp_path):
    src = {"tagger": tmodel, "classifier": cmodel, "generator": gmodel}[kind]
    evil = copy_model(src, tmp_path / "evil")
    marker = tmp_path / "pwned"
    (evil / filename).write_bytes(evil_pickle(marker))
    with pytest.raises(ModelError, match="safetensors"):
        _loaders()[kind](evil)
    assert not marker.exists()
    _count("pickle payload")


def test_pickle_payload_as_checkpoint_on_resume(tmodel, tmp_path):
    evil = copy_model(tmodel, tmp_path / "evil")
    marker = tmp_path / "pwned"
    (evil / "checkpoint.safetensors").write_bytes(evil_pickle(marker))
    prep = Path(json.loads((tmodel / "config.json").read_text())["training"]["prepared"])
    out = assert_clean_exit_2(["train", prep, "--out", evil, "--resume", "-q"], "checkpoint")
    assert not marker.exists(), out
    _count("pickle payload")


def test_pickle_payload_through_the_cli(tmodel, tmp_path):
    evil = copy_model(tmodel, tmp_path / "evil")
    marker = tmp_path / "pwned"
    (evil / "model.safetensors").write_bytes(evil_pickle(marker))
    src = tmp_path / "in.txt"
    src.write_text("Peter lives in Berlin .\n", encoding="utf-8")
    assert_clean_exit_2(["annotate", evil, src, "--out", tmp_path / "o.jsonl", "-q"], "safetensors")
    assert_clean_exit_2(["evaluate", evil, "--data", SAMPLE / "dev.conll", "-q"], "safetensors")
    assert not marker.exists()
    _count("pickle payload")


# --------------------------------------------------------------------------- bad configurations


def _set(path, value):
    def edit(cfg):
        node = cfg
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _delete(path):
    def edit(cfg):
        node = cfg
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return edit


TAGGER_CONFIG_EDITS = {
    "unknown top-level key": _set(["exec"], "__import__('os').system('touch pwned')"),
    "unknown model key": _set(["model", "activation"], "relu"),
    "num_words 10**12": _set(["model", "num_words"], 10**12),
    "hidden 10**9": _set(["model", "hidden"], 10**9),
    "layers 10**6": _set(["model", "layers"], 10**6),
    "num_tags 10**9": _set(["model", "num_tags"], 10**9),
    "word_dim -1": _set(["model", "word_dim"], -1),
    "hidden as string": _set(["model", "hidden"], "16"),
    "hidden as float": _set(["model", "hidden"], 16.0),
    "hidden as bool": _set(["model", "hidden"], True),
    "dropout null": _set(["model", "dropout"], None),
    "dropout list": _set(["model", "dropout"], [0.1]),
    "dropout NaN": _set(["model", "dropout"], float("nan")),
    "char_encoder unknown": _set(["model", "char_encoder"], "transformer"),
    "model section a list": _set(["model"], [1, 2]),
    "no model section": _delete(["model"]),
    "vocab words not strings": _set(["vocab", "words"], [1, 2, 3]),
    "vocab size disagrees": lambda c: c["vocab"]["words"].append("extra-word"),
    "no vocab": _delete(["vocab"]),
    "scheme unknown": _set(["scheme"], "xml"),
    "task missing": _delete(["task"]),
    "task unknown": _set(["task"], "parse"),
    "format missing": _delete(["format"]),
    "format_version 99": _set(["format_version"], 99),
    "kind classifier": _set(["kind"], "classifier"),
    "kind unknown": _set(["kind"], "rootkit"),
}


@pytest.mark.parametrize("case", list(TAGGER_CONFIG_EDITS))
def test_bad_tagger_config_is_rejected(case, tmodel, tmp_path):
    bad = copy_model(tmodel, tmp_path / "bad")
    edit_config(bad, TAGGER_CONFIG_EDITS[case])
    with pytest.raises(ModelError):
        tagger.load(bad)
    _count("bad config.json")


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2, 3]", b'"a string"', b"null", b"{", b"\xff\xfe{}",
                                     b'{"format": "tagger-model"}', b"{}" + b" " * 10])
def test_config_not_a_json_object(content, tmodel, cmodel, gmodel, tmp_path):
    for name, src in (("tagger", tmodel), ("classifier", cmodel), ("generator", gmodel)):
        bad = copy_model(src, tmp_path / name)
        (bad / "config.json").write_bytes(content)
        with pytest.raises(ModelError):
            _loaders()[name](bad)
        _count("config.json not a config object")


class _AddressSpaceLimit:
    """Cap the address space (so an attempted multi-GB allocation fails fast instead of swapping)."""

    def __init__(self, extra_bytes: int = 1 << 30):
        self.extra = extra_bytes

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        limit = vm + self.extra
        if self.old[1] != resource.RLIM_INFINITY:
            limit = min(limit, self.old[1])
        resource.setrlimit(resource.RLIMIT_AS, (limit, self.old[1]))
        return self

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_AS, self.old)


HUGE_BUT_WITHIN_KEY_LIMITS = {
    # each value passes the per-key sanity limits, but together they describe many GB of weights
    "tagger": {"hidden": 4096, "layers": 8},
    "classifier": {"hidden": 4096, "layers": 8},
    "generator": {"hidden": 8192, "layers": 8, "embed_dim": 4096},
}


@pytest.mark.parametrize("kind", ["tagger", "classifier", "generator"])
def test_huge_sizes_are_rejected_before_allocation(kind, tmodel, cmodel, gmodel, tmp_path):
    """A configuration describing ~10 GB of weights with a tiny weights file fails fast, allocating nothing."""
    src = {"tagger": tmodel, "classifier": cmodel, "generator": gmodel}[kind]
    bad = copy_model(src, tmp_path / "huge")

    def edit(cfg):
        cfg["model"].update(HUGE_BUT_WITHIN_KEY_LIMITS[kind])
        if kind == "generator":
            cfg["model"]["tie"] = False

    edit_config(bad, edit)
    load = _loaders()[kind]
    with _AddressSpaceLimit(1 << 30):
        try:
            load(bad)
        except ModelError:
            pass
        except (MemoryError, RuntimeError) as exc:
            pytest.fail(f"{kind}: tried to allocate the weights of the configuration first "
                        f"({type(exc).__name__}: {exc})")
        else:
            pytest.fail("loaded a model whose weights file cannot match its configuration")
    _count("huge sizes")


# --------------------------------------------------------------------------- bad weights


def _rewrite_weights(model: Path, edit, name: str = "model.safetensors") -> None:
    from safetensors.torch import load_file, save_file

    t = load_file(str(model / name))
    edit(t)
    save_file(t, str(model / name))


def _first_float(t: dict) -> str:
    return next(k for k, v in sorted(t.items()) if v.is_floating_point() and v.dim() == 2)


WEIGHT_EDITS = {
    "missing tensor": lambda t: t.pop(_first_float(t)),
    "unexpected tensor": lambda t: t.__setitem__("backdoor.weight", torch.zeros(2, 2)),
    "wrong shape": lambda t: t.__setitem__(_first_float(t), torch.zeros(3, 3)),
    "transposed shape": lambda t: t.__setitem__(_first_float(t), t[_first_float(t)].t().contiguous()),
    "float64": lambda t: t.__setitem__(_first_float(t), t[_first_float(t)].double()),
    "float16": lambda t: t.__setitem__(_first_float(t), t[_first_float(t)].half()),
    "int tensor": lambda t: t.__setitem__(_first_float(t), t[_first_float(t)].long()),
    "NaN weight": lambda t: t[_first_float(t)].view(-1).__setitem__(0, float("nan")),
    "inf weight": lambda t: t[_first_float(t)].view(-1).__setitem__(-1, float("inf")),
    "no tensors": lambda t: t.clear(),
}


@pytest.mark.parametrize("kind", ["tagger", "classifier", "generator"])
@pytest.mark.parametrize("case", list(WEIGHT_EDITS))
def test_weights_that_disagree_with_the_config(kind, case, tmodel, cmodel, gmodel, tmp_path):
    src = {"tagger": tmodel, "classifier": cmodel, "generator": gmodel}[kind]
    bad = copy_model(src, tmp_path / "bad")
    _rewrite_weights(bad, WEIGHT_EDITS[case])
    with pytest.raises(ModelError):
        _loaders()[kind](bad)
    _count("weights disagree with config / NaN")


@pytest.mark.parametrize("case", ["wrong shape", "NaN", "float64", "renamed"])
def test_bad_extra_embeddings(case, tmodel, tmp_path):
    bad = copy_model(tmodel, tmp_path / "bad")
    edits = {
        "wrong shape": lambda t: t.__setitem__("extra", torch.zeros(1, 1)),
        "NaN": lambda t: t["extra"].view(-1).__setitem__(0, float("nan")),
        "float64": lambda t: t.__setitem__("extra", t["extra"].double()),
        "renamed": lambda t: t.__setitem__("other", t.pop("extra")),
    }
    assert json.loads((bad / "config.json").read_text())["model"]["num_extra"] > 0
    _rewrite_weights(bad, edits[case], "extra_embeddings.safetensors")
    with pytest.raises(ModelError):
        tagger.load(bad)
    _count("weights disagree with config / NaN")


@pytest.mark.parametrize("content", [b"", b"{}", b'["only-one"]', b"[1, 2, 3]", b"not json"])
def test_bad_extra_word_list(content, tmodel, tmp_path):
    bad = copy_model(tmodel, tmp_path / "bad")
    (bad / "extra_words.json").write_bytes(content)
    with pytest.raises(ModelError):
        tagger.load(bad)
    _count("bad extra word list")


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/dev/null", "/proc/self/mem", "/etc", "dangling"])
@pytest.mark.parametrize("filename",
                         ["model.safetensors", "extra_embeddings.safetensors", "config.json", "extra_words.json"])
def test_symlinks_to_devices(filename, target, tmodel, tmp_path):
    bad = copy_model(tmodel, tmp_path / "bad")
    (bad / filename).unlink()
    (bad / filename).symlink_to(tmp_path / "nowhere" if target == "dangling" else target)
    with pytest.raises(ModelError):
        tagger.load(bad)
    _count("symlink to a device")


def test_weights_file_is_a_fifo_does_not_hang(tmodel, tmp_path):
    bad = copy_model(tmodel, tmp_path / "bad")
    for name in ("model.safetensors", "config.json"):
        (bad / name).unlink()
        os.mkfifo(bad / name)
        with pytest.raises(ModelError):
            tagger.load(bad)
        _count("symlink to a device")


# --------------------------------------------------------------------------- wrong kinds of directories


def test_wrong_kind_of_directory_through_the_cli(tmodel, cmodel, gmodel, tmp_path_factory, tmp_path):
    prep = prepared_dir(tmp_path_factory)
    src = tmp_path / "in.txt"
    src.write_text("Peter lives in Berlin .\n", encoding="utf-8")
    texts = tmp_path / "texts.txt"
    texts.write_text("a good film\n", encoding="utf-8")
    cases = [
        (["annotate", cmodel, src, "--out", tmp_path / "a.jsonl"], "classifier model"),
        (["annotate", gmodel, src, "--out", tmp_path / "a.jsonl"], "generator model"),
        (["annotate", prep, src, "--out", tmp_path / "a.jsonl"], "not a model directory"),
        (["evaluate", cmodel, "--data", SAMPLE / "dev.conll"], "classifier model"),
        (["evaluate", prep, "--data", SAMPLE / "dev.conll"], "not a model directory"),
        (["evaluate", tmodel, "--data", cmodel], None),
        (["classify", "predict", tmodel, texts, "--out", tmp_path / "p.jsonl"], "tagger model"),
        (["classify", "evaluate", gmodel, "--data", texts], "generator model"),
        (["generate", "sample", cmodel], "classifier model"),
        (["generate", "evaluate", tmodel, "--text", texts], "tagger model"),
        (["train", tmodel, "--out", tmp_path / "m", "--epochs", "1"], "not a prepared directory"),
        (["train", cmodel, "--out", tmp_path / "m", "--epochs", "1"], "not a prepared directory"),
        (["evaluate", tmp_path / "missing-model", "--data", SAMPLE / "dev.conll"], "not found"),
        (["evaluate", src, "--data", SAMPLE / "dev.conll"], "not a directory"),
    ]
    for args, expect in cases:
        assert_clean_exit_2(args, expect)
        _count("wrong kind of model directory (CLI)")


# --------------------------------------------------------------------------- crafted checkpoints


def _prepared_of(model: Path) -> Path:
    return Path(json.loads((model / "config.json").read_text())["training"]["prepared"])


def _checkpoint_edits():
    from safetensors.torch import save

    def meta_only(info=None, optim=None, drop=()):
        def edit(tensors, meta):
            if info is not None:
                meta["info"] = info
            if optim is not None:
                meta["optim"] = optim
            for k in drop:
                tensors.pop(k, None) if k in tensors else meta.pop(k, None)
        return edit

    def nan_weight(tensors, meta):
        k = next(k for k in sorted(tensors) if k.startswith("model.") and tensors[k].is_floating_point())
        tensors[k] = tensors[k].clone()
        tensors[k].view(-1)[0] = float("nan")

    def bad_momentum(tensors, meta):
        k = next(k for k in sorted(tensors) if k.startswith("optim."))
        tensors[k] = torch.zeros(2, 3)

    def bad_rng(tensors, meta):
        tensors["rng.torch"] = torch.zeros(3, dtype=torch.float32)

    def wrong_model_shape(tensors, meta):
        k = next(k for k in sorted(tensors) if k.startswith("model.") and tensors[k].dim() == 2)
        tensors[k] = torch.zeros(1, 1)

    return {
        "no rng state": meta_only(drop=["rng.torch"]),
        "no info metadata": meta_only(drop=["info"]),
        "info not JSON": meta_only(info="{"),
        "info a list": meta_only(info="[]"),
        "info without epoch": meta_only(info=json.dumps({"best": 0.5})),
        "epoch a string": meta_only(info=json.dumps({"epoch": "1", "best": 0.1, "best_epoch": 1, "bad_epochs": 0,
                                                     "elapsed": 1.0, "finished": False})),
        "optim not JSON": meta_only(optim="]]"),
        "optim groups missing": meta_only(optim=json.dumps({"scalars": {}})),
        "NaN model weight": nan_weight,
        "momentum of the wrong shape": bad_momentum,
        "rng state of the wrong dtype": bad_rng,
        "model tensor of the wrong shape": wrong_model_shape,
    }, save


@pytest.mark.parametrize("case", list(_checkpoint_edits()[0]))
def test_crafted_checkpoint_on_resume(case, tmodel, tmp_path):
    from safetensors import safe_open

    edits, save = _checkpoint_edits()
    bad = copy_model(tmodel, tmp_path / "bad")
    ck = bad / "checkpoint.safetensors"
    with safe_open(str(ck), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    info = json.loads(meta["info"])
    info["finished"] = False  # make --resume actually continue
    meta["info"] = json.dumps(info)
    edits[case](tensors, meta)
    ck.write_bytes(save(tensors, metadata=meta))
    before = (bad / "model.safetensors").read_bytes()
    assert_clean_exit_2(["train", _prepared_of(tmodel), "--out", bad, "--resume", "--epochs", "2", "-q"])
    assert (bad / "model.safetensors").read_bytes() == before
    _count("crafted checkpoint")


def test_checkpoint_symlinked_to_a_device(tmodel, tmp_path):
    for target in ("/dev/zero", "/dev/urandom", "/dev/null"):
        bad = copy_model(tmodel, tmp_path / f"bad{target.replace('/', '_')}")
        (bad / "checkpoint.safetensors").unlink()
        (bad / "checkpoint.safetensors").symlink_to(target)
        assert_clean_exit_2(["train", _prepared_of(tmodel), "--out", bad, "--resume", "-q"])
        _count("crafted checkpoint")


def test_crafted_train_toml_on_resume(tmodel, tmp_path):
    """train.toml of a model directory is data: absurd sizes are refused before building the model."""
    prep = _prepared_of(tmodel)
    for text in ("[train]\nhidden = 1000000000\n", "[train]\nlayers = 1000000\n",
                 "[train]\nchar_filters = 1000000000\n", "[train]\nepochs = '__import__(\"os\")'\n", "not toml [",
                 "[train]\nbatch_size = -1\n"):
        bad = copy_model(tmodel, tmp_path / f"bad{len(list(tmp_path.iterdir()))}")
        (bad / "train.toml").write_text(text, encoding="utf-8")
        with _AddressSpaceLimit(1 << 30):
            assert_clean_exit_2(["train", prep, "--out", bad, "--resume", "-q"])
        _count("crafted checkpoint")


# --------------------------------------------------------------------------- pipelines are data


def test_pipeline_strings_are_never_evaluated(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    payloads = [
        "${__import__('os').system('touch " + str(marker) + "')}",
        "${os.system('touch " + str(marker) + "')}",
        "$(touch " + str(marker) + ")",
        "`touch " + str(marker) + "`",
        "; touch " + str(marker),
        "{{ ''.__class__.__mro__ }}",
    ]
    for i, payload in enumerate(payloads):
        p = tmp_path / f"p{i}.toml"
        p.write_text(
            "[vars]\nDATA = " + json.dumps(payload) + "\n\n"
            "[[stages]]\nname = \"prepare\"\ncommand = \"prepare\"\n[stages.options]\n"
            "train = \"${DATA}\"\nembeddings = \"none\"\n", encoding="utf-8")
        code, out, exc = invoke("run", p, "--workdir", tmp_path / f"w{i}")
        assert exc is None and code == 2 and "Traceback" not in out, out
        assert not marker.exists()
        _count("pipeline payload")
    # --set and environment values are used as literal strings, never run through a shell
    p = tmp_path / "q.toml"
    p.write_text("[[stages]]\nname = \"prepare\"\ncommand = \"prepare\"\n[stages.options]\n"
                 "train = \"${X}\"\nembeddings = \"none\"\n", encoding="utf-8")
    for how in ("set", "env"):
        args = ["run", p, "--workdir", tmp_path / f"q-{how}"]
        if how == "set":
            args += ["--set", f"X=$(touch {marker})"]
        else:
            monkeypatch.setenv("X", f"`touch {marker}`")
        code, out, exc = invoke(*args)
        assert exc is None and code == 2 and "Traceback" not in out, out
        assert not marker.exists()
        _count("pipeline payload")


def test_pipeline_file_that_is_python_or_binary(tmp_path):
    marker = tmp_path / "pwned"
    for i, content in enumerate([f"import os\nos.system('touch {marker}')\n".encode(), b"\x00\xff\xfe" * 10,
                                 b"[[stages]]\nname = 1\n", b"stages = 'x'\n"]):
        p = tmp_path / f"p{i}.toml"
        p.write_bytes(content)
        code, out, exc = invoke("run", p, "--workdir", tmp_path / f"w{i}")
        assert exc is None and code == 2 and "Traceback" not in out, out
        assert not marker.exists()
        _count("pipeline payload")


def test_loading_a_good_model_still_works(tmodel, cmodel, gmodel):
    """The checks above reject bad directories only."""
    p = tagger.load(tmodel)
    assert len(p.predict([["Peter", "visited", "Zanzibar"]])[0].tags) == 3
    for kind, src in (("classifier", cmodel), ("generator", gmodel)):
        _loaders()[kind](src)


def test_write_case_counts():
    """Record how many crafted cases this module ran (reports/reliability.md quotes them)."""
    write_case_counts("models", CASES)


def test_loading_a_model_stays_light(tmp_path_factory):
    """Loading builds the model on the meta device first (to check the weights file) without random
    initialisation there: it would import torch._dynamo, over a second of every load."""
    model = tagger_model(tmp_path_factory)
    code = ("import sys, tagger; p = tagger.load(sys.argv[1]); p.predict([['a', 'b']]); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
