"""Reliability: bad input for every reader and every command.

Property tests (hypothesis) feed each reader well-formed files and mutated ones (truncated,
mixed tab/space columns, varying column counts, ``\\r\\n`` / lone ``\\r``, BOMs, NUL bytes,
invalid UTF-8, unusual labels, ...). The outcome must be a correct parse or one
:class:`InputError` naming the file and line, never another exception, a hang or silently
skipped data. Each reader is checked against an independent statement of its documented rules
(``*_oracle`` below): on success the tokens read must be exactly those of the token lines.

The number of examples per property is fixed (``EXAMPLES``); with ``TAGGER_RELIABILITY_CASES=path``
the counts actually run are written to that JSON file (reports/reliability_cases.json).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_util import (
    assert_clean_exit_2,
    classifier_model,
    generator_model,
    invoke,
    prepared_dir,
    tagger_model,
    write_case_counts,
)

from tagger.commands.annotate.items import read_items
from tagger.errors import InputError, TaggerError
from tagger.formats.conll import iter_conll
from tagger.formats.conllu import iter_conllu
from tagger.formats.read import read_corpus

EXAMPLES = int(os.environ.get("TAGGER_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
HANG_SECONDS = 20  # per example: far above the few milliseconds a small file takes

CASES: dict[str, dict[str, int]] = {}


def _count(reader: str, outcome: str) -> None:
    CASES.setdefault(reader, {}).setdefault(outcome, 0)
    CASES[reader][outcome] += 1


@contextlib.contextmanager
def no_hang(seconds: float = HANG_SECONDS):
    def alarm(*_):
        raise TimeoutError(f"reader still running after {seconds}s (hang?)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def fuzzdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _file(fuzzdir: Path, name: str, data: bytes) -> Path:
    p = fuzzdir / name
    p.write_bytes(data)
    return p


# --------------------------------------------------------------------------- generators

TOKEN_CHARS = list("abcXYZ0189.,;:-'\"#|/_()[]$%&é中文ß") + ["\u00a0", "\u3000", "\u200b", "\ufeff", "😀", "\u0301",
                                                               "\x85", "\u2028", "\x1c"]
LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-LOC", "B-creative-work", "I-creative-work", "I-ORG|LOC", "B-ORG",
          "I-MISC", "X", "_", "B-", "-", "NNP", "B-ORG/LOC", "I-π", "B-東京"]
SEPARATORS = [" ", "\t", "  ", " \t ", "\t\t"]
EOLS = ["\n", "\r\n", "\r"]
NOISE = [b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"\r", b"\n", b"\r\n", b"\t", b" ", b"\xef\xbb\xbf", b"#",
         b"-DOCSTART- -X- O\n", b"\x0c", b"\x0b", b"\x1c", b"\xc2\xa0", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
         b"1-2\t", b"{", b'"', b"\\", b"\t_\t", b"x" * 3000, b"-", b".", b"a", "\u00e9".encode()]

token_text = st.text(st.sampled_from(TOKEN_CHARS), min_size=1, max_size=6).filter(
    lambda t: not re.fullmatch(r"[ \t\x0b\x0c\r\n]*", t) and not t.startswith("-DOCSTART-"))


def _visible(t: str) -> str:
    """A token without the ASCII whitespace that separates columns (and without leading '#')."""
    t = re.sub(r"[ \t\x0b\x0c\r\n]", "", t)
    return t.lstrip("#") or "x"


@st.composite
def conll_docs(draw):
    """(bytes, sentences) of a well-formed CoNLL file; sentences are (tokens, labels, doc)."""
    ncols = draw(st.integers(2, 4))
    eol = draw(st.sampled_from(EOLS))
    lines: list[str] = []
    sents = []
    doc, doc_has = 0, False
    if draw(st.booleans()):
        lines += ["-DOCSTART-" + draw(st.sampled_from(SEPARATORS)) + "-X- O", ""]
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 4)) == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
            if doc_has:
                doc, doc_has = doc + 1, False
        toks, labs = [], []
        for _ in range(draw(st.integers(1, 6))):
            tok = _visible(draw(token_text))
            lab = draw(st.sampled_from(LABELS))
            middle = [draw(st.sampled_from(["NN", "_", "I-NP", "x|y"])) for _ in range(ncols - 2)]
            cols = [tok, *middle, lab]
            seps = [draw(st.sampled_from(SEPARATORS)) for _ in cols[1:]]
            line = cols[0] + "".join(s + c for s, c in zip(seps, cols[1:]))
            if draw(st.integers(0, 5)) == 0:
                line = draw(st.sampled_from([" ", "\t"])) + line
            if draw(st.integers(0, 5)) == 0:
                line += draw(st.sampled_from([" ", "\t", " \t"]))
            lines.append(line)
            toks.append(tok)
            labs.append(lab)
        sents.append((toks, labs, doc))
        doc_has = True
        lines += [draw(st.sampled_from(["", "", " ", "\t"]))] * draw(st.integers(1, 2))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    data = text.encode("utf-8")
    if draw(st.integers(0, 3)) == 0:
        data = b"\xef\xbb\xbf" + data
    return data, sents


@st.composite
def conllu_docs(draw):
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    sents = []
    doc, doc_has = 0, False
    for k in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 3)) == 0:
            lines.append(f"# newdoc id = d{k}")
            if doc_has:
                doc, doc_has = doc + 1, False
        lines += [f"# sent_id = {k}", "# text = whatever # it says"]
        toks, labs = [], []
        n = draw(st.integers(1, 6))
        for i in range(1, n + 1):
            if i < n and draw(st.integers(0, 5)) == 0:
                lines.append(f"{i}-{i + 1}\tmwt\t_\t_\t_\t_\t_\t_\t_\t_")
            form = draw(token_text).replace("\t", " ").replace("\r", "").replace("\n", "")
            form = form or "x"
            upos = draw(st.sampled_from(["NOUN", "VERB", "PUNCT", "X", "PROPN", "B-creative-work", "I-ORG|LOC"]))
            lines.append(f"{i}\t{form}\t{form.lower()}\t{upos}\t_\t_\t0\troot\t_\tSpaceAfter=No")
            if draw(st.integers(0, 6)) == 0:
                lines.append(f"{i}.1\tempty\t_\t_\t_\t_\t_\t_\t{i}:dep\t_")
            toks.append(form)
            labs.append(upos)
        sents.append((toks, labs, doc))
        doc_has = True
        lines.append("")
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    data = text.encode("utf-8")
    if draw(st.integers(0, 3)) == 0:
        data = b"\xef\xbb\xbf" + data
    return data, sents


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """Apply up to three random corruptions to ``data``."""
    for op in draw(st.lists(st.sampled_from(["truncate", "insert", "delete", "dup", "column", "crlf"]),
                            min_size=1, max_size=3)):
        n = len(data)
        pos = draw(st.integers(0, n))
        if op == "truncate":
            data = data[:pos]
        elif op == "insert":
            data = data[:pos] + draw(st.sampled_from(NOISE)) + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + draw(st.integers(1, 12)):]
        elif op == "dup":
            lines = data.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines.insert(i, lines[i])
            data = b"".join(lines)
        elif op == "column":
            lines = data.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                body = lines[i].rstrip(b"\r\n")
                lines[i] = body + draw(st.sampled_from([b" EXTRA", b"\tEXTRA", b""])) + lines[i][len(body):]
                if draw(st.booleans()):
                    lines[i] = b" ".join(lines[i].split(None, 1)[:1]) + lines[i][len(body):]
            data = b"".join(lines)
        else:
            data = data.replace(b"\n", draw(st.sampled_from([b"\r", b"\r\n", b"\n\r"])), draw(st.integers(1, 3)))
    return data


def inputs(docs):
    """Well-formed documents (with their expected parse) or mutated ones (expectation: None)."""
    return st.one_of(
        docs.map(lambda d: (d[0], d[1])),
        docs.flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None))),
        st.binary(max_size=300).map(lambda b: (b, None)),
    )


# --------------------------------------------------------------------------- oracles


def split_lines(data: bytes) -> list[bytes]:
    """Lines as the documentation defines them: ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line."""
    parts = re.split(rb"\r\n|\r|\n", data)
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


COLUMN = re.compile(r"[^ \t\x0b\x0c]+")  # columns are separated by (ASCII) spaces and tabs


def _decoded(lines: list[bytes]):
    """(line number, text or None if the line cannot be read: bad UTF-8 or NUL)."""
    for i, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield i, None
            continue
        if i == 1:
            text = text.lstrip("\ufeff")
        yield i, (None if "\x00" in text else text)


def conll_oracle(data: bytes):
    """(sentences, line of the first error or None) for tagger.formats.conll.iter_conll (label = last column)."""
    sents, toks, labs = [], [], []
    ncols = None
    doc, doc_has = 0, False

    def flush():
        nonlocal doc_has
        if toks:
            sents.append((list(toks), list(labs), doc))
            toks.clear(), labs.clear()
            doc_has = True

    for i, text in _decoded(split_lines(data)):
        if text is None:
            return sents, i
        cols = COLUMN.findall(text)
        if not cols:
            flush()
            continue
        if cols[0] == "-DOCSTART-":
            flush()
            if doc_has:
                doc, doc_has = doc + 1, False
            continue
        if ncols is None:
            ncols = len(cols)
            if ncols < 2:
                return sents, i
        elif len(cols) != ncols:
            return sents, i
        toks.append(cols[0])
        labs.append(cols[-1])
    flush()
    return sents, None


CONLLU_ID = re.compile(r"[0-9]+")
CONLLU_SKIP = re.compile(r"[0-9]+-[0-9]+|[0-9]+\.[0-9]+")  # multiword ranges and empty nodes


def conllu_oracle(data: bytes):
    sents, toks, labs = [], [], []
    doc, doc_has = 0, False

    def flush():
        nonlocal doc_has
        if toks:
            sents.append((list(toks), list(labs), doc))
            toks.clear(), labs.clear()
            doc_has = True

    for i, text in _decoded(split_lines(data)):
        if text is None:
            return sents, i
        if not text.strip(" \t\x0b\x0c"):  # blank: ASCII whitespace only, as the columns of CoNLL
            flush()
            continue
        if text.startswith("#"):
            if text.startswith("# newdoc") and doc_has and not toks:
                doc, doc_has = doc + 1, False
            continue
        cols = text.split("\t")
        if len(cols) != 10:
            return sents, i
        if CONLLU_SKIP.fullmatch(cols[0]):
            continue
        if not CONLLU_ID.fullmatch(cols[0]) or cols[3] in ("", "_"):
            return sents, i
        toks.append(cols[1])
        labs.append(cols[3])
    flush()
    return sents, None


def check_outcome(reader: str, path: Path, run, oracle, expected_parse):
    """Run ``run()``; compare with the oracle's (sentences, error line)."""
    want, err_line = oracle
    try:
        with no_hang():
            got = run()
    except InputError as exc:
        _count(reader, "InputError")
        assert exc.path == str(path), exc
        assert err_line is not None, f"{reader}: unexpected error {exc}"
        assert exc.line == err_line, f"{reader}: error at line {exc.line}, expected line {err_line}: {exc}"
        assert str(exc).startswith(f"{path}:{err_line}: ")
        return None
    _count(reader, "parsed")
    assert err_line is None, f"{reader}: no error, but line {err_line} is bad"
    assert got == want, f"{reader}: parsed {got}, expected {want}"
    if expected_parse is not None:
        assert got == expected_parse
    return got


def test_conllu_garbage_token_ids(tmp_path):
    """Only N, N-M (multiword) and N.M (empty node) are IDs: anything else is an error, not skipped."""
    row = "\tw\tw\tX\t_\t_\t0\troot\t_\t_\n"
    for ident in ["1-x", "-", "a.b", "1.", ".1", "1-2-3", "x", "1a", "", "²"]:
        data = ("1" + row + ident + row + "2" + row).encode()
        path = _file(tmp_path, "g.conllu", data)
        check_outcome("corpus conllu", path,
                      lambda path=path: [(s.tokens, s.labels, s.doc) for s in iter_conllu(path)],
                      conllu_oracle(data), None)
        # annotate's reader agrees: the bad ID on line 2 is an error, never copied through untagged
        with pytest.raises(InputError) as info:
            list(read_items("conllu", io.BytesIO(data), "g.conllu"))
        assert info.value.line == 2 and "bad token ID" in str(info.value)


# --------------------------------------------------------------------------- corpus readers


@FUZZ
@given(case=inputs(conll_docs()))
def test_fuzz_conll_reader(fuzzdir, case):
    data, expected = case
    path = _file(fuzzdir, "f.conll", data)
    oracle = conll_oracle(data)
    got = check_outcome("corpus conll", path, lambda: [(s.tokens, s.labels, s.doc) for s in iter_conll(path)],
                        oracle, expected)
    if got is not None:  # the whole-file reader agrees, or says the file has no sentences
        try:
            c = read_corpus(path, format="conll")
            assert c.num_tokens == sum(len(t) for t, _, _ in got) and got
        except InputError as exc:
            assert not got and exc.line is None and ("empty" in str(exc) or "no sentences" in str(exc))
    # auto-detection never crashes either
    try:
        read_corpus(path)
    except TaggerError:
        pass


@FUZZ
@given(case=inputs(conllu_docs()))
def test_fuzz_conllu_reader(fuzzdir, case):
    data, expected = case
    path = _file(fuzzdir, "f.conllu", data)
    check_outcome("corpus conllu", path, lambda: [(s.tokens, s.labels, s.doc) for s in iter_conllu(path)],
                  conllu_oracle(data), expected)


@FUZZ
@given(case=inputs(conll_docs()))
def test_fuzz_conll_token_only_reader(fuzzdir, case):
    """Reading tokens only (generate/annotate of CoNLL text): no label column needed."""
    data, _ = case
    path = _file(fuzzdir, "t.conll", data)
    want, err = conll_oracle(data)
    try:
        with no_hang():
            got = [s.tokens for s in iter_conll(path, label_column=None)]
    except InputError as exc:
        _count("corpus conll tokens", "InputError")
        assert exc.path == str(path) and exc.line is not None
        return
    _count("corpus conll tokens", "parsed")
    if err is None:
        assert got == [t for t, _, _ in want]


# --------------------------------------------------------------------------- annotate readers


def _body(i: int, raw: bytes) -> bytes:
    """A line without the byte-order marks that may start the file."""
    while i == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw


def annotate_conll_oracle(data: bytes):
    """Token lists per the documented rules of tagger.formats.conll.read_conll, lenient as annotate reads
    (it never fails)."""
    sents, toks = [], []
    ncols = None
    for i, raw in enumerate(split_lines(data), 1):
        cols = _body(i, raw).split()
        if not cols or cols[0] == b"-DOCSTART-":
            if toks:
                sents.append(toks)
                toks = []
            continue
        if cols[0].startswith(b"#") and (ncols is None or len(cols) != ncols):
            continue  # a comment line: copied, not tagged
        ncols = ncols or len(cols)
        toks.append(cols[0].decode("utf-8", "replace"))
    if toks:
        sents.append(toks)
    return sents


@FUZZ
@given(case=inputs(conll_docs()))
def test_fuzz_annotate_conll_reader(case):
    data, _ = case
    with no_hang():
        items = list(read_items("conll", io.BytesIO(data), "f.conll"))
    _count("annotate conll", "parsed")
    got = [s for it in items for s in it.sents]
    assert got == annotate_conll_oracle(data)
    # every byte of the input is kept for the output
    assert b"".join(raw + eol for it in items for raw, eol, _ in it.data.rows) == data


def annotate_conllu_oracle(data: bytes):
    sents, toks = [], []
    for i, raw in enumerate(split_lines(data), 1):
        raw = _body(i, raw)
        if not raw.strip():
            if toks:
                sents.append(toks)
                toks = []
            continue
        if raw.startswith(b"#"):
            continue
        cols = raw.split(b"\t")
        if len(cols) != 10:
            return sents, i
        ident = cols[0]
        if CONLLU_SKIP.fullmatch(ident.decode("latin-1")):
            continue
        if not ident.isdigit():
            return sents, i
        toks.append(cols[1].decode("utf-8", "replace"))
    if toks:
        sents.append(toks)
    return sents, None


@FUZZ
@given(case=inputs(conllu_docs()))
def test_fuzz_annotate_conllu_reader(case):
    data, _ = case
    want, err = annotate_conllu_oracle(data)
    try:
        with no_hang():
            items = list(read_items("conllu", io.BytesIO(data), "f.conllu"))
    except InputError as exc:
        _count("annotate conllu", "InputError")
        assert exc.path == "f.conllu" and exc.line == err, (exc, err)
        return
    _count("annotate conllu", "parsed")
    assert err is None
    assert [s for it in items for s in it.sents] == want


@st.composite
def token_lines(draw):
    lines = draw(st.lists(st.lists(token_text, max_size=6), max_size=8))
    eol = draw(st.sampled_from(EOLS))
    return (eol.join(draw(st.sampled_from(SEPARATORS)).join(toks) for toks in lines) + eol).encode("utf-8"), None


@FUZZ
@given(case=st.one_of(token_lines(), token_lines().flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None)))))
def test_fuzz_annotate_tokens_reader(case):
    """One record per line, always: undecodable lines become error records, never dropped."""
    data, _ = case
    with no_hang():
        items = list(read_items("tokens", io.BytesIO(data), "f.tok"))
    _count("annotate tokens", "parsed")
    lines = split_lines(data)
    assert len(items) == len(lines)
    for i, (item, raw) in enumerate(zip(items, lines), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            assert item.error and item.sents == []
            continue
        toks = (text.lstrip("\ufeff") if i == 1 else text).split()
        assert item.sents == ([toks] if toks else [])


@st.composite
def jsonl_records(draw):
    recs = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            recs.append(json.dumps(
                {"id": draw(st.integers()),
                 "text": draw(st.text(st.sampled_from(TOKEN_CHARS + [" ", ".", "\n"]), max_size=40))},
                ensure_ascii=draw(st.booleans())))
        elif kind == 1:
            recs.append(json.dumps({"tokens": [_visible(draw(token_text)) for _ in range(draw(st.integers(0, 5)))]}))
        elif kind == 2:
            recs.append(draw(st.sampled_from(["", "  ", "[1, 2]", "null", "{\"text\": 5}", "{\"tokens\": \"a b\"}",
                                              "{\"tokens\": [\"\"]}", "{\"text\": \"NaN\", \"x\": NaN}", "{bad json",
                                              "{\"text\": \"x\"} trailing", "\"just a string\""])))
        else:
            recs.append(json.dumps({"text": "Peter lives in Berlin.", "label": draw(st.sampled_from(LABELS))}))
    eol = draw(st.sampled_from(EOLS))
    return (eol.join(recs) + eol).encode("utf-8"), None


@FUZZ
@given(case=st.one_of(jsonl_records(), jsonl_records().flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None)))))
def test_fuzz_annotate_jsonl_reader(case):
    """One item per non-blank line: a record, or an error record naming the line."""
    data, _ = case
    with no_hang():
        items = list(read_items("jsonl", io.BytesIO(data), "f.jsonl"))
    _count("annotate jsonl", "parsed")
    nonblank = []
    for i, raw in enumerate(split_lines(data), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            nonblank.append(i)
            continue
        if (text.lstrip("\ufeff") if i == 1 else text).strip():
            nonblank.append(i)
    assert [it.line for it in items] == nonblank
    for it in items:
        if it.error is None and it.data.text is not None:
            assert _nonspace("".join(t for s in it.sents for t in s)) == _nonspace(it.data.text)


@st.composite
def raw_texts(draw):
    pieces = TOKEN_CHARS + [" ", " ", ".", "!", "?", "\n", "\r\n", "\r", "\t", "Mr.", "U.S.", "Peter", "don't", "\n\n"]
    text = "".join(draw(st.lists(st.sampled_from(pieces), max_size=80)))
    return text.encode("utf-8"), None


@FUZZ
@given(case=st.one_of(raw_texts(), raw_texts().flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None)))))
def test_fuzz_annotate_text_reader(case):
    """Raw text: every non-space character ends up in exactly one token, or one error with its line."""
    data, _ = case
    try:
        with no_hang():
            items = list(read_items("text", io.BytesIO(data), "f.txt"))
    except InputError as exc:
        _count("annotate text", "InputError")
        bad = next(i for i, raw in enumerate(split_lines(data) or [data], 1) if not _utf8(raw))
        assert exc.path == "f.txt" and exc.line == bad, (exc, bad)
        return
    _count("annotate text", "parsed")
    text = data.decode("utf-8")
    toks = [t for it in items for s in it.sents for t in s]
    assert _nonspace("".join(toks)) == _nonspace(text)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("bad_line", [1, 2, 3_000, 7_777, 20_000])
def test_annotate_text_decoding_error_names_the_exact_line(eol, bad_line):
    """Far past the first read block (20,000 lines of ~30 bytes = 600 KB), in every line-ending style."""
    lines = [b"Line %d has some words ." % i for i in range(1, 20_001)]
    lines[bad_line - 1] = lines[bad_line - 1].replace(b"some", b"s\xffome")
    data = eol.join(lines) + eol
    with pytest.raises(InputError) as info:
        list(read_items("text", io.BytesIO(data), "big.txt"))
    assert info.value.path == "big.txt" and info.value.line == bad_line
    assert "\\xff" in str(info.value) and "--encoding" in str(info.value)
    _count("annotate text", "InputError")


def test_annotate_text_truncated_character_at_the_end():
    data = b"Peter went home .\nShe said \xc3"  # the file ends in the middle of a UTF-8 sequence
    with pytest.raises(InputError) as info:
        list(read_items("text", io.BytesIO(data), "t.txt"))
    assert info.value.line == 2
    _count("annotate text", "InputError")


def _nonspace(text: str) -> str:
    """The text without whitespace (and the characters the tokenizer treats as blanks)."""
    return re.sub(r"[\s\ufeff\u200b\x00]", "", text)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# --------------------------------------------------------------------------- classifier readers


def _classifier():
    return pytest.importorskip("tagger.formats.examples", reason="tagger classify is not written yet")


@st.composite
def tsv_files(draw):
    rows = []
    if draw(st.booleans()):
        rows.append(draw(st.sampled_from(["text\tlabel", "TEXT\tLABEL", " text\tlabel "])))
    for _ in range(draw(st.integers(0, 6))):
        text = draw(st.text(st.sampled_from(TOKEN_CHARS + [" ", "\t"]), min_size=1, max_size=20))
        rows.append(text + "\t" + draw(st.sampled_from(LABELS + ["", " ", "pos", "neg"])))
        if draw(st.integers(0, 4)) == 0:
            rows.append(draw(st.sampled_from(["", " ", "no tab here"])))
    eol = draw(st.sampled_from(EOLS))
    return (eol.join(rows) + eol).encode("utf-8"), None


def tsv_oracle(data: bytes, need_label: bool):
    """(number of examples, line of the first error or None)."""
    n, first = 0, True
    for i, text in _decoded(split_lines(data)):
        if text is None:
            return n, i
        if not text.strip():
            n += 0 if need_label else 1
            continue
        if first and text.strip().lower().split("\t") == ["text", "label"]:
            first = False
            continue
        first = False
        if "\t" not in text:
            if need_label:
                return n, i
            n += 1
            continue
        t, label = text.rsplit("\t", 1)
        if need_label and (not label.strip() or not t.strip()):
            return n, i
        n += 1
    if need_label and n == 0:
        return 0, "file"
    return n, None


@FUZZ
@given(case=st.one_of(tsv_files(), tsv_files().flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None)))),
       need_label=st.booleans())
def test_fuzz_classifier_tsv_reader(fuzzdir, case, need_label):
    c = _classifier()
    data, _ = case
    path = _file(fuzzdir, "f.tsv", data)
    n, err = tsv_oracle(data, need_label)
    try:
        with no_hang():
            got = c.read_examples(path, "tsv", need_label=need_label)
    except InputError as exc:
        _count("classifier tsv", "InputError")
        assert exc.path == str(path) and err is not None, exc
        assert exc.line == (None if err == "file" else err), (exc, err)
        return
    _count("classifier tsv", "parsed")
    assert err is None and len(got) == n


def classifier_jsonl_oracle(data: bytes):
    n = 0
    for i, text in _decoded(split_lines(data)):
        if text is None:
            return n, i
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except ValueError:
            return n, i
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            return n, i
        label = rec.get("label")
        if isinstance(label, bool):
            label = str(label)
        if not isinstance(label, (str, int)) or not str(label).strip():
            return n, i
        n += 1
    return n, (None if n else "file")


@st.composite
def labelled_jsonl(draw):
    """Mostly well-formed classifier records: text + label (string, integer or boolean), extra fields."""
    recs = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 5)) == 0:
            recs.append(draw(st.sampled_from(["", "{\"text\": \"x\"}", "{\"label\": \"pos\"}", "[]",
                                              "{\"text\": \"x\", \"label\": \" \"}",
                                              "{\"text\": \"x\", \"label\": 1.5}"])))
            continue
        rec = {"text": draw(st.text(st.sampled_from(TOKEN_CHARS + [" ", "\n", "\t"]), max_size=30)),
               "label": draw(st.one_of(st.sampled_from(LABELS + ["pos", "neg"]), st.integers(-5, 5), st.booleans()))}
        if draw(st.booleans()):
            rec["id"] = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
        recs.append(json.dumps(rec, ensure_ascii=draw(st.booleans())))
    eol = draw(st.sampled_from(EOLS))
    return (eol.join(recs) + eol).encode("utf-8"), None


@FUZZ
@given(case=st.one_of(labelled_jsonl(), labelled_jsonl().flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None))),
                      jsonl_records()))
def test_fuzz_classifier_jsonl_reader(fuzzdir, case):
    c = _classifier()
    data, _ = case
    path = _file(fuzzdir, "f.jsonl", data)
    n, err = classifier_jsonl_oracle(data)
    try:
        with no_hang():
            got = c.read_examples(path, "jsonl", need_label=True)
    except InputError as exc:
        _count("classifier jsonl", "InputError")
        assert exc.path == str(path) and err is not None, exc
        assert exc.line == (None if err == "file" else err), (exc, err)
        return
    _count("classifier jsonl", "parsed")
    assert err is None and len(got) == n


@st.composite
def csv_files(draw):
    """CSV with a header naming text and label (and maybe id); fields quoted as csv.writer does."""
    import csv

    cols = draw(st.sampled_from([["text", "label"], ["id", "text", "label"], ["label", "text"], ["Text", "Label"]]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    w.writerow(cols)
    rows = []
    for i in range(draw(st.integers(0, 6))):
        text = draw(st.text(st.sampled_from(TOKEN_CHARS + [" ", ",", '"', "\n"]), min_size=1, max_size=20))
        label = draw(st.sampled_from(LABELS + ["pos", "neg"]))
        row = {"id": str(i), "text": text, "label": label}
        w.writerow([row[c.lower()] for c in cols])
        rows.append((text, label))
    return buf.getvalue().encode("utf-8"), rows


@FUZZ
@given(case=st.one_of(csv_files(), csv_files().flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None))),
                      st.binary(max_size=200).map(lambda b: (b, None)),
                      tsv_files().flatmap(lambda d: mutated(d[0].replace(b"\t", b",")).map(lambda m: (m, None)))),
       need_label=st.booleans())
def test_fuzz_classifier_csv_and_lines_readers(fuzzdir, case, need_label):
    """CSV (quoted fields may span lines) and plain lines: a parse or an InputError naming the file."""
    c = _classifier()
    data, expected = case
    path = _file(fuzzdir, "f.csv", data)
    if expected:  # a well-formed CSV file reads back exactly
        got = [(e.text, e.label) for e in c.read_examples(path, "csv", need_label=need_label)]
        assert got == expected
    for fmt in ("csv", "lines", "auto"):
        try:
            with no_hang():
                got = c.read_examples(path, fmt, need_label=need_label)
        except InputError as exc:
            _count(f"classifier {fmt}", "InputError")
            assert exc.path == str(path)
            continue
        _count(f"classifier {fmt}", "parsed")
        if fmt == "lines":  # unlabelled plain lines: every line is an example, blank ones too
            assert len(got) == len(split_lines(data))
        assert all(e.label for e in got) or not need_label


@FUZZ
@given(case=st.one_of(token_lines(), token_lines().flatmap(lambda d: mutated(d[0]).map(lambda m: (m, None)))))
def test_fuzz_generator_text_reader(fuzzdir, case):
    g = pytest.importorskip("tagger.formats.read", reason="tagger generate is not written yet")
    data, _ = case
    path = _file(fuzzdir, "f.txt", data)
    want, err = [], None
    for i, text in _decoded(split_lines(data)):
        if text is None:
            err = i
            break
        if text.strip():
            want.append(text.split())
    try:
        with no_hang():
            got = g.read_sentences(path, "text")
    except InputError as exc:
        _count("generator text", "InputError")
        assert exc.path == str(path) and exc.line == err or (err is None and not want and exc.line is None), exc
        return
    _count("generator text", "parsed")
    assert err is None and got == want


# --------------------------------------------------------------------------- specific hard cases


def test_only_docstart_and_empty_files(tmp_path):
    for name, data in [("empty.conll", b""), ("docstart.conll", b"-DOCSTART- -X- -X- O\n\n"),
                       ("docstarts.conll", b"-DOCSTART- -X- O\r\n\r\n-DOCSTART- -X- O"),
                       ("blank.conll", b"\n \n\t\n"), ("bom.conll", b"\xef\xbb\xbf"), ("empty.conllu", b""),
                       ("comments.conllu", b"# sent_id = 1\n\n")]:
        p = _file(tmp_path, name, data)
        with pytest.raises(InputError, match="empty|no sentences") as info:
            read_corpus(p)
        assert info.value.path == str(p)
        _count("whole-file cases", "InputError")


def test_unusual_labels_are_kept_verbatim(tmp_path):
    p = _file(tmp_path, "l.conll",
              "Star B-creative-work\nWars I-creative-work\n\nParis I-ORG|LOC\n\n東京 B-東京\n".encode())
    c = read_corpus(p)
    assert [s.labels for s in c.sentences] == [["B-creative-work", "I-creative-work"], ["I-ORG|LOC"], ["B-東京"]]
    _count("whole-file cases", "parsed")


def test_prepare_with_unusual_labels(tmp_path):
    """Hyphenated entity types survive scheme conversion; a '|' label is a type, not two."""
    from tagger.commands.prepare import PrepareOptions, prepare
    from tagger.prepared import load_prepared

    p = _file(tmp_path, "l.conll", (b"Star B-creative-work\nWars I-creative-work\nin O\nParis B-ORG|LOC\n\n"
                                    b"Bonn B-ORG|LOC\nis O\n\n"))
    prepare(PrepareOptions(train=str(p), embeddings="none", embedding_dim=4), tmp_path / "P")
    prep = load_prepared(tmp_path / "P")
    _, labels = prep.sentences("train")
    assert labels[0] == ["B-creative-work", "E-creative-work", "O", "S-ORG|LOC"]
    assert set(prep.labels.itos) >= {"B-creative-work", "E-creative-work", "S-ORG|LOC"}
    _count("whole-file cases", "parsed")


def test_label_named_like_the_padding_label(tmp_path):
    """A label spelled '<pad>' must not collide with the padding label id 0."""
    from tagger.commands.prepare import PrepareOptions, prepare

    p = _file(tmp_path, "l.conll", b"a O\nb <pad>\n\nc O\n\n")
    # (it used to be merged into the padding label: its tokens were trained as padding)
    with pytest.raises(InputError, match="<pad>") as info:
        prepare(PrepareOptions(train=str(p), embeddings="none", embedding_dim=4), tmp_path / "P")
    assert info.value.path == str(p) and info.value.line == 2
    assert not (tmp_path / "P").exists()
    _count("whole-file cases", "InputError")


def test_100k_token_sentence_and_long_lines(tmp_path):
    n = 100_000
    p = _file(tmp_path, "long.conll", b"".join(b"w%d NN O\n" % i for i in range(n)))
    with no_hang(60):
        c = read_corpus(p)
    assert len(c.sentences) == 1 and c.num_tokens == n
    q = _file(tmp_path, "long.conllu", b"".join(b"%d\tw\tw\tX\t_\t_\t0\troot\t_\t_\n" % (i + 1) for i in range(n)))
    with no_hang(60):
        assert read_corpus(q).num_tokens == n
    # a 5 MB token and a 5 MB line without a newline
    big = _file(tmp_path, "bigtoken.conll", b"x" * 5_000_000 + b" O")
    with no_hang(60):
        assert read_corpus(big).sentences[0].tokens == ["x" * 5_000_000]
    _count("long inputs", "parsed")
    _count("long inputs", "parsed")
    _count("long inputs", "parsed")


def test_100k_token_inputs_in_other_readers(tmp_path):
    c = _classifier()
    n = 100_000
    line = b" ".join(b"w%d" % i for i in range(n)) + b"\n"
    with no_hang(60):
        items = list(read_items("tokens", io.BytesIO(line), "x.tok"))
    assert sum(len(s) for it in items for s in it.sents) == n
    text = b"".join(b"word%d and more%d .\n" % (i, i) for i in range(n // 3)) + b"end .\n"
    with no_hang(120):
        items = list(read_items("text", io.BytesIO(text), "x.txt"))
    assert sum(len(s) for it in items for s in it.sents) == 4 * (n // 3) + 2
    with no_hang(60):
        items = list(read_items("jsonl", io.BytesIO(json.dumps({"tokens": ["t"] * n}).encode()), "x.jsonl"))
    assert sum(len(s) for it in items for s in it.sents) == n
    p = _file(tmp_path, "x.tsv", line.rstrip(b"\n") + b"\tpos\n")
    with no_hang(60):
        assert len(c.read_examples(p, "tsv")) == 1
    for _ in range(4):
        _count("long inputs", "parsed")


def test_raw_text_line_longer_than_64k_chars():
    """A 100 KB raw-text line (no line break, no sentence end) must not take quadratic time.

    (It took 44 s for 12,000 words, minutes for more, before textproc.iter_pieces was fixed.)
    """
    n = 12_000
    text = b" ".join(b"word%d" % i for i in range(n)) + b"\n"
    with no_hang(20):
        items = list(read_items("text", io.BytesIO(text), "x.txt"))
    assert sum(len(s) for it in items for s in it.sents) == n
    _count("long inputs", "parsed")


PATHOLOGICAL_JSON = {
    "int of 5000 digits": b'{"text": "a", "label": ' + b"1" * 5000 + b"}\n",  # ValueError, not JSONDecodeError
    "nesting 100k deep": b'{"text": "a", "label": "pos", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    "1e999": b'{"text": "a", "label": 1e999}\n',
    "lone surrogate": b'{"text": "Peter \\ud800 x", "label": "pos"}\n',  # cannot be written back as UTF-8
    "NUL": b'{"text": "a", "label": "pos"}\n{"text": "b", "label": "pos"}\x00\n',
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL_JSON))
def test_pathological_json_classifier(tmp_path, name):
    """JSON that makes the json module raise something other than JSONDecodeError."""
    c = _classifier()
    payload = PATHOLOGICAL_JSON[name]
    p = _file(tmp_path, "x.jsonl", payload)
    try:
        with no_hang(60):
            got = c.read_examples(p, "jsonl")
        for e in got:  # what was read can be written back
            json.dumps(e.text, ensure_ascii=False).encode("utf-8")
        _count("pathological JSON", "parsed")
    except InputError as exc:
        assert exc.path == str(p) and exc.line is not None
        _count("pathological JSON", "InputError")


@pytest.mark.parametrize("name", list(PATHOLOGICAL_JSON))
def test_pathological_json_annotate(models, tmp_path, name):
    """annotate keeps one output record per input record, an error record for a bad one, no crash."""
    payload = PATHOLOGICAL_JSON[name]
    with no_hang(60):
        items = list(read_items("jsonl", io.BytesIO(payload), "x.jsonl"))
    assert len(items) == len([line for line in payload.splitlines() if line.strip()])
    src = _file(tmp_path, "x.jsonl", payload)
    code, out, exc = invoke("annotate", models["tagger"], src, "--out", tmp_path / "o.jsonl", "-q")
    assert exc is None and code in (0, 1) and "Traceback" not in out, (code, out, exc)
    recs = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(recs) == len(items)
    _count("pathological JSON", "annotated")


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {"prepared": prepared_dir(tmp_path_factory), "tagger": tagger_model(tmp_path_factory),
            "classifier": classifier_model(tmp_path_factory), "generator": generator_model(tmp_path_factory)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-files")
    f = {
        "conll": _file(d, "ok.conll", b"EU B-ORG\nrejects O\n\nPeter B-PER\n\n"),
        "empty": _file(d, "empty.conll", b""),
        "docstart": _file(d, "docstart.conll", b"-DOCSTART- -X- O\n\n"),
        "binary": _file(d, "bin.conll", b"\x00\x01\x02\xff\xfe" * 20),
        "latin1": _file(d, "latin1.conll", "Zürich B-LOC\n\n".encode("latin-1")),
        "ragged": _file(d, "ragged.conll", b"a B-X\nb c O\n\n"),
        "txt": _file(d, "in.txt", b"Peter lives in Berlin.\n"),
        "tsv": _file(d, "ok.tsv", b"good film\tpos\nbad film\tneg\n"),
        "garbage_vec": _file(d, "vec.txt", b"\x00\xff garbage\nnot a vector file\n"),
        "bad_toml": _file(d, "bad.toml", b"epochs = [\n"),
        "unknown_toml": _file(d, "unknown.toml", b"[train]\nepoch = 3\n"),
        "pipeline_bad": _file(d, "bad_pipeline.toml", b"[[stages]]\nname = 'x'\ncommand = 'rm -rf /'\n"),
        "regular": _file(d, "regular-file", b"I am a file, not a directory\n"),
    }
    (d / "indir").mkdir()
    _file(d / "indir", "a.txt", b"Peter lives in Berlin.\n")
    f["indir"] = d / "indir"
    f["dir"] = d
    f["existing"] = d / "existing-out"
    f["existing"].mkdir()
    return f


UNWRITABLE = ["{regular}/sub", "/proc/version/sub", "/proc/tagger-test-out", "/dev/null/sub"]

# Arguments use placeholders filled in by the test: {prep} {tag} {clf} {gen} (model directories), {tmp}
# (a fresh directory), {out} (a path that must not be created), {conll} {txt} {tsv} {empty} {docstart}
# {binary} {latin1} {ragged} {dir} {indir} {existing} {regular} {bad_toml} {unknown_toml}
# {garbage_vec} {pipeline_bad} (the files of the ``files`` fixture).
P = ["prepare", "--train", "{conll}", "--embeddings", "none", "--embedding-dim", "4", "-q"]
T = ["train", "{prep}", "--epochs", "1", "--hidden", "8", "-q"]
CLI_CASES = [
    # prepare: files
    (["prepare", "--train", "{tmp}/missing.conll", "--out", "{out}"], "not found"),
    (["prepare", "--train", "{empty}", "--out", "{out}", "--embeddings", "none"], "empty"),
    (["prepare", "--train", "{docstart}", "--out", "{out}", "--embeddings", "none"], "no sentences"),
    (["prepare", "--train", "{binary}", "--out", "{out}", "--embeddings", "none"], None),
    (["prepare", "--train", "{latin1}", "--out", "{out}", "--embeddings", "none"], "decode"),
    (["prepare", "--train", "{ragged}", "--out", "{out}", "--embeddings", "none"], ":2"),
    (["prepare", "--train", "{dir}", "--out", "{out}"], None),
    (["prepare", "--out", "{out}"], None),
    (["prepare", "--train", "{conll}", "--dev", "{tmp}/missing-dev.conll", "--out", "{out}", "--embeddings", "none"],
     "not found"),
    # prepare: option values
    (P + ["--out", "{out}", "--dev-fraction", "2"], "fraction"),
    (P + ["--out", "{out}", "--dev-fraction", "-0.5"], "fraction"),
    (P + ["--out", "{out}", "--min-count", "0"], "min"),
    (P + ["--out", "{out}", "--embedding-dim", "0"], "dim"),
    (P + ["--out", "{out}", "--embedding-dim", "-3"], "dim"),
    (P + ["--out", "{out}", "--embeddings", "{tmp}/missing.vec"], None),
    (P + ["--out", "{out}", "--embeddings", "{garbage_vec}"], None),
    (P + ["--out", "{out}", "--token-column", "9"], "column"),
    (P + ["--out", "{out}", "--label-column", "abc"], "label"),
    (P + ["--out", "{out}", "--encoding", "klingon"], "encoding"),
    (P + ["--out", "{out}", "--encoding", "utf-16"], None),
    (P + ["--out", "{out}", "--format", "conllu"], "10"),
    (P + ["--out", "{out}", "--format", "xml"], None),
    (P + ["--out", "{out}", "--seed", "abc"], None),
    (P + ["--out", "{out}", "--scheme", "xml"], None),
    (P + ["--out", "{existing}"], "already exists"),
    (P + ["--out", "{regular}", "--force"], None),
    # train
    (["train", "{tmp}/missing-prep", "--out", "{out}"], None),
    (["train", "{conll}", "--out", "{out}"], None),
    (T + ["--out", "{out}", "--epochs", "0"], "epochs"),
    (T + ["--out", "{out}", "--batch-size", "0"], "batch"),
    (T + ["--out", "{out}", "--optimizer", "rmsprop"], "optimizer"),
    (T + ["--out", "{out}", "--lr", "0"], "lr"),
    (T + ["--out", "{out}", "--lr", "nan"], "lr"),
    (T + ["--out", "{out}", "--dropout", "1.5"], "dropout"),
    (T + ["--out", "{out}", "--hidden", "0"], "hidden"),
    (T + ["--out", "{out}", "--hidden", "1000000"], "hidden"),
    (T + ["--out", "{out}", "--layers", "100"], "layers"),
    (T + ["--out", "{out}", "--device", "cuda:7"], None),
    (T + ["--out", "{out}", "--device", "tpu"], "device"),
    (T + ["--out", "{out}", "--char-encoder", "transformer"], "char"),
    (T + ["--out", "{out}", "--threads", "-1"], "threads"),
    (T + ["--out", "{out}", "--patience", "0"], "patience"),
    (T + ["--out", "{out}", "--max-minutes", "-1"], "minutes"),
    (T + ["--out", "{out}", "--config", "{tmp}/missing.toml"], None),
    (T + ["--out", "{out}", "--config", "{bad_toml}"], "toml"),
    (T + ["--out", "{out}", "--config", "{unknown_toml}"], "unknown option"),
    (T + ["--out", "{out}", "--epochs", "abc"], None),
    (["train", "{prep}", "--out", "{tmp}/never-trained", "--resume"], "nothing to resume"),
    (["train", "{prep}", "--out", "{tag}", "--resume", "--hidden", "32"], "saved configuration"),
    (T + ["--out", "{existing}"], "already exists"),
    (T + ["--out", "{regular}", "--force"], None),
    # evaluate
    (["evaluate", "{tag}", "--data", "{tmp}/missing.conll"], "not found"),
    (["evaluate", "{tag}", "--data", "{empty}"], "empty"),
    (["evaluate", "{tag}", "--data", "{binary}"], None),
    (["evaluate", "{tag}", "--data", "{ragged}"], ":2"),
    (["evaluate", "{tag}", "--data", "{prep}:nosuchsplit"], "split"),
    (["evaluate", "{tag}", "--data", "{dir}"], None),
    (["evaluate", "{tag}", "--data", "{conll}", "--batch-size", "0"], "batch"),
    (["evaluate", "{tag}", "--data", "{conll}", "--threads", "-2"], "threads"),
    (["evaluate", "{tag}", "--data", "{conll}", "--device", "tpu"], "device"),
    (["evaluate", "{tag}", "--data", "{conll}", "--format", "conllu"], "10"),
    (["evaluate", "{tag}", "--data", "{conll}", "--token-column", "7"], "column"),
    (["evaluate", "{tag}", "--data", "{conll}", "--encoding", "klingon"], "encoding"),
    # annotate
    (["annotate", "{tag}", "{indir}", "--out", "{indir}/out"], "inside"),
    (["annotate", "{tag}", "{tmp}/missing.txt", "--out", "{out}"], None),
    (["annotate", "{tag}", "{txt}", "--out", "{out}", "--batch-size", "0"], "batch"),
    (["annotate", "{tag}", "{txt}", "--out", "{out}", "--workers", "0"], "workers"),
    (["annotate", "{tag}", "{txt}", "--out", "{out}", "--max-length", "0"], "max-length"),
    (["annotate", "{tag}", "{txt}", "--out", "{out}", "--threads", "-1"], "threads"),
    (["annotate", "{tag}", "{txt}", "--out", "{out}", "--glob", ""], "glob"),
    (["annotate", "{tag}", "{txt}", "--out", "{out}", "--encoding", "klingon"], "encoding"),
    (["annotate", "{tag}", "{txt}", "--out", "{out}", "--input-format", "xml"], None),
    (["annotate", "{tag}", "{txt}", "--out", "{txt}"], "input file itself"),
    (["annotate", "{tag}", "{txt}", "--out", "-", "--workers", "abc"], None),
    (["annotate", "{tmp}/missing-model", "{txt}", "--out", "{out}"], None),
    # classify / generate / run
    (["classify", "train", "--train", "{tmp}/missing.tsv", "--out", "{out}", "--embeddings", "none"], "not found"),
    (["classify", "train", "--train", "{tsv}", "--out", "{out}", "--embeddings", "none", "--epochs", "0"], "epochs"),
    (["classify", "train", "--train", "{tsv}", "--cv", "1", "--embeddings", "none"], "cv"),
    (["classify", "train", "--label-file", "nolabel", "--out", "{out}"], "label-file"),
    (["classify", "train", "--train", "{conll}", "--out", "{out}", "--format", "jsonl", "--embeddings", "none"], ":1"),
    (["classify", "predict", "{clf}", "{tmp}/missing.txt", "--out", "{out}"], None),
    (["classify", "evaluate", "{clf}", "--data", "{empty}", "--format", "tsv"], "empty"),
    (["generate", "train", "--text", "{tmp}/missing.txt", "--out", "{out}"], None),
    (["generate", "train", "--text", "{txt}", "--out", "{out}", "--hidden", "0"], "--hidden must be in [1, 8192]"),
    (["generate", "sample", "{gen}", "--words", "-1"], "words"),
    (["generate", "sample", "{gen}", "--temperature", "-1"], "temperature"),
    (["generate", "sample", "{gen}", "--top-p", "2"], "top-p"),
    (["generate", "evaluate", "{gen}", "--text", "{empty}"], "empty"),
    (["run", "{tmp}/missing.toml"], None),
    (["run", "{pipeline_bad}"], None),
    (["run", "{bad_toml}"], "toml"),
    (["run", "{pipeline_bad}", "--set", "no equals sign"], "set"),
    (["no-such-command"], None),
]
# unwritable output locations (tests run as root in CI: paths below a regular file, in /proc, below /dev/null)
for _u in UNWRITABLE:
    CLI_CASES += [
        (P + ["--out", _u], None),
        (T + ["--out", _u], None),
        (["evaluate", "{tag}", "--data", "{conll}", "--out", _u, "-q"], None),
        (["annotate", "{tag}", "{txt}", "--out", _u + "/x.jsonl", "-q"], None),
        (["annotate", "{tag}", "{indir}", "--out", _u, "-q"], None),
        (["classify", "train", "--train", "{tsv}", "--out", _u, "--embeddings", "none", "--epochs", "1",
          "--hidden", "4", "--embedding-dim", "4", "-q"], None),
        (["classify", "predict", "{clf}", "{txt}", "--out", _u + "/p.jsonl"], None),
        (["classify", "evaluate", "{clf}", "--data", "{tsv}", "--out", _u], None),
        (["generate", "train", "--text", "{txt}", "--out", _u, "--epochs", "1", "--hidden", "4",
          "--embedding-dim", "4", "--min-count", "1", "-q"], None),
        (["generate", "sample", "{gen}", "--out", _u + "/s.txt"], None),
        (["generate", "evaluate", "{gen}", "--text", "{txt}", "--out", _u], None),
    ]

def _case_id(args) -> str:
    return " ".join(a.replace("{", "").replace("}", "") for a in args if a != "-q")[:70]


@pytest.mark.parametrize("i", [pytest.param(i, id=_case_id(a)) for i, (a, _) in enumerate(CLI_CASES)])
def test_cli_bad_input(models, files, tmp_path, monkeypatch, i):
    """Wrong option values, missing or bad files, unwritable outputs: one line, exit 2, no traceback."""
    monkeypatch.chdir(tmp_path)
    args, expect = CLI_CASES[i]
    fill = {"prep": models["prepared"], "tag": models["tagger"], "clf": models["classifier"],
            "gen": models["generator"], "tmp": tmp_path, "out": tmp_path / "out",
            **{k: v for k, v in files.items()}}
    fill = {k: str(v) for k, v in fill.items()}
    assert_clean_exit_2([a.format(**fill) for a in args], expect)
    _count("CLI bad options/files/outputs", "exit 2")
    assert not (tmp_path / "out").exists()
    assert not Path("/proc/tagger-test-out").exists()


HF_FILES = {
    "bad-json.jsonl": (b'{"tokens": ["a", "b"], "ner_tags": ["O", "B-PER"]}\n{"tokens": "oops"\n',
                       "cannot load dataset"),
    "mismatch.jsonl": (b'{"tokens": ["a", "b"], "ner_tags": ["O"]}\n', ":1: 2 tokens but 1 labels"),
    # was read as a, b, c
    "string-tokens.jsonl": (b'{"tokens": "abc", "ner_tags": ["O", "O", "O"]}\n', "must be lists"),
    "scalar-labels.csv": (b'tokens,ner_tags\n"a",1\n', "must be lists"),  # was a TypeError traceback
    "empty.jsonl": (b"", None),
}


@pytest.mark.parametrize("name", list(HF_FILES))
def test_cli_bad_local_dataset_files(tmp_path, monkeypatch, name):
    """prepare --dataset FILE (the HuggingFace datasets reader) on bad local data files."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    data, expect = HF_FILES[name]
    src = _file(tmp_path, name, data)
    assert_clean_exit_2(["prepare", "--dataset", src, "--embeddings", "none", "--out", tmp_path / "out", "-q"], expect)
    assert not (tmp_path / "out").exists()
    _count("CLI bad options/files/outputs", "exit 2")


def test_annotate_bad_file_content_is_reported(models, files, tmp_path):
    """annotate's documented contract: a bad input file is listed with file:line and exit status 1."""
    bad = _file(tmp_path, "bad.conllu", b"1\tonly\tthree\n")
    code, out, exc = invoke("annotate", models["tagger"], bad, "--out", tmp_path / "o.conll", "-q")
    assert exc is None and code == 1 and f"{bad}:1" in out and "Traceback" not in out, out
    assert not (tmp_path / "o.conll").exists()
    _count("CLI bad options/files/outputs", "exit 1 (annotate, by contract)")


def test_write_case_counts():
    write_case_counts("input", CASES, input_examples_per_property=EXAMPLES)
