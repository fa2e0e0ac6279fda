"""Reliability under load: ``tagger annotate`` memory stays flat as the input grows, and concurrent
processes on one model directory all finish with correct output.

The full-size figures (1 GB of raw text, peak RSS and tokens/s) come from
``benchmarks/annotate_memory.py`` (reports/annotate_memory*.md); these tests run the same code on
inputs small enough for CI and check the properties, not the speed.
"""

from __future__ import annotations

import json

import pytest
from conftest import benchmark_module
from reliability_util import tagger_model, write_case_counts

pytestmark = pytest.mark.slow

CASES: dict[str, int] = {}


def _benchmark():
    return benchmark_module("annotate_memory")


def _count(kind: str, n: int = 1) -> None:
    CASES[kind] = CASES.get(kind, 0) + n


def test_peak_memory_does_not_grow_with_the_input(tmp_path_factory, tmp_path):
    """1 MB and 4 MB of raw text: the same peak RSS within 15 MB
    (holding the input or the output in memory would add more), every character tagged.

    The LSTM kernel's cache of compiled shapes is bounded on its own (tagger.nn.padded_lstm caps it
    at 32 entries, filled by distinct batch shapes, not by input size: a few MB each for a small
    model); it is set to 4 entries here so that its filling does not hide a growth with the input.
    """
    bench = _benchmark()
    model = tagger_model(tmp_path_factory)
    rows = {}
    for mb in (1.0, 4.0):
        src = tmp_path / f"in-{mb}.txt"
        bench.generate_text(src, mb)
        out = tmp_path / f"out-{mb}.jsonl"
        row = bench.run_annotate(model, src, out, threads=1, fmt="text", interval=0.02, kernel_cache=4)
        assert row["exit"] == 0, row.get("stderr")
        # nothing dropped: the tokens are the text at their offsets, in order, and cover every
        # non-space character of the input
        with open(src, encoding="utf-8", newline="") as fh:
            text = fh.read()
        covered, last_end = 0, 0
        with open(out, encoding="utf-8") as fh:
            for rec in map(json.loads, fh):
                assert len(rec["tags"]) == len(rec["tokens"])
                for tok, (a, b) in zip(rec["tokens"], rec["offsets"]):
                    assert a >= last_end and text[a:b] == tok
                    covered, last_end = covered + (b - a), b
        assert covered == len(text) - sum(text.count(c) for c in " \n")
        rows[mb] = row
    small, big = rows[1.0], rows[4.0]
    assert big["tokens"] > 3.5 * small["tokens"]
    # the sampled peak RSS of each annotate process (ru_maxrss would include this pytest process's
    # RSS at the fork): flat, not proportional to the input
    print(f"sampled peak RSS: {small['max_sampled_rss_mb']} MB (1 MB), {big['max_sampled_rss_mb']} MB (4 MB)")
    assert big["max_sampled_rss_mb"] < small["max_sampled_rss_mb"] + 15, (small, big)
    _count("bounded memory (1 MB vs 4 MB)", 2)


def test_eight_concurrent_processes_on_one_model_directory(tmp_path_factory, tmp_path):
    bench = _benchmark()
    model = tagger_model(tmp_path_factory)
    src = tmp_path / "in.txt"
    bench.generate_text(src, 0.2, seed=2)
    res = bench.run_concurrent(model, src, tmp_path, 8, threads=1, fmt="text")
    assert res["single_process"]["exit"] == 0
    assert res["all_exit_0"], res["errors"]
    assert res["identical_to_single"] == 8
    _count("8 concurrent processes, outputs identical", 8)


def test_write_case_counts():
    write_case_counts("load", CASES)
