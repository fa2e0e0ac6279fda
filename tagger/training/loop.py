"""The training loop: a generator of epochs, in the manner of spaCy's ``train_while_improving``.

A model kind plugs in through a :class:`Task` (its batches, its loss on one batch, its dev
scores); the loop owns the rest: optimiser, learning-rate schedule, gradient clipping, the
average of the weights, keeping the best weights, early stopping, the time limit, the
``metrics.jsonl`` rows and, when the run has a directory, checkpoint and resume::

    trainer = Trainer(task, recipe, run, log=print)
    for epoch in trainer.epochs():   # one Epoch per finished epoch
        ...
    model.load_state_dict(trainer.best_weights())

Under ``torchrun`` the same loop trains data-parallel (:mod:`tagger.training.distributed`): each
rank takes its share of every epoch's batches, gradients are averaged over the ranks before
clipping and the optimiser step, and rank 0 alone scores dev and writes the run directory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from tagger.threads import Threads, available_cores
from tagger.threads import poll as poll_threads
from tagger.training import distributed
from tagger.training.checkpoint import load_checkpoint
from tagger.training.ema import WeightEMA, averaged
from tagger.training.optim import Schedule, clip_gradients, make_optimizer
from tagger.training.progress import progress_bar
from tagger.training.rundir import RunDir


@dataclass
class Recipe:
    """How to train: optimiser, schedule, clipping, averaging and when to stop."""

    epochs: int
    optimizer: str
    lr: float
    schedule: Schedule
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip: float = 0.0  # gradient-norm clipping (0 = off)
    patience: int = 0  # stop after this many epochs without improvement (0 = never)
    max_minutes: float = 0.0  # 0 = no limit
    ema: float = 0.0  # decay of the weight average (0 = off)
    stop_mid_epoch: bool = False  # the time limit may cut an epoch short (for very long epochs)
    # Under ``max_minutes``: over this last share of the time budget every step's rate is the epoch's times
    # (time left) / (that share), reaching zero at the limit (linear decay fitted to the budget; 0 = off).
    budget_decay: float = 0.0
    seed: int = 0  # reseeds dropout per epoch and rank in distributed training (unused otherwise)


class Step(NamedTuple):
    """What :meth:`Task.step` returns for one batch."""

    loss: torch.Tensor  # to back-propagate
    total: float  # summed loss over the batch's ``items``, for the epoch's mean
    items: int  # items (sentences, examples, tokens) the loss covers
    done: int  # progress-bar units the batch stands for


class Task:
    """A model kind, as the loop sees it. Subclasses set ``model`` and implement the methods."""

    model: nn.Module
    headline = "accuracy"  #: dev score that picks the best epoch
    higher_is_better = True
    has_dev = True  #: without dev data the last epoch counts as the best
    unit = "ex"  #: progress-bar unit
    item = "ex"  #: what :attr:`Step.items` counts (for the rate in the log)

    def size(self) -> int:
        """Progress-bar units in one epoch."""
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterable[Any]:
        """The batches of ``epoch`` (a deterministic function of the seed and the epoch)."""
        raise NotImplementedError

    def rank_batches(self, epoch: int, rank: int, world: int) -> list[Any]:
        """Distributed training: this rank's batch of each optimisation step of ``epoch`` (``None``: none).

        Step ``k`` takes the batches ``k*world .. k*world+world-1`` of the single-process plan, one
        per rank; its gradient is that of the mean loss over their union. Every rank gets the same
        number of steps (a rank without a batch in the last one contributes nothing).
        """
        plan = list(self.batches(epoch))
        steps = -(-len(plan) // world)
        return [plan[k * world + rank] if k * world + rank < len(plan) else None for k in range(steps)]

    def step(self, batch: Any) -> Step:
        """Forward one batch (the model is in training mode).

        ``Step.loss`` must be the mean of the loss over ``Step.items`` (distributed training
        back-propagates ``loss * items`` and divides the summed gradients by the global items).
        """
        raise NotImplementedError

    def evaluate(self) -> dict[str, Any]:
        """Dev scores (called only when ``has_dev``), with :attr:`headline` among them."""
        raise NotImplementedError

    def row(self, epoch: Epoch) -> dict:
        """The ``metrics.jsonl`` row of a finished epoch."""
        return {"epoch": epoch.epoch, "loss": epoch.loss, "lr": epoch.lr, "dev": epoch.dev,
                "seconds": round(epoch.seconds, 2), "threads": round(epoch.threads, 2), "best": epoch.improved}

    def write_files(self, out: Path) -> None:
        """Write the model directory's static files (config.json, vocabularies) when a run starts."""
        raise NotImplementedError


@dataclass
class Epoch:
    """The result of one epoch."""

    epoch: int
    loss: float  # mean training loss per item
    lr: float
    dev: dict  # dev scores ({} without dev data)
    improved: bool
    seconds: float  # training and dev scoring
    train_seconds: float
    items: int  # training items seen (what Step.items counts)
    partial: bool  # cut short by the time limit
    threads: float = 0.0  # mean torch CPU threads over the epoch's batches (tagger.threads may change them)
    stop: str | None = None  # why training stops after this epoch
    row: dict = field(default_factory=dict)


@dataclass
class LoopState:
    """What a checkpoint keeps of the loop (``best`` is the score turned higher-is-better)."""

    epoch: int = 0
    best: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed: float = 0.0
    finished: bool = False
    history: list[dict] = field(default_factory=list)
    lr: float | None = None  # the schedule's rate of the last epoch (before any budget decay)

    def info(self) -> dict:
        return {"epoch": self.epoch, "best": self.best, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "elapsed": self.elapsed, "finished": self.finished, "lr": self.lr}


class Trainer:
    """Trains ``task.model`` by ``recipe``; with a :class:`RunDir`, checkpointed and resumable."""

    def __init__(self, task: Task, recipe: Recipe, run: RunDir | None = None, *,
                 log: Callable[[str], None] | None = None, progress: bool = False, threads: int = 0) -> None:
        self.task = task
        self.threads = threads  # torch CPU threads (0: the free cores, re-measured as training goes)
        self.recipe = recipe
        self.run = run
        self.say = log or (lambda m: None)
        self.progress = progress
        r = recipe
        self.optimizer = make_optimizer(task.model, r.optimizer, r.lr, r.momentum, r.weight_decay)
        self.ema = WeightEMA(task.model, r.ema) if r.ema > 0 else None
        self.state = LoopState()
        self._best: dict[str, torch.Tensor] | None = None  # best weights of a run without a directory
        self.group = distributed.current()  # None: single-process training
        self.main = self.group is None or self.group.main  # the process that scores dev and logs (and writes: RunDir)
        if not self.main:
            self.say = lambda m: None
            self.progress = False
        self.sync = distributed.GradientSync(task.model) if self.group is not None else None

    # ------------------------------------------------------------------ the loop

    def epochs(self) -> Iterator[Epoch]:
        """Train epoch by epoch, yielding each finished (recorded and checkpointed) epoch."""
        if not self._begin():
            return
        threads = self.threads
        if self.group is not None and not threads:  # ranks on one host share its cores
            threads = max(1, available_cores() // self.group.local_world)
        with Threads(threads):
            for n in range(self.state.epoch + 1, self.recipe.epochs + 1):
                epoch = self._train_epoch(n)
                self._score(epoch)
                self._record(epoch)
                yield epoch
                if epoch.stop:
                    return

    def fit(self) -> LoopState:
        """Run :meth:`epochs` to the end."""
        for _ in self.epochs():
            pass
        return self.state

    def _begin(self) -> bool:
        """Start or resume; False when a resumed run has nothing left to do."""
        run, s, r = self.run, self.state, self.recipe
        if run is None:
            if self.sync is not None:
                self.sync.broadcast_parameters(self.task.model)
            return True
        if run.continuing:
            info = load_checkpoint(run.checkpoint, self.task.model, self.optimizer, self.ema)
            s.epoch, s.best, s.best_epoch = info["epoch"], info["best"], info["best_epoch"]
            s.bad_epochs, s.elapsed, s.finished = info["bad_epochs"], info["elapsed"], info["finished"]
            s.lr = info.get("lr")  # absent from checkpoints written before the budget decay
            s.history = run.read_history(s.epoch)
            # A finished run stays finished unless --epochs / --patience / --max-minutes now allow more.
            if s.finished and (s.epoch >= r.epochs or (r.patience and s.bad_epochs >= r.patience)
                               or (r.max_minutes and s.elapsed >= r.max_minutes * 60)):
                self.say(f"{run.path}: training had already finished (best epoch {s.best_epoch})")
                return False
            self.say(f"resuming at epoch {s.epoch + 1}")
        else:
            run.start_files(self.task.write_files)
        run.write_history(s.history)
        if self.sync is not None:  # every rank read the same checkpoint; make sure they start equal
            self.sync.broadcast_parameters(self.task.model)
        return True

    def _train_epoch(self, n: int) -> Epoch:
        r, task, opt = self.recipe, self.task, self.optimizer
        previous = self.state.lr if self.state.lr is not None else opt.param_groups[0]["lr"]
        self.state.lr = r.schedule(n, previous, self.state.bad_epochs == 0)
        self._set_lr(0.0)
        task.model.train()
        t0 = time.perf_counter()
        total, count, partial, threads, steps = 0.0, 0.0, False, 0, 0
        group = self.group
        if group is None:
            batches: Iterable[Any] = task.batches(n)
            bar = progress_bar(f"epoch {n}/{r.epochs}", task.unit, task.size(), None if self.progress else False)
        else:
            torch.manual_seed(distributed.epoch_seed(r.seed, n, group.rank))
            batches = task.rank_batches(n, group.rank, group.world)
            bar = progress_bar(f"epoch {n}/{r.epochs} (rank 0 of {group.world})", "step", len(batches),
                               None if self.progress else False)
        for batch in batches:
            poll_threads()
            threads, steps = threads + torch.get_num_threads(), steps + 1
            items, loss, done, stop = self.train_step(batch, t0)
            total += loss
            count += items
            bar.update(done)
            bar.set_postfix(loss=f"{total / max(1, count):.3f}", refresh=False)
            if stop:
                partial = True
                break
        bar.close()
        seconds = time.perf_counter() - t0
        return Epoch(n, total / max(1, count), opt.param_groups[0]["lr"], {}, False, seconds, seconds, int(count),
                     partial, threads / max(1, steps))

    def train_step(self, batch: Any, t0: float = 0.0) -> tuple[float, float, int, bool]:
        """One optimisation step: (items, summed loss, progress units, stop now) over all ranks.

        Distributed: ``batch`` is this rank's share of the step (``None``: nothing this time).
        """
        r, task, opt = self.recipe, self.task, self.optimizer
        opt.zero_grad(set_to_none=True)
        if self.sync is None:
            step = task.step(batch)
            step.loss.backward()
            items, total, done = float(step.items), step.total, step.done
            running = time.perf_counter() - t0
        else:  # rank 0's clock decides for every rank, before the step
            running = time.perf_counter() - t0 if self.main else 0.0
            timed_out = r.stop_mid_epoch and self.main and self._out_of_time(running)
            items, total, done = 0.0, 0.0, 1
            if batch is not None:
                step = task.step(batch)
                (step.loss * step.items).backward()  # summed: the all-reduce divides by the global items
                items, total = float(step.items), step.total
            items, total, timed_out, running = self.sync.reduce(items, total, timed_out, running)
        if r.clip > 0:
            clip_gradients(task.model.parameters(), r.clip)
        self._set_lr(running)
        opt.step()
        if self.ema is not None:
            self.ema.update()
        if self.sync is None:
            timed_out = r.stop_mid_epoch and self._out_of_time(time.perf_counter() - t0)
        return items, total, done, timed_out

    def _score(self, epoch: Epoch) -> None:
        """Dev scores (with the averaged weights); keep the weights of an improvement."""
        s, task = self.state, self.task
        t0 = time.perf_counter()
        if not self.main:  # rank 0 scores; the others learn the outcome from it
            self._share_score(epoch)
            return
        with averaged(self.ema):
            if task.has_dev:
                epoch.dev = task.evaluate()
                value = float(epoch.dev[task.headline])
                key = value if task.higher_is_better else -value
            else:
                key = float(epoch.epoch)  # without dev: the latest epoch is the best
            epoch.improved = key > s.best
            if epoch.improved:
                s.best, s.best_epoch, s.bad_epochs = key, epoch.epoch, 0
                self._keep_best()
            else:
                s.bad_epochs += 1
        epoch.seconds += time.perf_counter() - t0
        if self.group is not None:
            self._share_score(epoch)

    def _share_score(self, epoch: Epoch) -> None:
        """Distributed: rank 0's verdict on ``epoch`` (and its clock, for the time limit) on every rank."""
        assert self.group is not None
        s = self.state
        mine = (epoch.dev, epoch.improved, epoch.seconds, epoch.partial, s.best, s.best_epoch, s.bad_epochs)
        shared = distributed.broadcast(mine, self.group)
        if not self.main:
            epoch.dev, epoch.improved, epoch.seconds, epoch.partial, s.best, s.best_epoch, s.bad_epochs = shared
            if epoch.improved:
                with averaged(self.ema):
                    self._keep_best()

    def _keep_best(self) -> None:
        state = self.task.model.state_dict()
        if self.run is not None:
            self.run.save_weights(state)
        else:
            self._best = {k: v.detach().clone() for k, v in state.items()}

    def _record(self, epoch: Epoch) -> None:
        """History row, stop decision, checkpoint and log line of a scored epoch."""
        s, r, task = self.state, self.recipe, self.task
        s.elapsed += epoch.seconds
        s.epoch = epoch.epoch
        epoch.row = task.row(epoch)
        s.history.append(epoch.row)
        if self.run is not None:
            self.run.append_history(epoch.row)
        if r.patience and s.bad_epochs >= r.patience:
            epoch.stop = f"no improvement for {r.patience} epochs"
        elif self._out_of_time(0.0):
            epoch.stop = f"time limit of {r.max_minutes:g} minutes reached"
        elif epoch.epoch == r.epochs:
            epoch.stop = "last epoch"
        s.finished = epoch.stop is not None
        if self.run is not None:
            self.run.save_checkpoint(task.model, self.optimizer, s.info(), self.ema)
        dev = f" dev {task.headline} {epoch.dev[task.headline]:.4f}" if epoch.dev else ""
        rate = epoch.items / max(epoch.train_seconds, 1e-9)
        self.say(f"epoch {epoch.epoch}: loss {epoch.loss:.4f}{dev} lr {epoch.lr:.5g} {epoch.seconds:.1f}s "
                 f"({rate:.0f} {task.item}/s){' *' if epoch.improved else ''}")
        if epoch.stop:
            self.say(f"stopping: {epoch.stop}; best epoch {s.best_epoch}{self._best_text()}")

    def _set_lr(self, running: float) -> None:
        """The epoch's rate, decayed by the time budget left after ``running`` seconds of this epoch."""
        r, lr = self.recipe, self.state.lr
        if lr is None:  # a step outside an epoch (tests): the optimiser's rate as it is
            return
        if r.budget_decay and r.max_minutes:
            left = 1.0 - (self.state.elapsed + running) / (r.max_minutes * 60)
            lr *= min(1.0, max(0.0, left) / r.budget_decay)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def _out_of_time(self, running: float) -> bool:
        limit = self.recipe.max_minutes * 60
        return bool(limit) and self.state.elapsed + running >= limit

    # ------------------------------------------------------------------ results

    def best_dev(self) -> float | None:
        """The best dev score (``None`` without dev data or before the first epoch)."""
        if not self.task.has_dev or not self.state.best_epoch:
            return None
        return self.state.best if self.task.higher_is_better else -self.state.best

    def _best_text(self) -> str:
        best = self.best_dev()
        return "" if best is None else f" ({self.task.headline} {best:.4f})"

    def best_weights(self) -> dict[str, torch.Tensor]:
        """The weights of the best epoch (those of the model when no epoch ran)."""
        if self._best is not None:
            return self._best
        if self.run is not None and self.state.best_epoch:
            return self.run.load_weights()
        return self.task.model.state_dict()

    def restore_best(self) -> None:
        """Load the best weights into the model and leave it on the CPU in eval mode."""
        model = self.task.model
        model.load_state_dict(self.best_weights())
        model.eval()
        model.to("cpu")

    def summary(self) -> dict:
        """Best epoch and dev score, epochs run, minutes and the per-epoch history."""
        s = self.state
        return {"best_epoch": s.best_epoch, "best_dev": self.best_dev(), "epochs": len(s.history),
                "minutes": round(s.elapsed / 60, 2), "history": s.history}
