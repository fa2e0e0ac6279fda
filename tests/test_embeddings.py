"""Every supported embedding file format, on tiny files written here."""

from __future__ import annotations

import numpy as np
import pytest

from tagger.embeddings import build_matrix, load_glove_6b_50d, load_vector_file, load_vectors
from tagger.errors import InputError, TaggerError
from tagger.vocab import Vocab

WORDS = ["the", "germany", "1996", "bonn"]
VECS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def _kv():
    from gensim.models import KeyedVectors

    kv = KeyedVectors(3)
    kv.add_vectors(WORDS, VECS)
    return kv


def check(v):
    assert v.words == WORDS
    np.testing.assert_allclose(v.matrix, VECS, atol=1e-6)


def test_glove_text(tmp_path):
    p = tmp_path / "glove.txt"
    p.write_text("".join(f"{w} {' '.join(map(str, r))}\n" for w, r in zip(WORDS, VECS)))
    check(load_vector_file(p))


def test_word2vec_text_and_binary(tmp_path):
    kv = _kv()
    kv.save_word2vec_format(str(tmp_path / "w.vec"), binary=False)
    kv.save_word2vec_format(str(tmp_path / "w.bin"), binary=True)
    check(load_vector_file(tmp_path / "w.vec"))
    check(load_vector_file(tmp_path / "w.bin"))


def test_fasttext_bin_gives_subword_vectors(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    sents = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]] * 20
    model = FastText(vector_size=8, min_count=1, epochs=2, seed=1, workers=1)
    model.build_vocab(sents)
    model.train(sents, total_examples=len(sents), epochs=2)
    save_facebook_model(model, str(tmp_path / "ft.bin"))
    v = load_vector_file(tmp_path / "ft.bin")
    assert "cat" in v.words and v.dim == 8 and v.fasttext is not None
    words = Vocab(["cats", "cat"])
    m, found = build_matrix(words, {}, v, 8)
    assert found == 2  # "cats" is out of vocabulary but gets a subword vector


def test_build_matrix_lookup_order(tmp_path):
    p = tmp_path / "glove.txt"
    p.write_text("".join(f"{w} {' '.join(map(str, r))}\n" for w, r in zip(WORDS, VECS)))
    v = load_vector_file(p)
    words = Vocab(["Germany", "0000", "unknownword"])
    m, found = build_matrix(words, {"0000": "1996"}, v, 3)
    assert found == 2
    np.testing.assert_allclose(m[2], VECS[1])  # lowercase match
    np.testing.assert_allclose(m[3], VECS[2])  # surface form of the digit-normalised key
    assert np.all(m[0] == 0)


def test_bad_files(tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_vector_file(empty)
    bad = tmp_path / "b.txt"
    bad.write_text("the 0.1 0.2\ncat 0.3\n")
    with pytest.raises(InputError):
        load_vector_file(bad)
    with pytest.raises(TaggerError, match="no such file"):
        load_vectors(str(tmp_path / "missing.vec"))


def test_glove_wheel():
    v = load_glove_6b_50d()
    assert len(v.words) == 400_000 and v.dim == 50 and v.words[0] == "the"
