"""Tests for data/make_sample.py and the bundled synthetic corpus in data/sample/."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from make_sample import (  # noqa: E402  (a script beside the data it writes, not part of the package)
    ENTITY_TYPES,
    SAMPLE_SIZES,
    SPLITS,
    detokenize,
    entities,
    generate,
    stats,
    write_conll,
    write_sample,
)

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
FILES = [f"{split}.conll" for split in SPLITS] + ["news.txt"]
DOCSTART = "-DOCSTART- -X- -X- O"


def read_documents(path: Path) -> list[list[list[tuple[str, ...]]]]:
    """Parse a CoNLL-2003 file independently of make_sample (checks the layout too)."""
    documents: list = []
    sentence: list = []
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "file must end with a newline"
    for number, line in enumerate(lines[:-1], 1):
        if line == DOCSTART:
            assert not sentence, f"{path.name}:{number}: -DOCSTART- inside a sentence"
            documents.append([])
            continue
        if line == "":
            if sentence:
                documents[-1].append(sentence)
                sentence = []
            continue
        fields = line.split(" ")
        assert len(fields) == 4 and all(fields), f"{path.name}:{number}: {line!r}"
        assert documents, f"{path.name}:{number}: token before the first -DOCSTART-"
        sentence.append(tuple(fields))
    assert not sentence, f"{path.name}: no blank line after the last sentence"
    return documents


@pytest.fixture(scope="module")
def corpus() -> dict[str, list]:
    return {split: read_documents(SAMPLE_DIR / f"{split}.conll") for split in SPLITS}


def test_generate_is_deterministic():
    assert generate(60, seed=5) == generate(60, seed=5)
    assert generate(60, seed=5, split="test") == generate(60, seed=5, split="test")
    assert generate(60, seed=5) != generate(60, seed=6)


def test_committed_files_are_regenerated_byte_for_byte(tmp_path):
    written = write_sample(tmp_path)
    assert sorted(p.name for p in written.values()) == sorted(FILES)
    for name in FILES:
        committed = SAMPLE_DIR / name
        assert committed.is_file(), f"{committed} missing: run python data/make_sample.py"
        assert (tmp_path / name).read_bytes() == committed.read_bytes(), (
            f"{name} differs from the generator's output: run python data/make_sample.py")


def test_write_conll_round_trip(tmp_path):
    documents = generate(40, seed=3)
    write_conll(tmp_path / "x.conll", documents)
    assert read_documents(tmp_path / "x.conll") == documents


def test_sample_is_small_and_sized_as_documented(corpus):
    assert sum((SAMPLE_DIR / name).stat().st_size for name in FILES) < 150_000
    for split, documents in corpus.items():
        assert sum(len(d) for d in documents) == SAMPLE_SIZES[split]
        assert all(3 <= len(d) <= 12 for d in documents)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 12, 13, 14, 15, 27, 100])
def test_documents_have_3_to_12_sentences(n):
    documents = generate(n, seed=n)
    assert sum(len(d) for d in documents) == n
    if n >= 3:
        assert all(3 <= len(d) <= 12 for d in documents)
    else:
        assert len(documents) == (1 if n else 0)


def _check_iob1(tags: list[str], types: set[str] | None, where: str) -> None:
    previous = "O"
    for tag in tags:
        if tag != "O":
            prefix, _, label = tag.partition("-")
            assert prefix in ("B", "I") and label, f"{where}: bad tag {tag!r}"
            if types is not None:
                assert label in types, f"{where}: unknown type in {tag!r}"
            if prefix == "B":
                assert previous != "O" and previous[2:] == label, (
                    f"{where}: {tag} does not follow a {label} span: {tags}")
        previous = tag


def test_tags_are_valid_iob1(corpus):
    for split, documents in corpus.items():
        for d, document in enumerate(documents):
            for s, sentence in enumerate(document):
                where = f"{split} document {d} sentence {s}"
                _check_iob1([t[3] for t in sentence], set(ENTITY_TYPES), where)
                _check_iob1([t[2] for t in sentence], None, where)
                for word, pos, chunk, _ in sentence:
                    if pos in {".", ",", ":", "(", ")", '"'}:
                        assert chunk == "O", f"{where}: punctuation {word!r} in a chunk"


def test_iob1_uses_b_for_adjacent_entities_of_one_type(corpus):
    tags = Counter(t[3] for documents in corpus.values() for d in documents for s in d
                   for t in s)
    assert tags["B-PER"] + tags["B-MISC"] > 0
    # IOB1: a B- tag only where an entity touches another one; most entities start with I-.
    assert sum(n for t, n in tags.items() if t.startswith("B-")) < 0.1 * sum(
        n for t, n in tags.items() if t.startswith("I-"))


def test_every_split_has_all_entity_types(corpus):
    for split, documents in corpus.items():
        counts = stats(documents)
        for etype in ENTITY_TYPES:
            assert counts[etype] >= 10, f"{split} has only {counts[etype]} {etype}"


def test_some_test_entities_are_unseen_in_train(corpus):
    def names(split):
        return {e for d in corpus[split] for s in d for e in entities(s)}

    train, test = names("train"), names("test")
    unseen = test - train
    assert len(unseen) >= 0.2 * len(test)
    assert len(test & train) >= 0.2 * len(test)  # but not all of them
    assert {etype for etype, _ in unseen} >= {"PER", "ORG", "LOC"}


def test_ambiguous_words_have_two_types_in_train(corpus):
    types: dict[str, set[str]] = {}
    for d in corpus["train"]:
        for s in d:
            for word, _, _, tag in s:
                if tag != "O":
                    types.setdefault(word, set()).add(tag[2:])
    assert types["Jordan"] == {"PER", "LOC"}
    assert sum(len(t) > 1 for t in types.values()) >= 4


def test_split_names_are_checked():
    with pytest.raises(ValueError):
        generate(5, seed=1, split="validation")


@pytest.mark.parametrize(("tokens", "text"), [
    (['"', "We", "won", ",", '"', "Fischer", "said", "."], '"We won," Fischer said.'),
    (["Norway", "'s", "surplus", "rose", "."], "Norway's surplus rose."),
    (["the", "Fund", "(", "IMF", ")", "paid", "$", "5", "million", "."],
     "the Fund (IMF) paid $5 million."),
    (["results", ":", "a", "-", "b"], "results: a - b"),
])
def test_detokenize(tokens, text):
    assert detokenize(tokens) == text


def test_news_text_is_raw_untokenised_prose():
    text = (SAMPLE_DIR / "news.txt").read_text(encoding="utf-8")
    paragraphs = text.strip().split("\n\n")
    assert len(paragraphs) >= 3
    for bad in (" ,", " .", " 's", "( ", " )", '" "'):
        assert bad not in text
    assert all(len(line) <= 78 for line in text.splitlines())
    assert all(p.rstrip().endswith(".") for p in paragraphs)
