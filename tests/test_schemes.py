"""Tests for tagger.schemes: detection, spans, conversion, repairs, CRF constraints."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from tagger.schemes import (
    SCHEMES,
    SchemeError,
    Span,
    allowed_transitions,
    convert,
    count_repairs,
    detect_scheme,
    from_spans,
    is_entity_tag,
    is_well_formed,
    to_spans,
)

TYPES = ["PER", "LOC", "creative-work", "ORG|LOC"]
PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIESLU"}


def labels_for(scheme: str, types=TYPES) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in types for p in PREFIXES[scheme]]


def S(*triples):
    return [Span(*t) for t in triples]


# ---------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "sequences, expected",
    [
        ([["I-ORG", "O", "I-MISC"]], "iob1"),
        ([["I-PER", "I-PER", "B-PER"]], "iob1"),
        ([["I-ORG", "O"], ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]], "iob1"),
        ([["B-PER", "I-PER", "B-PER"]], "iob2"),  # the first B- follows nothing
        ([["I-PER", "B-PER", "B-PER", "I-PER"]], "iob1"),  # every B- follows same type
        ([["B-PER", "I-PER", "O", "B-LOC"]], "iob2"),
        ([["I-LOC", "O"], ["B-PER", "O"]], "iob2"),
        ([["I-LOC", "B-PER"]], "iob2"),  # B- after a different type
        ([["B-PER", "E-PER", "O", "S-LOC"]], "bioes"),
        ([["O", "S-LOC"]], "bioes"),
        ([["B-PER", "L-PER", "U-LOC"]], "bioes"),  # BILOU
        ([["U-LOC"]], "bioes"),
        ([["NN", "VBZ", "DT", "NN"]], "plain"),
        ([["B-PER", "O"], ["NN"]], "plain"),
        ([["O", "O"], ["O"]], "plain"),
        ([], "plain"),
        ([["B-NP", "I-NP", "B-VP"]], "iob2"),
        ([["B-creative-work", "I-creative-work", "O", "B-ORG|LOC"]], "iob2"),
        ([["I-creative-work", "B-creative-work"]], "iob1"),
        ([["E-ORG|LOC"]], "bioes"),
        ([["B-"]], "plain"),  # no type: not an entity tag
        ([["X-PER"]], "plain"),
    ],
)
def test_detect_scheme(sequences, expected):
    assert detect_scheme(sequences) == expected


def test_detect_scheme_accepts_generators():
    assert detect_scheme(iter([("I-ORG",), ("O",)])) == "iob1"


def test_is_entity_tag():
    for good in ["O", "B-PER", "I-ORG|LOC", "E-x", "S-creative-work", "L-a", "U-b", "B--"]:
        assert is_entity_tag(good)
    for bad in ["NN", "B", "B-", "b-PER", "O-PER", "<pad>", "", "BPER"]:
        assert not is_entity_tag(bad)


# ---------------------------------------------------------------------------- to_spans, by hand


@pytest.mark.parametrize(
    "tags, scheme, spans",
    [
        ([], "iob2", []),
        (["O", "O"], "iob2", []),
        (["B-PER", "I-PER", "O", "B-LOC"], "iob2", S(("PER", 0, 2), ("LOC", 3, 4))),
        (["O", "I-PER"], "iob2", S(("PER", 1, 2))),  # I- after O starts an entity
        (["I-PER", "I-PER"], "iob2", S(("PER", 0, 2))),
        (["B-PER", "I-LOC"], "iob2", S(("PER", 0, 1), ("LOC", 1, 2))),  # type switch
        (["B-PER", "B-PER"], "iob2", S(("PER", 0, 1), ("PER", 1, 2))),
        (["I-PER", "B-PER", "I-PER"], "iob1", S(("PER", 0, 1), ("PER", 1, 3))),
        (["I-ORG", "O", "I-MISC"], "iob1", S(("ORG", 0, 1), ("MISC", 2, 3))),
        (["I-PER", "I-LOC"], "iob1", S(("PER", 0, 1), ("LOC", 1, 2))),
        (["B-PER", "E-PER", "S-LOC"], "bioes", S(("PER", 0, 2), ("LOC", 2, 3))),
        (["B-PER", "I-PER", "L-PER", "U-LOC"], "bioes", S(("PER", 0, 3), ("LOC", 3, 4))),
        (["I-PER", "E-LOC"], "bioes", S(("PER", 0, 1), ("LOC", 1, 2))),
        (["B-PER"], "bioes", S(("PER", 0, 1))),  # dangling B-
        (["B-PER", "O"], "bioes", S(("PER", 0, 1))),
        (["B-PER", "I-PER", "O"], "bioes", S(("PER", 0, 2))),  # missing E-
        (["O", "E-PER"], "bioes", S(("PER", 1, 2))),  # E- after O starts and ends
        (["E-PER", "E-PER"], "bioes", S(("PER", 0, 1), ("PER", 1, 2))),
        (["E-PER", "I-PER", "E-PER"], "bioes", S(("PER", 0, 1), ("PER", 1, 3))),
        (["S-PER", "I-PER"], "bioes", S(("PER", 0, 1), ("PER", 1, 2))),
        (["B-PER", "S-PER"], "bioes", S(("PER", 0, 1), ("PER", 1, 2))),
        (["B-PER", "B-PER", "E-PER"], "bioes", S(("PER", 0, 1), ("PER", 1, 3))),
        (["I-PER", "S-PER", "E-PER"], "bioes", S(("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 3))),
        (
            ["B-creative-work", "I-creative-work", "I-ORG|LOC"],
            "iob2",
            S(("creative-work", 0, 2), ("ORG|LOC", 2, 3)),
        ),
    ],
)
def test_to_spans_by_hand(tags, scheme, spans):
    assert to_spans(tags, scheme) == spans


@pytest.mark.parametrize(
    "tags, scheme",
    [
        (["B-PER"], "plain"),
        (["NN"], "iob2"),
        (["<pad>"], "bioes"),
        (["E-PER"], "iob2"),  # E- is not an iob tag
        (["S-PER"], "iob1"),
        (["B-PER"], "bilou"),  # unknown scheme
    ],
)
def test_to_spans_rejects(tags, scheme):
    with pytest.raises(ValueError):
        to_spans(tags, scheme)


def test_scheme_error_is_value_error():
    with pytest.raises(SchemeError):
        to_spans(["NN"], "iob2")
    assert issubclass(SchemeError, ValueError)


# ---------------------------------------------------------------------------- from_spans


def test_from_spans_by_hand():
    spans = S(("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5), ("ORG", 5, 6))
    assert from_spans(spans, 7, "iob2") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "O"]
    assert from_spans(spans, 7, "iob1") == ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "O"]
    assert from_spans(spans, 7, "bioes") == [
        "B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG", "O",
    ]
    assert from_spans([("X", 0, 3)], 3, "bioes") == ["B-X", "I-X", "E-X"]
    assert from_spans([], 2, "iob1") == ["O", "O"]


@pytest.mark.parametrize(
    "spans, length, scheme",
    [
        ([("PER", 0, 2), ("LOC", 1, 3)], 3, "iob2"),  # overlap
        ([("PER", 2, 3), ("LOC", 0, 1)], 3, "iob2"),  # not sorted
        ([("PER", 1, 1)], 3, "iob2"),  # empty
        ([("PER", 2, 4)], 3, "iob2"),  # out of range
        ([("", 0, 1)], 3, "iob2"),  # no label
        ([("PER", 0, 1)], 3, "plain"),
    ],
)
def test_from_spans_rejects(spans, length, scheme):
    with pytest.raises(ValueError):
        from_spans(spans, length, scheme)


# ---------------------------------------------------------------------------- convert, repairs


def test_convert_by_hand():
    assert convert(["I-ORG", "O", "I-PER", "I-PER", "B-PER"], "iob1", "iob2") == (
        ["B-ORG", "O", "B-PER", "I-PER", "B-PER"],
        0,
    )
    assert convert(["B-PER", "I-PER", "O", "B-LOC"], "iob2", "bioes") == (
        ["B-PER", "E-PER", "O", "S-LOC"],
        0,
    )
    assert convert(["B-PER", "L-PER", "U-LOC"], "bioes", "iob1") == (["I-PER", "I-PER", "I-LOC"], 0)
    bilou = ["B-PER", "L-PER", "U-LOC"]
    assert convert(bilou, "bioes", "bioes") == (["B-PER", "E-PER", "S-LOC"], 0)
    # repairs
    assert convert(["O", "I-PER"], "iob2", "iob2") == (["O", "B-PER"], 1)
    assert convert(["B-PER", "I-LOC"], "iob2", "iob2") == (["B-PER", "B-LOC"], 1)
    assert convert(["O", "B-PER"], "iob1", "iob1") == (["O", "I-PER"], 1)
    assert convert(["B-PER", "I-PER", "O"], "bioes", "iob2") == (["B-PER", "I-PER", "O"], 1)
    assert convert(["B-PER"], "bioes", "bioes") == (["S-PER"], 1)
    assert convert(["I-PER", "E-LOC"], "bioes", "bioes") == (["S-PER", "S-LOC"], 2)


def test_convert_plain():
    tags = ["NN", "VBZ", "<weird>"]
    out, repairs = convert(tags, "plain", "plain")
    assert out == tags and out is not tags and repairs == 0
    with pytest.raises(ValueError):
        convert(["B-PER"], "plain", "iob2")
    with pytest.raises(ValueError):
        convert(["B-PER"], "iob2", "plain")
    with pytest.raises(ValueError):
        convert(["B-PER"], "iob2", "bilou")


def test_count_repairs_and_well_formed():
    assert count_repairs(["O", "I-PER", "I-PER"], "iob2") == 1
    assert count_repairs(["O", "I-PER", "I-PER"], "iob1") == 0
    assert count_repairs(["B-PER", "I-PER", "I-PER"], "iob1") == 1
    assert count_repairs(["I-PER", "B-PER"], "iob1") == 0
    assert count_repairs(["I-PER", "B-LOC"], "iob1") == 1
    assert count_repairs(["B-PER", "I-PER"], "bioes") == 1
    assert count_repairs(["B-PER", "L-PER", "U-LOC", "O"], "bioes") == 0
    assert count_repairs(["NN", "VB"], "plain") == 0
    assert is_well_formed(["NN"], "plain")
    assert is_well_formed([], "iob2")
    assert is_well_formed(["B-PER", "I-PER", "B-PER"], "iob2")
    assert not is_well_formed(["I-PER"], "iob2")
    assert is_well_formed(["I-PER"], "iob1")
    assert not is_well_formed(["B-PER"], "iob1")


# ---------------------------------------------------------------------------- properties


@st.composite
def span_sets(draw, types=TYPES, max_len=12):
    """Random sorted, non-overlapping spans (adjacent same-type spans included)."""
    length = draw(st.integers(0, max_len))
    spans, pos = [], 0
    while pos < length:
        gap = draw(st.integers(0, 2))
        start = pos + gap
        if start >= length:
            break
        end = draw(st.integers(start + 1, min(length, start + 4)))
        spans.append(Span(draw(st.sampled_from(types)), start, end))
        pos = end
    return spans, length


def tag_sequences(scheme: str, max_len: int = 10):
    return st.lists(st.sampled_from(labels_for(scheme)), max_size=max_len)


@settings(max_examples=150, deadline=None)
@given(span_sets(), st.sampled_from(SCHEMES))
def test_spans_round_trip(spans_len, scheme):
    spans, length = spans_len
    tags = from_spans(spans, length, scheme)
    assert len(tags) == length
    assert to_spans(tags, scheme) == spans
    assert is_well_formed(tags, scheme)
    assert count_repairs(tags, scheme) == 0


@settings(max_examples=150, deadline=None)
@given(span_sets(), st.sampled_from(SCHEMES), st.sampled_from(SCHEMES))
def test_exact_round_trip_between_schemes(spans_len, a, b):
    spans, length = spans_len
    x = from_spans(spans, length, a)
    y, r1 = convert(x, a, b)
    z, r2 = convert(y, b, a)
    assert (r1, r2) == (0, 0)
    assert z == x
    assert y == from_spans(spans, length, b)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from(SCHEMES), st.sampled_from(SCHEMES))
def test_convert_repairs_arbitrary_sequences(data, a, b):
    tags = data.draw(tag_sequences(a))
    out, repairs = convert(tags, a, b)
    assert len(out) == len(tags)
    assert is_well_formed(out, b)
    assert convert(out, b, b) == (out, 0)  # idempotent
    assert to_spans(out, b) == to_spans(tags, a)  # spans are preserved
    assert repairs == count_repairs(tags, a)
    assert (repairs == 0) == is_well_formed(tags, a)
    assert repairs <= len(tags)


BIOES_NO_BILOU = ["O"] + [f"{p}-{t}" for t in TYPES[1:] for p in "BIES"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(BIOES_NO_BILOU), max_size=12))
def test_to_spans_matches_seqeval(tags):
    """conlleval reading of random (mostly ill-formed) B/I/E/S/O sequences."""
    expected = [Span(t, s, e + 1) for t, s, e in get_entities(list(tags))]
    scheme = "bioes" if any(t[0] in "ES" for t in tags) else "iob2"
    assert to_spans(tags, scheme) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(labels_for("iob2")), max_size=12))
def test_to_spans_matches_seqeval_iob2(tags):
    expected = [Span(t, s, e + 1) for t, s, e in get_entities(list(tags))]
    assert to_spans(tags, "iob2") == expected
    assert to_spans(tags, "iob1") == expected  # reading does not depend on the scheme


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from(labels_for("iob2")), max_size=8), max_size=5))
def test_detect_scheme_on_generated_corpora(corpus):
    """from_spans output in each scheme is detected as compatible with that scheme."""
    spans = [to_spans(s, "iob2") for s in corpus]
    for scheme in SCHEMES:
        converted = [from_spans(sp, len(s), scheme) for sp, s in zip(spans, corpus)]
        detected = detect_scheme(converted)
        if not any(sp for sp in spans):
            assert detected == "plain"
        elif scheme == "bioes":
            assert detected == "bioes"
        elif scheme == "iob1":
            assert detected == "iob1"
        else:
            # iob2 data whose every B- follows a same-type entity can't be told apart
            assert detected in ("iob2", "iob1")
            if detected == "iob1":
                assert all(is_well_formed(c, "iob1") for c in converted)


# ---------------------------------------------------------------------------- transitions


def _path_allowed(path, start, trans, end):
    if not path:
        return True
    if not start[path[0]] or not end[path[-1]]:
        return False
    return all(trans[i][j] for i, j in zip(path, path[1:]))


@pytest.mark.parametrize(
    "scheme, labels",
    [
        ("iob2", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "<pad>"]),
        ("iob1", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "<pad>"]),
        ("bioes", ["<pad>", "O"] + [f"{p}-{t}" for t in ("PER", "LOC") for p in "BIES"]),
        ("bioes", ["O", "B-PER", "I-PER", "L-PER", "U-PER", "E-PER", "<start>"]),
    ],
)
def test_allowed_paths_are_exactly_well_formed(scheme, labels):
    start, trans, end = allowed_transitions(labels, scheme)
    n = len(labels)
    assert len(start) == len(end) == len(trans) == n and all(len(r) == n for r in trans)
    n_allowed = 0
    for length in range(1, 5):
        for path in itertools.product(range(n), repeat=length):
            tags = [labels[i] for i in path]
            allowed = _path_allowed(path, start, trans, end)
            if any(t.startswith("<") for t in tags):
                assert not allowed
                continue
            assert allowed == is_well_formed(tags, scheme), tags
            n_allowed += allowed
    assert n_allowed > 0


def test_allowed_transitions_by_hand():
    labels = ["O", "B-PER", "I-PER", "I-LOC", "<pad>"]
    start, trans, end = allowed_transitions(labels, "iob2")
    assert start == [True, True, False, False, False]
    assert end == [True, True, True, True, False]
    assert trans[0][2] is False and trans[1][2] is True and trans[1][3] is False
    assert trans[2][2] is True and trans[3][2] is False and all(not r[4] for r in trans)

    start, trans, end = allowed_transitions(labels, "iob1")
    assert start == [True, False, True, True, False]
    assert trans[2][1] is True and trans[3][1] is False and trans[0][1] is False
    assert trans[0][3] is True and trans[2][3] is True

    bl = ["O", "B-X", "I-X", "E-X", "S-X", "B-Y"]
    start, trans, end = allowed_transitions(bl, "bioes")
    assert start == [True, True, False, False, True, True]
    assert end == [True, False, False, True, True, False]
    assert [lab for lab, ok in zip(bl, trans[1]) if ok] == ["I-X", "E-X"]
    assert [lab for lab, ok in zip(bl, trans[3]) if ok] == ["O", "B-X", "S-X", "B-Y"]


def test_allowed_transitions_invalid_labels_in_scheme():
    labels = ["O", "B-PER", "E-PER", "NN"]
    start, trans, end = allowed_transitions(labels, "iob2")
    assert start[2] is False and start[3] is False and end[2] is False
    assert not any(trans[i][2] or trans[2][i] for i in range(4))


def test_allowed_transitions_plain():
    labels = ["NN", "VB", "<pad>", "O"]
    start, trans, end = allowed_transitions(labels, "plain")
    assert start == end == [True, True, False, True]
    assert trans[0][1] and trans[3][3] and not trans[0][2] and not trans[2][0]
    with pytest.raises(ValueError):
        allowed_transitions(labels, "bilou")
