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


class SentenceTokens(list):
    """A sentence's tokens (a ``list``) with what a model may read beside them: ``features``, the
    values of its feature columns (one list per column, a value per token, or ``None``), and
    ``left`` / ``right``, up to ``reach`` tokens of its document before and after it (document
    context, or ``None``; with feature values when the sentence has them). A slice keeps all of
    it: a sentence tagged in pieces gives each piece its values, and the tokens around the piece
    (of the sentence, then of its context) as context. Anything that takes the tokens alone sees a
    list."""

    __slots__ = ("features", "left", "right", "reach")

    def __init__(self, tokens: Sequence[str], features: Sequence[Sequence[str]] | None = None,
                 left: Sequence[str] | None = None, right: Sequence[str] | None = None, reach: int = 0) -> None:
        super().__init__(tokens)
        self.features = None if features is None else [list(c) for c in features]
        self.left, self.right, self.reach = left, right, reach

    def __getitem__(self, index):
        if not isinstance(index, slice):
            return list.__getitem__(self, index)
        a, b, step = index.indices(len(self))
        if step != 1:
            raise ValueError("a sentence slices with step 1 only")
        piece = self._part(a, b)
        if self.left is not None or self.right is not None:
            left = join([self.left or [], self._part(0, a)])
            piece.left = left[max(0, len(left) - self.reach):]
            piece.right = join([self._part(b, len(self)), self.right or []])[: self.reach]
            piece.reach = self.reach
        return piece

    def _part(self, a: int, b: int) -> SentenceTokens:
        """Tokens ``a..b-1`` with their feature values, without context."""
        return SentenceTokens(list.__getitem__(self, slice(a, b)),
                              None if self.features is None else [c[a:b] for c in self.features])

    def __reduce__(self):
        return SentenceTokens, (list(self), self.features, self.left, self.right, self.reach)


def join(parts: Sequence[Sequence[str]]) -> list[str]:
    """Token lists laid end to end; with their feature values when the non-empty ones have some."""
    tokens = [t for p in parts for t in p]
    values: list[list[list[str]]] = []
    for p in parts:
        v = getattr(p, "features", None)
        if len(p) and v is None:
            return tokens
        if v is not None and len(p):
            values.append(v)
    if not values:
        return tokens
    return SentenceTokens(tokens, [[x for v in values for x in v[c]] for c in range(len(values[0]))])


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


def model_inputs(config: dict) -> tuple[list[str], int]:
    """What a model's ``config.json`` says it reads beside the words: its feature columns (as
    ``prepare --feature-columns`` named them) and its tokens of document context on each side."""
    features = [str(f["column"]) for f in (config.get("vocab") or {}).get("features") or []]
    return features, int((config.get("model") or {}).get("context") or 0)


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
        #: the feature columns the model reads beside the words, and its tokens of document context
        #: on each side of a sentence (0: none)
        self.feature_columns, self.context = model_inputs(config)

    @property
    def tag_names(self) -> list[str]:
        return list(self.labels.itos)

    def column_values(self, sentences: Sequence[Sequence[str]],
                      features: Sequence[Sequence[Sequence[str]]] | None) -> list[list[list[int]]] | None:
        """Value ids of each sentence's feature columns (``None`` for a model without any); a
        :class:`~tagger.errors.TaggerError` when they are missing, extra or of the wrong lengths.
        Without ``features``, a sentence's values are its own (:class:`SentenceTokens`)."""
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
    context: int  # tokens of document context it reads on each side of a sentence (0: none)

    @property
    def tag_names(self) -> list[str]: ...

    @property
    def has_crf(self) -> bool: ...

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 256, nbest: int = 0,
                confidences: bool = True, scheme: str | None = None, token_scores: bool = True,
                batch_tokens: int = ..., features: Sequence[Sequence[Sequence[str]]] | None = None
                ) -> list[Prediction]: ...
