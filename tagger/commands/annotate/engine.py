"""The prediction engine of ``tagger annotate``: chunks of sentences in, predictions out, in order.

Over-long sentences are tagged in pieces and rejoined; tags are converted to the output scheme.
With ``workers`` > 1, chunks go to forked worker processes (a bounded number in flight) and
come back in order. Prediction is :meth:`tagger.predict.Predictor.predict` (without per-token
scores, which no output format carries).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import torch

from tagger import schemes
from tagger.commands.annotate.options import AnnotateOptions
from tagger.errors import TaggerError
from tagger.prediction import Entity, Prediction, Tagger
from tagger.threads import Threads, available_cores, free_cores


class Engine:
    """Predicts chunks of sentences: splits over-long ones, rejoins, converts the tag scheme."""

    def __init__(self, predictor: Tagger, options: AnnotateOptions) -> None:
        self.predictor = predictor
        self.options = options
        self.entity = predictor.task == "entity"
        self.scheme = predictor.scheme
        target = options.scheme
        self.target = None if (target == "model" or not self.entity or target == self.scheme) else target

    def predict(self, sentences: Sequence[Sequence[str]]) -> tuple[list[Prediction], int]:
        """Predictions in input order and the number of sentences that had to be split."""
        o = self.options
        limit = o.max_length
        pieces: list[Sequence[str]] = []
        plan: list[tuple[int, int]] = []
        nsplit = 0
        for s in sentences:
            if len(s) <= limit:
                plan.append((len(pieces), 1))
                pieces.append(s)
            else:
                first = len(pieces)
                pieces.extend(s[i : i + limit] for i in range(0, len(s), limit))
                plan.append((first, len(pieces) - first))
                nsplit += 1
        preds = self.predictor.predict(pieces, batch_size=o.batch_size, nbest=o.nbest, token_scores=False,
                                         batch_tokens=o.batch_tokens)
        if nsplit:
            preds = [preds[a] if m == 1 else self._rejoin(preds[a : a + m]) for a, m in plan]
        if self.target is not None:
            for (_, pieces_of), p in zip(plan, preds, strict=True):
                # A rejoined prediction's entities were merged at the piece boundaries: convert its tags.
                p.tags = p.tags_in(self.target) if pieces_of == 1 else schemes.convert(p.tags, self.scheme,
                                                                                         self.target)[0]
                p.nbest = [(schemes.convert(t, self.scheme, self.target)[0], pr) for t, pr in p.nbest]
        return preds, nsplit

    def _rejoin(self, parts: list[Prediction]) -> Prediction:
        tokens: list[str] = []
        tags: list[str] = []
        scores: list[float] = []
        shifted: list[Entity] = []
        for p in parts:
            off = len(tokens)
            shifted.extend(Entity(e.label, e.start + off, e.end + off, e.score) for e in p.entities)
            tokens.extend(p.tokens)
            tags.extend(p.tags)
            scores.extend(p.scores)
        joined = Prediction(tokens, tags, scores)
        if self.entity:
            # Spans as the joined tags read (a piece boundary may continue an entity).
            known = {(e.label, e.start, e.end): e.score for e in shifted}
            for sp in schemes.to_spans(tags, self.scheme):
                score = known.get((sp.label, sp.start, sp.end))
                if score is None:
                    score = 1.0
                    for e in shifted:
                        if e.start < sp.end and sp.start < e.end:
                            score *= e.score
                joined.entities.append(Entity(sp.label, sp.start, sp.end, score))
        k = min((len(p.nbest) for p in parts), default=0)
        for q in range(k):  # the q-th best of every piece (an approximation of the joint n-best)
            prob = 1.0
            ts: list[str] = []
            for p in parts:
                ts.extend(p.nbest[q][0])
                prob *= p.nbest[q][1]
            joined.nbest.append((ts, prob))
        return joined


_WORKER_ENGINE: Engine | None = None


def _worker_init(threads: int, predictor, options: AnnotateOptions) -> None:
    """Set up a worker: its torch threads and its engine (``predictor`` may be a model directory)."""
    global _WORKER_ENGINE
    torch.set_num_threads(threads)
    if isinstance(predictor, str):
        from tagger.runtime import load_predictor

        predictor = load_predictor(predictor, options.runtime)
    if getattr(predictor, "runtime", "torch") == "onnx":
        predictor.threads = threads  # onnxruntime's threads (its session is made anew in this process)
    _WORKER_ENGINE = Engine(predictor, options)


def _worker_predict(sentences: list[list[str]]):
    if _WORKER_ENGINE is None:
        raise RuntimeError("annotate worker used before its initialiser ran")
    preds, nsplit = _WORKER_ENGINE.predict(sentences)
    for p in preds:
        p.tokens = []  # the parent has them: do not send them back
    return preds, nsplit


def reads_ahead(options: AnnotateOptions) -> bool:
    """Whether a reader thread reads and tokenises ahead of prediction (one worker, ``prefetch``).

    Only with a core to spare beside two torch threads: OpenMP threads that share a core with
    another busy thread, even one of this process, wait for each other at every step (on 2 cores,
    two torch threads plus the reader ran 50x slower than two threads alone), and one torch
    thread predicts at about 60% of the rate of two.
    """
    return options.workers == 1 and options.prefetch and available_cores() > 2


class ChunkPredictor:
    """Ordered chunk predictions, in this process or in a pool of workers.

    Workers are forked (Linux) and share the loaded model copy-on-write. GNU OpenMP, torch's
    thread pool, is not fork-safe: a forked child running multi-threaded ops hangs for ever
    if the parent had run multi-threaded ops before. So workers get several threads only when
    ``fork_safe`` (the caller knows this process never did, as the CLI does) or when
    ``options.threads`` asks for them explicitly; otherwise one thread each.
    """

    def __init__(self, predictor: Tagger, options: AnnotateOptions, model_dir: str | None,
                 fork_safe: bool = False, notes: list[str] | None = None) -> None:
        self.options = options
        self.pool = None
        if options.workers == 1:
            reserve = 1 if reads_ahead(options) else 0  # the reader thread's core
            self._threads: Threads | None = Threads(options.threads, reserve=reserve).__enter__()
            self.threads = self._threads.count
            if getattr(predictor, "runtime", "torch") == "onnx":
                predictor.threads = self.threads  # onnxruntime's intra-op threads
            self.engine = Engine(predictor, options)
            return
        self._threads = None
        threads = options.threads or free_cores(options.workers)
        self.threads = threads
        if "fork" in multiprocessing.get_all_start_methods():
            if threads > 1 and not (fork_safe or options.threads):
                if notes is not None:
                    notes.append(f"workers used 1 torch thread each instead of {threads}: this process ran torch "
                                 "before forking them (see tagger.commands.annotate.engine.ChunkPredictor)")
                threads = 1
                self.threads = 1
            # Forked workers inherit the loaded model (initargs are not pickled with fork).
            ctx: multiprocessing.context.BaseContext = multiprocessing.get_context("fork")
            source: Tagger | str = predictor
        else:  # pragma: no cover - no fork (Windows, macOS): each worker loads the model
            ctx = multiprocessing.get_context("spawn")
            source = model_dir if model_dir is not None else predictor
        # A pool that notices dead workers (BrokenProcessPool) instead of waiting for ever.
        self.pool = ProcessPoolExecutor(options.workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(threads, source, options))

    @property
    def window(self) -> int:
        return 1 if self.pool is None else 2 * self.options.workers

    def submit(self, sentences: list[list[str]]):
        if self.pool is None:
            return self.engine.predict(sentences)
        return self.pool.submit(_worker_predict, sentences)

    def result(self, handle, sentences: list[list[str]]) -> tuple[list[Prediction], int]:
        if self.pool is None:
            return handle
        try:
            preds, nsplit = handle.result()
        except BrokenProcessPool:
            raise TaggerError("a worker process died (out of memory? try fewer --workers)") from None
        for p, s in zip(preds, sentences, strict=True):
            p.tokens = list(s)
        return preds, nsplit

    def close(self, ok: bool) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            if not ok:
                for proc in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(Exception):
                        proc.terminate()
            pool.shutdown(wait=True, cancel_futures=not ok)
        elif self._threads is not None:
            self._threads.__exit__(None, None, None)
            self._threads = None
