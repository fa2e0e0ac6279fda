"""Tests for tagger.training: the epoch loop with a toy task, resume, schedules and the resume rule."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from resume_util import strip_timing
from torch import nn

from tagger.errors import TaggerError
from tagger.options import option, to_toml
from tagger.training.loop import Recipe, Step, Task, Trainer
from tagger.training.optim import clip_gradients, constant, decay_on_plateau, inverse_decay
from tagger.training.resume import resumed_options
from tagger.training.rundir import RunDir
from tagger.training.setup import setup


class ToyTask(Task):
    """Noisy linear regression; dev "score" is the dev loss (lower is better)."""

    headline = "mse"
    higher_is_better = False

    def __init__(self, dev_noise: float = 0.0) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 3, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(64, generator=g)
        self.dev_noise = dev_noise
        self.model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))
        self.files = 0

    def size(self) -> int:
        return 64

    def batches(self, epoch: int):
        order = torch.randperm(64)  # drawn from the (checkpointed) torch generator
        return [order[i : i + 16] for i in range(0, 64, 16)]

    def step(self, idx) -> Step:
        loss = ((self.model(self.x[idx]).squeeze(-1) - self.y[idx]) ** 2).mean()
        return Step(loss, loss.item() * len(idx), len(idx), len(idx))

    def evaluate(self) -> dict:
        with torch.no_grad():
            mse = ((self.model(self.x).squeeze(-1) - self.y) ** 2).mean().item()
        return {"mse": mse + self.dev_noise}

    def write_files(self, out: Path) -> None:
        self.files += 1
        (out / "config.json").write_text("{}")


@dataclass
class ToyOptions:
    epochs: int = option(6, help="Epochs.", min=1)
    seed: int = option(1, help="Seed.")
    crf: bool = option(True, help="A flag.")


def _trainer(out: Path | None, epochs: int = 6, resume: bool = False, **recipe) -> Trainer:
    setup(seed=3)
    task = ToyTask()
    run = None
    if out is not None:
        run = RunDir(out, "toy", resume=resume)
        run.options(ToyOptions, ToyOptions(epochs=epochs), None)
        run.create()
    r = Recipe(epochs=epochs, optimizer="adam", lr=0.05, schedule=constant(0.05), **recipe)
    return Trainer(task, r, run)


def test_the_loop_is_a_generator_of_epochs():
    trainer = _trainer(None)
    seen = []
    for epoch in trainer.epochs():
        seen.append(epoch.epoch)
        assert set(epoch.dev) == {"mse"} and epoch.items == 64
    assert seen == [1, 2, 3, 4, 5, 6]
    s = trainer.summary()
    assert s["epochs"] == 6 and 1 <= s["best_epoch"] <= 6
    assert s["best_dev"] == min(r["dev"]["mse"] for r in s["history"])  # lower is better here
    best = trainer.best_weights()  # held in memory without a run directory
    assert set(best) == set(trainer.task.model.state_dict())


def test_patience_stops_early():
    trainer = _trainer(None, epochs=50, patience=2, ema=0.9)
    trainer.fit()
    s = trainer.state
    assert s.epoch < 50 and s.bad_epochs == 2 and s.finished


def test_resume_after_an_interruption_ends_as_an_uninterrupted_run(tmp_path):
    full = _trainer(tmp_path / "full", ema=0.9, clip=1.0)
    full.fit()
    part = _trainer(tmp_path / "part", ema=0.9, clip=1.0)
    for epoch in part.epochs():
        if epoch.epoch == 2:
            break  # as if killed after the second checkpoint
    resumed = _trainer(tmp_path / "part", resume=True, ema=0.9, clip=1.0)
    assert resumed.task.files == 0  # static files are not rewritten on resume
    resumed.fit()
    assert strip_timing(resumed.state.history) == strip_timing(full.state.history)
    rows = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert strip_timing(rows) == strip_timing(full.state.history)
    for k, v in full.best_weights().items():
        assert torch.equal(v, resumed.best_weights()[k]), k
    assert _trainer(tmp_path / "part", resume=True).fit().epoch == 6  # finished: nothing more to do


def test_schedules():
    assert [inverse_decay(0.1, 0.5)(e, 0.0, True) for e in (1, 2, 3)] == [0.1, 0.1 / 1.5, 0.1 / 2.0]
    plateau = decay_on_plateau(0.1, 0.5)
    assert plateau(1, 0.7, False) == 0.1 and plateau(2, 0.1, True) == 0.1 and plateau(3, 0.1, False) == 0.05
    assert constant(0.3)(9, 0.1, False) == 0.3


class FakeClock:
    """``time.perf_counter`` that advances one second per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _rates_of_steps(trainer: Trainer) -> list[float]:
    """Run ``trainer`` to its end; the learning rate of every optimiser step."""
    rates: list[float] = []
    step = trainer.optimizer.step

    def recorded(*args, **kwargs):
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    trainer.optimizer.step = recorded  # type: ignore[method-assign]
    trainer.fit()
    return rates


@pytest.mark.parametrize("budget_decay", [1.0, 0.25, 0.0])
def test_a_time_budget_decays_the_rate_to_zero_at_the_limit(monkeypatch, budget_decay):
    monkeypatch.setattr("tagger.training.loop.time.perf_counter", FakeClock())
    trainer = _trainer(None, epochs=100, max_minutes=1.0, budget_decay=budget_decay,
                       stop_mid_epoch=budget_decay > 0)
    rates = _rates_of_steps(trainer)
    s = trainer.state
    assert s.finished and s.epoch < 100  # the time limit ended it
    if not budget_decay:
        assert set(rates) == {0.05}
        return
    decaying = [r for r in rates if r < 0.05]
    assert all(a > b for a, b in zip(decaying, decaying[1:], strict=False))
    assert rates[: len(rates) - len(decaying)] == [0.05] * (len(rates) - len(decaying))  # full rate, then decay
    assert len(decaying) == pytest.approx(budget_decay * len(rates), abs=2)
    assert 0.0 <= rates[-1] < 0.05 * 4 / (60 * budget_decay)  # the last step is within 4 s of the limit
    assert 60.0 <= s.elapsed <= 66.0  # cut mid-epoch: the limit plus the last step and dev scoring


def test_the_budget_decay_is_the_share_of_its_tail_left():
    trainer = _trainer(None, max_minutes=2.0, budget_decay=0.5)
    trainer.state.lr, trainer.state.elapsed = 0.1, 30.0

    def rate_after(running: float) -> float:
        trainer._set_lr(running)
        return trainer.optimizer.param_groups[0]["lr"]

    assert rate_after(0.0) == 0.1  # 3/4 of the budget left: before the tail
    assert rate_after(60.0) == pytest.approx(0.1 * 0.5)  # 1/4 left of a tail of 1/2
    assert rate_after(200.0) == 0.0  # past the limit: never negative
    plain = _trainer(None, max_minutes=2.0)  # without budget_decay the epoch's rate stands
    plain.state.lr, plain.state.elapsed = 0.1, 100.0
    plain._set_lr(10.0)
    assert plain.optimizer.param_groups[0]["lr"] == 0.1


def test_resume_accepts_saved_values_and_names_the_saved_value_of_a_conflict(tmp_path):
    saved = tmp_path / "train.toml"
    saved.write_text(to_toml(ToyOptions(epochs=4, seed=11, crf=True), "toy"))
    o = resumed_options(ToyOptions, saved, "toy", {"seed": 11, "crf": True, "epochs": 9})
    assert (o.seed, o.crf, o.epochs) == (11, True, 9)  # epochs may change on resume
    with pytest.raises(TaggerError, match=r"^--seed 12 conflicts with the saved configuration \(seed = 11\)"):
        resumed_options(ToyOptions, saved, "toy", {"seed": 12})
    with pytest.raises(TaggerError, match=r"^--no-crf conflicts with the saved configuration \(crf = true\)"):
        resumed_options(ToyOptions, saved, "toy", {"crf": False})


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_clip_gradients_matches_torch(max_norm):
    torch.manual_seed(0)
    nets = [nn.Linear(4, 3) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    x = torch.randn(5, 4)
    for net in nets:
        net(x).pow(2).sum().backward()
    expected = nn.utils.clip_grad_norm_(nets[0].parameters(), max_norm)
    assert clip_gradients(nets[1].parameters(), max_norm) == pytest.approx(float(expected), rel=1e-6)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    assert clip_gradients([nn.Parameter(torch.zeros(2))], 1.0) == 0.0  # no gradients at all


def test_a_run_dir_outside_rank_0_writes_nothing(tmp_path):
    run = RunDir(tmp_path / "out", "toy")
    assert run.writes  # a single process is rank 0
    run.writes = False  # as in another rank of data-parallel training
    run.create()
    run.write_history([{"epoch": 1}])
    run.save_weights({"w": torch.zeros(2)})
    run.write_summary({"best_epoch": 1})
    assert not (tmp_path / "out").exists()
    run.writes = True
    run.create()
    run.write_summary({"best_epoch": 1, "history": []})
    assert json.loads((tmp_path / "out" / "train_summary.json").read_text()) == {"best_epoch": 1}
