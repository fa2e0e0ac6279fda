"""What a prediction is (:class:`Prediction`, :class:`Entity`) and what predicts (:class:`Tagger`),
without torch: shared by the torch :class:`tagger.predict.Predictor` and the ONNX runtime
(:mod:`tagger.onnx.runtime`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tagger import schemes
from tagger.errors import TaggerError
from tagger.tokens import model_featurizer
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


class FeaturedTokens(list):
    """A sentence's tokens (a ``list``) that also carry its feature columns' values: ``features``
    holds one list per column, a value per token. A slice slices the columns too, so a sentence
    tagged in pieces keeps them; anything that takes the tokens alone sees a list."""

    __slots__ = ("features",)

    def __init__(self, tokens: Sequence[str], features: Sequence[Sequence[str]]) -> None:
        super().__init__(tokens)
        self.features = [list(c) for c in features]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return FeaturedTokens(list.__getitem__(self, index), [c[index] for c in self.features])
        return list.__getitem__(self, index)

    def __reduce__(self):
        return FeaturedTokens, (list(self), self.features)


def start(sentences: Sequence[Sequence[str]], batch_size: int, batch_tokens: int
          ) -> tuple[list[Prediction | None], list[int], list[int]]:
    """The start of a ``predict`` call: the predictions so far (those of empty sentences), the lengths,
    and the indices of the other sentences, longest first. Checks the batch limits."""
    if batch_size < 1 or batch_tokens < 1:
        raise TaggerError("batch size and batch tokens must be at least 1")
    out: list[Prediction | None] = [None] * len(sentences)
    lengths = [len(s) for s in sentences]
    for i, n in enumerate(lengths):
        if n == 0:
            out[i] = Prediction([], [], [])
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])
    return out, lengths, order


def finish(out: list[Prediction | None], task: str, own_scheme: str, scheme: str | None) -> list[Prediction]:
    """The end of a ``predict`` call: every prediction, its tags converted to ``scheme`` (entity tasks)."""
    done = [p for p in out if p is not None]
    assert len(done) == len(out)  # every sentence is tagged
    if scheme is not None and task == "entity" and scheme != own_scheme:
        for p in done:
            p.tags = p.tags_in(scheme)
            p.nbest = [(schemes.convert(t, own_scheme, scheme)[0], pr) for t, pr in p.nbest]
    return done


class ModelVocabulary:
    """What every predictor reads from a model's ``config.json``: its featurizer (word lookup,
    characters, labels), task and tag scheme; ``threads`` starts at 0 (the runtime's choice)."""

    def __init__(self, config: dict, extra_words: Sequence[str]) -> None:
        self.config = config
        self.featurizer = model_featurizer(config, extra_words)
        self.lookup, self.chars = self.featurizer.lookup, self.featurizer.chars
        assert self.featurizer.labels is not None
        self.labels = self.featurizer.labels
        self.task: str = config["task"]
        self.scheme: str = config["scheme"]
        self.threads = 0
        #: the feature columns the model reads beside the words, as ``prepare --feature-columns`` named them
        self.feature_columns: list[str] = [f["column"] for f in config["vocab"].get("features", [])]

    @property
    def tag_names(self) -> list[str]:
        return list(self.labels.itos)

    def column_values(self, sentences: Sequence[Sequence[str]],
                      features: Sequence[Sequence[Sequence[str]]] | None) -> list[list[list[int]]] | None:
        """Value ids of each sentence's feature columns (``None`` for a model without any); a
        :class:`~tagger.errors.TaggerError` when they are missing, extra or of the wrong lengths.
        Without ``features``, a sentence's values are its own (:class:`FeaturedTokens`)."""
        if features is None:
            own = [getattr(s, "features", None) for s in sentences]
            features = None if any(f is None for f in own) else own  # type: ignore[assignment]
        if not self.feature_columns:
            if features is not None and any(features):
                raise TaggerError("this model reads no feature columns")
            return None
        names = ", ".join(self.feature_columns)
        if features is None or len(features) != len(sentences):
            raise TaggerError(f"this model reads the feature column(s) {names} of every sentence")
        vocabs = self.featurizer.features
        out = []
        for tokens, cols in zip(sentences, features, strict=True):
            if len(cols) != len(vocabs) or any(len(c) != len(tokens) for c in cols):
                raise TaggerError(f"feature columns ({names}): one value of each per token")
            out.append([v.lookup(c) for v, c in zip(vocabs, cols, strict=True)])
        return out


class Tagger(Protocol):
    """What annotate, evaluate and the server use of a predictor, whichever runtime runs it."""

    config: dict
    task: str
    scheme: str
    threads: int
    lookup: WordLookup  # word → id, with its training vocabulary (for out-of-vocabulary figures)
    feature_columns: list[str]  # feature columns the model reads beside the words ([] for most models)

    @property
    def tag_names(self) -> list[str]: ...

    @property
    def has_crf(self) -> bool: ...

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 256, nbest: int = 0,
                confidences: bool = True, scheme: str | None = None, token_scores: bool = True,
                batch_tokens: int = ..., features: Sequence[Sequence[Sequence[str]]] | None = None
                ) -> list[Prediction]: ...
