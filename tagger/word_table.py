"""A trainable vocabulary of token lists with its initial embedding matrix (as ``tagger prepare`` builds one).

Used by the classifier and the language model, which train from raw examples rather than a
prepared directory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tagger.embeddings import Vectors, build_matrix, candidates, extra_words, load_vectors
from tagger.vocab import Vocab, WordLookup, normalize_digits


@dataclass
class WordTable:
    """A trainable vocabulary with its initial matrix, plus pretrained-only extra words."""

    words: Vocab
    matrix: np.ndarray
    extra: list[str]
    extra_matrix: np.ndarray
    lowercase: bool
    digits: bool
    info: dict

    def lookup(self) -> WordLookup:
        return WordLookup(self.words, self.extra, lowercase=self.lowercase, digits=self.digits)


def build_word_table(
    sentences: Sequence[Sequence[str]], embeddings: str = "none", *, vectors: Vectors | None = None,
    lowercase: bool = True, digits: bool = True, min_count: int = 1, extend_vocab: bool = True,
    dim: int = 100, seed: int = 1,
) -> WordTable:
    """Vocabulary of ``sentences`` and its embedding matrix, as ``tagger prepare`` builds them.

    ``vectors`` (already loaded) takes precedence over the ``embeddings`` spec, so that
    cross-validation loads the pretrained file once.
    """
    lookup_key = (lambda w: normalize_digits(w)) if digits else (lambda w: w)
    key = (lambda w: lookup_key(w).lower()) if lowercase else lookup_key
    counts: Counter = Counter()
    surface_counts: dict[str, Counter] = {}
    for toks in sentences:
        for t in toks:
            k = key(t)
            counts[k] += 1
            surface_counts.setdefault(k, Counter())[t] += 1
    words = Vocab.build(counts, min_count)
    surface = {k: c.most_common(1)[0][0] for k, c in surface_counts.items()}
    if vectors is None:
        vectors = load_vectors(embeddings, sentences, dim=dim, seed=seed)
    dim = vectors.dim if vectors is not None else dim
    matrix, found = build_matrix(words, surface, vectors, dim, seed)
    if vectors is not None and extend_vocab:
        extra, extra_matrix = extra_words(vectors, key, words)
    else:
        extra, extra_matrix = [], np.zeros((0, dim), np.float32)
    info: dict = {"source": embeddings if vectors is None else vectors.source, "dim": dim,
                  "words": len(words), "extra_words": len(extra)}
    if vectors is not None:
        index = vectors.index()
        has = sum(1 for w in counts if any(c in index for c in candidates(surface.get(w, w)) + candidates(w)))
        info.update(vocab_found=found, type_coverage=has / max(1, len(counts)))
    return WordTable(words, matrix, extra, extra_matrix, lowercase, digits, info)
