"""The pure helpers of ``benchmarks/speed.py``: parsing, statistics and the report (nothing is run)."""

from __future__ import annotations

import json

import pytest
from conftest import benchmark_module

FLOOR_OUTPUT = "\n".join(json.dumps(r) for r in [
    {"torch": "2", "matmul_gflops_2thr": 80.123, "matmul_gflops_1thr": 41.0, "threads": 2},
    {"what": "train_epoch fwd+bwd+SGD", "order": "sorted", "packed": False, "bs": 32, "sec_runs": [4.4, 4.2],
     "sec": 4.2, "tok_per_s": 48000.0},
    {"what": "testb forward (no_grad) LSTM+linear+CRF logZ", "bs": 32, "tok_per_s": 90000.0},
    {"what": "testb forward (no_grad) LSTM+linear+viterbi", "bs": 32, "tok_per_s": 100000.0},
    {"what": "testb forward (no_grad) LSTM+linear+CRF logZ", "bs": 256, "tok_per_s": 150000.0},
    {"what": "testb forward (no_grad) LSTM+linear+viterbi", "bs": 256, "tok_per_s": 160000.0},
]) + "\nnot json\n"


def speed():
    return benchmark_module("speed")


def test_floor_output_is_summarized():
    s = speed().summarize_floor(speed().read_json_lines(FLOOR_OUTPUT))
    assert s["epoch_s"] == 4.2 and s["epoch_runs"] == [4.4, 4.2]
    assert s["viterbi_tok_s"] == {"32": 100000.0, "256": 160000.0}
    assert s["logz_tok_s"]["256"] == 150000.0
    assert s["matmul_gflops_2thr"] == 80.1


def test_floor_output_without_the_epoch_is_an_error():
    with pytest.raises(ValueError):
        speed().summarize_floor(speed().read_json_lines(FLOOR_OUTPUT.splitlines()[0]))


def test_epoch_stats_take_the_median_and_split_off_dev_evaluation():
    rows = [{"epoch": i + 1, "train_seconds": t, "seconds": t + 2.0, "tokens_per_s": 1.0, "dev": {"f1": 0.8}}
            for i, t in enumerate([30.0, 20.0, 22.0])]
    s = speed().epoch_stats(rows)
    assert s["train_s_median"] == 22.0 and s["train_s"] == [30.0, 20.0, 22.0]
    assert s["dev_eval_s"] == [2.0, 2.0, 2.0] and s["dev_last"] == 0.8


def test_conll_becomes_raw_text_with_documents_apart():
    lines = ["-DOCSTART- -X- O O", "", "EU NNP B-NP B-ORG", "rejects VBZ B-VP O", "", "Peter NNP B-NP B-PER", "",
             "-DOCSTART- -X- O O", "", "Hi UH O O", ""]
    text, tokens, sentences = speed().conll_to_text(lines)
    assert text == "EU rejects\nPeter\n\nHi\n"
    assert (tokens, sentences) == (4, 3)


def test_first_sentences_skip_docstart_in_the_count():
    lines = [f"{x}\n" for x in ["-DOCSTART- -X- O O", "", "a O", "b O", "", "c O", "", "d O", ""]]
    assert speed().first_sentences(lines, 2) == "-DOCSTART- -X- O O\n\na O\nb O\n\nc O\n\n"


def test_default_shape_adds_char_and_casing_features():
    assert speed().default_shape(200, 16, "cnn", 50, True) == {"input": 110, "hidden": 200, "batch": 16}
    assert speed().default_shape(100, 32, "none", 50, False)["input"] == 50


def test_cumulative_minutes():
    rows = [{"epoch": 1, "seconds": 60.0}, {"epoch": 2, "seconds": 30.0}]
    assert speed().cumulative_minutes(rows) == {1: 1.0, 2: 1.5}


def _condition(epoch_s: float, tok_s: float, busy: float = 0.0) -> dict:
    floor = speed().summarize_floor(speed().read_json_lines(FLOOR_OUTPUT)) | {"busy_before": busy}
    train = {"train_s": [epoch_s] * 3, "train_s_median": epoch_s, "dev_eval_s": [1.0] * 3, "dev_eval_s_median": 1.0,
             "rss_mb": 700.0, "busy_before": busy}
    an = {"tok_s": tok_s, "tok_s_process": tok_s / 2, "process_s": 3.0, "rss_mb": 300.0, "busy_before": busy}
    return {"load_before": [0.1], "load_after": [0.2],
            "floor_before": {"small": floor, "default": floor}, "floor_after": {"small": floor, "default": floor},
            "train": {"small": train, "default": train},
            "annotate": {f"{f}_{s}": an for f in ("conll", "text") for s in ("small", "default")},
            "first_prediction": {s: {"total_s": 1.5, "process_s": 1.8} for s in ("small", "default")}}


def test_ratio_rows_divide_by_the_mean_floor():
    rows = {r["key"]: r for r in speed().ratio_rows(_condition(8.4, 120000.0))}
    assert rows["train_small"]["ratio"] == pytest.approx(2.0)
    assert rows["conll_default"]["ratio"] == pytest.approx(0.75)
    assert rows["train_small"]["floor"] == [4.2, 4.2, 4.2]


def test_report_judges_only_the_idle_condition():
    meta = {"command": "python benchmarks/speed.py", "epochs": 3, "train_limit": 500, "testb_tokens": 46435,
            "shapes": {"small": {}, "default": {}}, "machine": {"nproc": 2}}
    tta = {"minutes": 15, "epochs": 2, "rows": [{"epoch": 1, "minutes": 1.0, "dev_f1": 90.0, "test_f1": 89.0}],
           "final_test_f1": 91.0, "short": {"minutes": 4, "epochs": 1, "test_f1": 88.0}, "warning": None}
    res = {"meta": meta, "conditions": {"idle": _condition(3.0, 120000.0),
                                         "competing": _condition(8.4, 50000.0, busy=2.0)},
           "time_to_accuracy": tta, "commands": ["tagger train ..."]}
    md = speed().render_markdown(res, "plot.png")
    idle, competing = md.split("## With a competing")
    assert "≤ 1.0× **pass**" in idle and "≥ 0.7× **pass**" in idle and "≥ 0.5× **pass**" in idle
    assert "pass" not in competing.split("## Time to accuracy")[0] and "not judged here" in competing
    assert "≥ 90.5 in 15 min **pass**" in md and "≥ 89.0 in 4 min **FAIL**" in md
    assert "first 500 sentences" in md and "![test F1 against minutes](plot.png)" in md
    assert "Warning" not in md  # others' CPU use is expected beside the competing job


def test_warnings_name_floor_drift_and_a_busy_machine():
    cond = _condition(3.0, 120000.0, busy=1.2)
    cond["floor_after"] = dict(cond["floor_after"], default=cond["floor_after"]["default"] | {"epoch_s": 10.0})
    warnings = speed().condition_warnings(cond, idle=True)
    assert any("default-shape floor epoch moved from 4.20 to 10.00" in w for w in warnings)
    assert any(w.startswith("not idle: other processes kept 1.20 cores busy") for w in warnings)
    assert not any("not idle" in w for w in speed().condition_warnings(cond, idle=False))


def test_report_says_when_the_floor_is_not_the_one_beside_the_data():
    meta = {"command": "python benchmarks/speed.py", "epochs": 3, "testb_tokens": 46435,
            "shapes": {"small": {}, "default": {}}, "machine": {"nproc": 2},
            "floor": "/elsewhere/shared/bench/floor.py", "floor_of_data": "/elsewhere/shared/bench/floor.py"}
    res = {"meta": meta, "conditions": {"idle": _condition(3.0, 120000.0)}, "time_to_accuracy": None,
           "commands": []}
    assert "was replaced" not in speed().render_markdown(res)  # run from another checkout, same shared folder
    meta["floor"] = "/tmp/my_floor.py"
    assert "The floor script was replaced by `/tmp/my_floor.py`" in speed().render_markdown(res)
