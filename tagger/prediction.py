"""What a prediction is (:class:`Prediction`, :class:`Entity`) and what predicts (:class:`Tagger`),
without torch: shared by the torch :class:`tagger.predict.Predictor` and the ONNX runtime
(:mod:`tagger.onnx.runtime`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tagger import schemes
from tagger.vocab import WordLookup


@dataclass
class Entity:
    """An entity span over token positions ``[start, end)`` with its CRF probability."""

    label: str
    start: int
    end: int
    score: float

    def to_json(self) -> dict:
        return {"label": self.label, "start": self.start, "end": self.end, "score": round(self.score, 6)}


@dataclass
class Prediction:
    """Tags for one sentence, with per-token confidences and (entity tasks) entity spans."""

    tokens: list[str]
    tags: list[str]
    scores: list[float]  # marginal probability of each predicted tag ([] if predicted with token_scores=False)
    entities: list[Entity] = field(default_factory=list)
    nbest: list[tuple[list[str], float]] = field(default_factory=list)  # (tags, probability)

    def tags_in(self, scheme: str) -> list[str]:
        """The tags written in another entity ``scheme``: ``schemes.convert`` of the tags, from
        :attr:`entities` (a prediction's entities are its tags' spans)."""
        return schemes.from_spans([(e.label, e.start, e.end) for e in self.entities], len(self.tags), scheme)


class Tagger(Protocol):
    """What annotate, evaluate and the server use of a predictor, whichever runtime runs it."""

    config: dict
    task: str
    scheme: str
    threads: int
    lookup: WordLookup  # word → id, with its training vocabulary (for out-of-vocabulary figures)

    @property
    def tag_names(self) -> list[str]: ...

    @property
    def has_crf(self) -> bool: ...

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 256, nbest: int = 0,
                confidences: bool = True, scheme: str | None = None, token_scores: bool = True,
                batch_tokens: int = ...) -> list[Prediction]: ...
