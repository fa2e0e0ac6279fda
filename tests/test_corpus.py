"""Corpus readers on tricky inputs."""

from __future__ import annotations

import io
import random

import pytest

from tagger.errors import InputError, TaggerError
from tagger.formats.conll import iter_conll
from tagger.formats.detect import detect_format
from tagger.formats.lines import split_lines
from tagger.formats.read import read_corpus


def write(tmp_path, name, data: bytes | str):
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def test_conll_documents_and_columns(tmp_path):
    p = write(tmp_path, "a.conll",
              "-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n"
              "Peter NNP I-NP I-PER\n\n-DOCSTART- -X- -X- O\n\nBonn NNP I-NP I-LOC\n")
    c = read_corpus(p)
    assert [s.tokens for s in c.sentences] == [["EU", "rejects"], ["Peter"], ["Bonn"]]
    assert [s.labels for s in c.sentences] == [["I-ORG", "O"], ["I-PER"], ["I-LOC"]]
    assert [s.doc for s in c.sentences] == [0, 0, 1]
    assert [s.line for s in c.sentences] == [3, 6, 10]
    assert c.num_documents == 2
    pos = read_corpus(p, label_column=1)
    assert pos.sentences[0].labels == ["NNP", "VBZ"]


def test_docstart_at_end_and_no_final_newline(tmp_path):
    # The shared CoNLL-2003 files start without -DOCSTART- and end with one, unterminated.
    p = write(tmp_path, "a.conll", "A NN O\nB NN O\n\n-DOCSTART- -X- O O\n\nC NN O\n\n-DOCSTART- -X- O O")
    c = read_corpus(p)
    assert len(c.sentences) == 2 and c.num_documents == 2


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_and_tabs(tmp_path, newline):
    text = newline.join(["a\tDT\tO", "b  NN   B-X", "", "c\tNN\tO", ""])
    p = write(tmp_path, "a.conll", "\ufeff" + text)
    c = read_corpus(p)
    assert [s.tokens for s in c.sentences] == [["a", "b"], ["c"]]
    assert c.sentences[1].line == 4


def test_column_count_change_names_line(tmp_path):
    p = write(tmp_path, "a.conll", "a DT O\nb NN O\n\nc NN\n")
    with pytest.raises(InputError) as e:
        read_corpus(p)
    assert e.value.line == 4 and "a.conll:4" in str(e.value)


def test_missing_label_column(tmp_path):
    p = write(tmp_path, "a.conll", "a\nb\n")
    with pytest.raises(InputError, match="missing label column"):
        read_corpus(p)
    with pytest.raises(InputError, match="missing label column"):
        read_corpus(write(tmp_path, "b.conll", "a DT O\n"), label_column=5)


def test_invalid_utf8_names_line(tmp_path):
    p = write(tmp_path, "a.conll", b"a DT O\n\nb\xff NN O\n")
    with pytest.raises(InputError) as e:
        read_corpus(p)
    assert e.value.line == 3
    c = read_corpus(p, encoding="latin-1")
    assert c.sentences[1].tokens == ["b\xff"]


def test_nul_byte(tmp_path):
    with pytest.raises(InputError, match="NUL"):
        read_corpus(write(tmp_path, "a.conll", b"a DT O\nb\x00 NN O\n"))


@pytest.mark.parametrize("content,msg", [("", "empty"), ("\n\n\n", "no sentences"),
                                         ("-DOCSTART- -X- -X- O\n\n", "no sentences")])
def test_empty_inputs(tmp_path, content, msg):
    with pytest.raises(InputError, match=msg):
        read_corpus(write(tmp_path, "a.conll", content))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_corpus(tmp_path / "nope.conll")


def test_unusual_labels(tmp_path):
    p = write(tmp_path, "a.conll", "x B-creative-work\ny I-creative-work\nz I-ORG|LOC\n")
    assert read_corpus(p).sentences[0].labels == ["B-creative-work", "I-creative-work", "I-ORG|LOC"]


CONLLU = """# newdoc id = d1
# sent_id = 1
# text = I can't go.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_
2\tca\tcan\tAUX\tMD\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t_\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# newdoc id = d2
# sent_id = 2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_conllu_skips_ranges_and_empty_nodes(tmp_path):
    p = write(tmp_path, "a.conllu", CONLLU)
    c = read_corpus(p)
    assert c.format == "conllu"
    assert c.sentences[0].tokens == ["I", "ca", "n't", "."]
    assert c.sentences[0].labels == ["PRON", "AUX", "PART", "PUNCT"]
    assert read_corpus(p, label_field="xpos").sentences[0].labels == ["PRP", "MD", "RB", "."]
    assert c.num_documents == 2


def test_conllu_detected_by_content(tmp_path):
    p = write(tmp_path, "a.txt", CONLLU)
    assert detect_format(p, ("conllu", "conll")) == "conllu"
    assert detect_format(write(tmp_path, "b.txt", "a DT O\n"), ("conllu", "conll")) == "conll"


def test_conllu_bad_field(tmp_path):
    p = write(tmp_path, "a.conllu", CONLLU)
    with pytest.raises(TaggerError, match="label-field"):
        read_corpus(p, label_field="lemma")
    bad = write(tmp_path, "b.conllu", "1\tx\tx\tNOUN\n")
    with pytest.raises(InputError, match="10 tab-separated"):
        read_corpus(bad, format="conllu")


def test_streaming_reader_is_lazy(tmp_path):
    p = write(tmp_path, "a.conll", "a O\n\n" * 5 + "broken\n")
    it = iter_conll(p)
    assert next(it).tokens == ["a"]  # the error further down is not hit yet


def test_conllu_content_in_a_conll_named_file_is_read_as_conllu(tmp_path):
    """CoNLL-X / CoNLL-U treebanks are often named .conll: the content decides."""
    from tagger.formats.detect import detect_format

    lines = ["1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_", "2\tdog\tdog\tNOUN\tNN\t_\t0\troot\t_\t_", ""]
    path = tmp_path / "treebank.conll"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert detect_format(path, ("conllu", "conll")) == "conllu"
    plain = tmp_path / "ner.conll"
    plain.write_text("EU B-ORG\nrejects O\n\n", encoding="utf-8")
    assert detect_format(plain, ("conllu", "conll")) == "conll"


def _split_lines_one_by_one(data: bytes) -> list[tuple[bytes, bytes]]:
    """The line rule spelled out: a line per ``\\n`` of the file, then split at each lone ``\\r``."""
    out = []
    for raw in io.BytesIO(data):
        content, eol = (raw[:-2], b"\r\n") if raw.endswith(b"\r\n") else (
            (raw[:-1], b"\n") if raw.endswith(b"\n") else (raw, b""))
        *pieces, content = content.split(b"\r")
        out += [(p, b"\r") for p in pieces]
        if content or eol:
            out.append((content, eol))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_split_lines_in_blocks_equals_line_by_line(seed):
    """Blocks of any size (a \\r\\n or a line cut between two reads) give the same lines and endings."""
    rng = random.Random(seed)
    for _ in range(300):
        data = bytes(rng.choice(b"ab \t\r\n") for _ in range(rng.randint(0, 40)))
        want = _split_lines_one_by_one(data)
        assert b"".join(c + e for c, e in want) == data
        for block in (1, 2, 3, 5, 1 << 16):
            assert list(split_lines(io.BytesIO(data), block)) == want
