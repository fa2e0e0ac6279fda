"""The model behind the server: requests to sentences, sentences to `tagger annotate` records.

A request's texts and token lists become the records `tagger annotate` reads from JSON lines
(:func:`tagger.formats.jsonl.record_from_object`), are predicted by the annotate engine and
rendered by its JSONL renderer: the server answers exactly what `tagger annotate` writes for the
same input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

from tagger.commands.annotate.engine import Engine
from tagger.commands.annotate.options import AnnotateOptions
from tagger.commands.annotate.render import Renderer
from tagger.context import with_context
from tagger.formats.jsonl import JsonRecord, record_from_object
from tagger.prediction import Prediction, Tagger
from tagger.schemes import is_entity_tag, split_tag
from tagger.serve.options import ServeOptions
from tagger.threads import Threads
from tagger.threads import poll as poll_threads
from tagger.vocab import PAD

#: What requests must agree on to be tagged in one model call: (n-best size, tag scheme).
Key = tuple[int, str]


class RequestProblem(Exception):
    """A request the server refuses: its HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Service:
    """A loaded predictor (either runtime), the engines and renderers of each (n-best, scheme), and model facts."""

    def __init__(self, predictor: Tagger, options: ServeOptions, model_dir: str | Path, runtime: str = "torch"):
        self.predictor = predictor
        self.options = options
        self.model_dir = Path(model_dir)
        self.runtime = runtime
        self._engines: dict[Key, tuple[Engine, Renderer]] = {}
        self._threads: Threads | None = None

    # ---- model facts
    @functools.cached_property
    def info(self) -> dict:
        """What ``GET /model`` answers (read once: the model does not change while it is served)."""
        p, cfg = self.predictor, self.predictor.config
        summary = _read_json(self.model_dir / "train_summary.json")
        training = cfg.get("training") or {}
        labels = [t for t in p.tag_names if t != PAD]  # the label vocabulary's padding id is never predicted
        types = sorted({split_tag(t)[1] or "" for t in labels if is_entity_tag(t) and t != "O"}) \
            if p.task == "entity" else []
        return {
            "name": self.model_dir.resolve().name,
            "runtime": self.runtime,
            "task": p.task,
            "scheme": p.scheme,
            "labels": labels,
            "entity_types": types,
            "feature_columns": list(p.feature_columns),
            "version": cfg.get("tagger_version"),
            "format_version": cfg.get("format_version"),
            "architecture": cfg.get("model"),
            "training": {"summary": {k: summary[k] for k in ("best_dev", "best_epoch", "epochs", "minutes")
                                     if k in summary},
                         "options": training.get("options", {})},
            "limits": {k: getattr(self.options, k) for k in ("max_body", "max_items", "max_sentences", "max_tokens",
                                                               "max_nbest", "max_length", "timeout")},
        }

    @property
    def has_crf(self) -> bool:
        return bool(self.predictor.has_crf)

    # ---- requests
    def records(self, text: str | None, texts: list[str] | None, tokens: list[list[str]] | None,
                features: list[dict[str, list[str]]] | None = None) -> list[JsonRecord]:
        """The annotate records of a request's input; :class:`RequestProblem` for what it may not ask."""
        o = self.options
        objs: list[dict]
        if text is not None:
            objs, field = [{"text": text}], "text"
        elif texts is not None:
            objs, field = [{"text": t} for t in texts], "texts"
        else:
            objs, field = [{"tokens": t} for t in tokens or []], "tokens"
            if features is not None and not self.predictor.feature_columns:
                raise RequestProblem(422, "'features': this model reads no feature columns")
            for obj, f in zip(objs, features or [], strict=False):
                obj["features"] = f
        if len(objs) > o.max_items:
            raise RequestProblem(413, f"{len(objs)} items in '{field}': at most {o.max_items} per request")
        records = []
        n_tokens = n_sentences = 0
        for k, obj in enumerate(objs):
            r = record_from_object(obj, features=self.predictor.feature_columns)
            if r.error is not None:
                raise RequestProblem(422, f"{field}[{k}]: {r.error}")
            if self.predictor.context and r.text is not None:  # a text is a document: its sentences are context
                r.sentences = list(with_context(r.sentences, [0] * len(r.sentences), self.predictor.context))
            n_sentences += len(r.sentences)
            n_tokens += sum(len(s) for s in r.sentences)
            if n_sentences > o.max_sentences:
                raise RequestProblem(413, f"more than {o.max_sentences} sentences in the request")
            if n_tokens > o.max_tokens:
                raise RequestProblem(413, f"more than {o.max_tokens} tokens in the request")
            records.append(r)
        return records

    def render(self, key: Key, records: Sequence[JsonRecord], preds: Sequence[Prediction]) -> list[dict]:
        """One output record per input record (``preds``: its sentences' predictions, in order)."""
        renderer = self._engine(key)[1]
        out, at = [], 0
        for r in records:
            n = len(r.sentences)
            out.append(renderer.record(r, list(preds[at : at + n])))
            at += n
        return out

    def predict(self, key: Key, sentences: list[Sequence[str]]) -> list[Prediction]:
        """Predictions of sentences for requests of ``key`` = (n-best, scheme); runs in the model thread."""
        if self._threads is None:  # the thread's torch thread count, re-measured as the load changes
            self._threads = Threads(self.options.threads, share=self.options.workers).__enter__()
        poll_threads()
        return self._engine(key)[0].predict(sentences)[0]

    def _engine(self, key: Key) -> tuple[Engine, Renderer]:
        got = self._engines.get(key)
        if got is None:
            nbest, scheme = key
            opts = AnnotateOptions(nbest=nbest, scheme=scheme, max_length=self.options.max_length,
                                   batch_size=self.options.batch_size,
                                   input_format="jsonl", output_format="jsonl", progress=False)
            got = self._engines[key] = (Engine(self.predictor, opts), Renderer("jsonl", "jsonl", opts, "utf-8"))
        return got


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
