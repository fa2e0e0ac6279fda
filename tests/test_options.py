"""Tests for tagger.options: one declaration of each option drives validation, TOML and click."""

from __future__ import annotations

from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner

from tagger.errors import TaggerError
from tagger.options import bounds, check_fields, click_options, from_toml, given, option, to_toml


@dataclass
class Opts:
    epochs: int = option(10, help="Epochs.", min=1, max=1000)
    rate: float = option(0.5, help="Rate.", min=0.0, below=1.0)
    kind: str = option("a", help="Kind.", choices=("a", "b"))
    device: str = option("cpu", help="Device.", pattern=r"cpu|cuda(:[0-9]+)?")
    fast: bool = option(True, help="Go fast.")
    files: list[str] = option(help="Files.", default_factory=list)
    column: int | str = option(-1, help="Column.")
    hidden_thing: int = option(3, help="Not on the command line.", cli=False)
    size: int = option(1, help="Size.", min=1)
    lr: float = option(0.1, help="Rate.", above=0.0)
    cap: int = option(1, help="Cap.", max=8)


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "--epochs must be in [1, 1000] (got 0)"),
    ({"epochs": 1001}, "--epochs must be in [1, 1000] (got 1001)"),
    ({"rate": 1.0}, "--rate must be in [0.0, 1.0) (got 1.0)"),
    ({"size": 0}, "--size must be at least 1 (got 0)"),
    ({"lr": 0.0}, "--lr must be positive (got 0.0)"),
    ({"lr": float("nan")}, "--lr must be positive (got nan)"),
    ({"rate": float("nan")}, "--rate must be in [0.0, 1.0) (got nan)"),
    ({"cap": 9}, "--cap must be at most 8 (got 9)"),
    ({"kind": "c"}, "--kind must be one of a, b (got 'c')"),
    ({"device": "gpu"}, "--device: invalid value 'gpu'"),
])
def test_check_fields_names_the_flag(change, message):
    with pytest.raises(TaggerError) as exc:
        check_fields(Opts(**change))
    assert str(exc.value) == message


def test_valid_values_pass_and_bounds_are_shared():
    check_fields(Opts(epochs=1000, rate=0.0, kind="b", device="cuda:1"))
    assert bounds(Opts, "epochs") == (1, 1000)
    assert bounds(Opts, "kind") == (None, None)


def test_toml_round_trip_and_type_errors(tmp_path):
    o = Opts(epochs=7, rate=0.25, kind="b", fast=False, files=["x", "y"], column="ner")
    path = tmp_path / "o.toml"
    path.write_text(to_toml(o, "t", "a comment"))
    assert from_toml(Opts, path, "t") == o
    assert from_toml(Opts, path, "t", epochs=3).epochs == 3
    path.write_text("[t]\nepochs = 2\nrate = 1\n")  # an int where a float is expected is fine
    assert from_toml(Opts, path, "t").rate == 1.0
    for bad, why in [("epochs = 'x'", "option 'epochs' must be of type int"),
                     ("fast = 1", "option 'fast' must be of type bool"),
                     ("nope = 1", "unknown option 'nope'"), ("epochs = ", "invalid TOML")]:
        path.write_text(f"[t]\n{bad}\n")
        with pytest.raises(TaggerError, match=why) as exc:
            from_toml(Opts, path, "t")
        assert str(exc.value).startswith(str(path))


def test_click_options_default_to_none_and_show_the_dataclass_default():
    seen = {}

    @click.command()
    @click_options(Opts)
    def cmd(**kw):
        seen.update(kw)

    runner = CliRunner()
    out = runner.invoke(cmd, ["--help"]).output
    assert "--epochs INTEGER" in out and "[default: 10]" in out and "--fast / --no-fast" in out
    assert "--kind [a|b]" in out and "--hidden-thing" not in out
    assert runner.invoke(cmd, []).exit_code == 0
    assert given(seen) == {}
    assert runner.invoke(cmd, ["--epochs", "5", "--no-fast", "--files", "a", "--column", "2"]).exit_code == 0
    assert given(seen) == {"epochs": 5, "fast": False, "files": ["a"], "column": "2"}
    assert runner.invoke(cmd, ["--kind", "z"]).exit_code == 2
