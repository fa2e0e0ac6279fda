"""The JSON bodies of the HTTP API (pydantic models: validation and the OpenAPI documentation)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scheme = Literal["model", "iob2", "bioes", "iob1"]


class AnnotateRequest(BaseModel):
    """Exactly one of ``text``, ``texts`` or ``tokens``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "Peter Blackburn lives in Brussels."},
        {"texts": ["EU rejects German call.", "Peter Blackburn"], "scheme": "bioes"},
        {"tokens": [["EU", "rejects", "German", "call", "."]], "nbest": 2},
    ]})

    text: str | None = Field(None, description="A raw text: split into sentences and tokens as `tagger annotate` "
                             "does; one result.")
    texts: list[str] | None = Field(None, description="Several raw texts: one result each.")
    tokens: list[list[str]] | None = Field(None, description="Pre-tokenised sentences: one result each.")
    features: list[dict[str, list[str]]] | None = Field(
        None, description="With `tokens`, for a model that reads feature columns (`GET /model`: "
        "`feature_columns`): for each sentence, each column's values, one per token "
        "(e.g. `{\"1\": [\"NNP\", \"VBZ\"]}`).")
    nbest: int = Field(0, ge=0, description="Also return the K best tag sequences of each sentence with their "
                       "probabilities.")
    scheme: Scheme = Field("iob2", description="Tag scheme of entity tags (model: the model's own).")

    @model_validator(mode="after")
    def _one_input(self) -> AnnotateRequest:
        given = [name for name in ("text", "texts", "tokens") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'text', 'texts' or 'tokens'"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.features is not None and (self.tokens is None or len(self.features) != len(self.tokens)):
            raise ValueError("'features' goes with 'tokens': one object per sentence")
        return self


class EntityOut(BaseModel):
    start: int = Field(description="First character (raw text) or token (tokens input) of the entity.")
    end: int = Field(description="One past its last character or token.")
    label: str
    text: str
    score: float = Field(description="CRF probability of the entity's exact tags.")
    token_start: int
    token_end: int


class NBestOut(BaseModel):
    tags: list[str]
    prob: float


class ResultOut(BaseModel):
    """One text or token list, as one `tagger annotate` JSONL output record."""

    text: str | None = Field(None, description="The input text (text input).")
    tokens: list[str]
    tags: list[str]
    entities: list[EntityOut]
    offsets: list[list[int]] | None = Field(None, description="[start, end) character offsets of each token "
                                            "(text input).")
    sentences: list[list[int]] | None = Field(None, description="[first, last+1) token indices of each sentence "
                                              "(text input).")
    nbest: list[NBestOut] | list[list[NBestOut]] | None = Field(
        None, description="K best tag sequences: one list per sentence for text input.")


class AnnotateResponse(BaseModel):
    results: list[ResultOut]


class ErrorOut(BaseModel):
    error: str
    detail: list | None = None
