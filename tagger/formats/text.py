"""Text formats: raw text (split into sentences and tokens with character offsets) and tokenised
text (one sentence per line, tokens separated by whitespace).

Raw text is tokenised into English, CoNLL-2003-like tokens from syntok, post-processed so that

* abbreviations keep their period (``U.S.``, ``Mr.``, ``a.m.``, ``J.``, ``Inc.``),
* hyphenated words stay whole (``German-born``, ``one-day``; syntok drops the hyphen),
* names with an inner apostrophe or case change stay whole (``O'Neill``, ``McDonald``),
* clitics are split off (``Norway 's``, ``do n't``, ``I 'm``),
* no non-space character of the text is ever dropped.

Every token carries ``(start, end)`` offsets into the text exactly as decoded (read with
``newline=''`` so ``\\r\\n`` stays two characters): ``text[start:end] == token`` always holds.

:func:`iter_text_sentences` streams a text of any size: it cuts the text into paragraphs at
blank lines (and a long paragraph into pieces at sentence boundaries), so memory stays bounded.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, NamedTuple

from syntok.segmenter import segment as _syntok_segment
from syntok.tokenizer import Tokenizer as _SyntokTokenizer

from tagger.formats.lines import DecodedStream, decoded_lines

#: Words whose following period belongs to the token (case-sensitive, without the period).
ABBREVIATIONS = frozenset(
    """Mr Mrs Ms Messrs Mme Mlle Dr Prof Sr Jr St Mt Ft Rev Hon Gen Gov Sen Rep Lt Col Sgt Capt Cmdr
    Adm Maj Brig Cpl Pvt Pres Supt Insp Det Atty Amb Inc Corp Co Ltd Bros Cie Plc Pty Nos No Vol Vols
    vs v etc al approx est dept Dept Univ Assn Ave Blvd Rd Hwy Jan Feb Mar Apr Jun Jul Aug Sep Sept
    Oct Nov Dec Mon Tue Tues Wed Thu Thur Thurs Fri Sat Sun Ala Ariz Ark Calif Colo Conn Del Fla Ga
    Ill Ind Kan Ky La Md Mass Mich Minn Miss Mo Mont Neb Nev Okla Ore Pa Tenn Tex Va Vt Wash Wis Wyo
    Fig Figs Eq cf ca viz Ph pp Gov't""".split()
)
#: Apostrophe suffixes split off as their own token (compared lowercased).
CLITICS = frozenset({"'s", "'m", "'re", "'ve", "'ll", "'d", "’s", "’m", "’re", "’ve", "’ll", "’d"})
_APOSTROPHES = "'\u00b4\u02b9\u02bc\u2019\u2032"
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # U.S  e.g  a.m  F.C  N.J (before the last period)
_HYPHENS = frozenset("\u00ad\u058a\u05be\u0f0c\u1400\u1806\u2010\u2011\u2012\u2e17\u30a0-_")
_NONSPACE = re.compile(r"\S+")
# Pieces of a token without letters or digits: "..." and "--" stay whole, other ASCII
# punctuation is split off ("😀." -> "😀" "."), runs of other symbols stay whole.
_SYMBOL_PIECES = re.compile(r"\.{2,}|-{2,}|([!-/:-@\[-`{-~])\1*|[^!-/:-@\[-`{-~]+")
_TOKENIZER = _SyntokTokenizer(replace_not_contraction=False)
#: Characters syntok mishandles that are replaced by a space (same length: offsets unchanged).
_BLANKS = str.maketrans({"\ufeff": " ", "\u200b": " ", "\x00": " "})


@dataclass
class TextSentence:
    """A sentence of a raw text: tokens, their ``[start, end)`` character offsets, its line."""

    tokens: list[str]
    offsets: list[tuple[int, int]]
    line: int = 1  # 1-based line of the first token
    text: str = field(default="", repr=False)  # the sentence as written, from its first to its last token

    @property
    def start(self) -> int:
        return self.offsets[0][0] if self.offsets else 0

    @property
    def end(self) -> int:
        return self.offsets[-1][1] if self.offsets else 0


# --------------------------------------------------------------------------- tokens


def _merge(spans: list[list], text: str) -> list[list]:
    """Post-process syntok spans ``[start, end]`` of one sentence (in place where possible)."""
    out: list[list] = []
    for sp in spans:
        if out:
            prev = out[-1]
            ps, pe = prev
            s, e = sp
            if pe == s:  # adjacent: no character between the two tokens
                tok = text[s:e]
                ptok = text[ps:pe]
                if tok == "." and (
                    ptok in ABBREVIATIONS
                    or (len(ptok) == 1 and ptok.isupper())
                    or _DOTTED.fullmatch(ptok) is not None
                ):
                    prev[1] = e
                    continue
                if tok[0] in _APOSTROPHES and len(tok) > 1 and tok[1:].isalpha() and ptok[-1:].isalnum():
                    if tok.lower() not in CLITICS and not (tok[1:].lower() == "t" and ptok.endswith(("n", "N"))):
                        prev[1] = e  # O'Neill, rock'n'roll
                        continue
                if ptok[-1:].islower() and tok[:1].isupper() and tok.isalpha() and ptok[-1:].isalpha():
                    prev[1] = e  # McDonald, iPhone (syntok splits at lower→upper transitions)
                    continue
            elif s - pe == 1 and text[pe] in _HYPHENS and text[pe - 1].isalnum() and text[s].isalnum():
                prev[1] = e  # German-born: syntok drops the hyphen into the spacing
                continue
        out.append(sp)
    return out


def _fill_gaps(spans: list[list], text: str, lo: int, hi: int) -> list[list]:
    """Add tokens for non-space characters syntok left between spans (nothing is dropped)."""
    res: list[list] = []
    pos = lo
    for sp in spans:
        if sp[0] > pos and not text[pos:sp[0]].isspace():
            res.extend([m.start(), m.end()] for m in _NONSPACE.finditer(text, pos, sp[0]))
        res.append(sp)
        pos = sp[1]
    if hi > pos and not text[pos:hi].isspace():
        res.extend([m.start(), m.end()] for m in _NONSPACE.finditer(text, pos, hi))
    return res


def split_sentences(text: str) -> list[list[tuple[int, int]]]:
    """Sentences of ``text`` as lists of token ``(start, end)`` offsets into ``text``.

    ``text`` is treated as one paragraph (blank lines do not force a break; use
    :func:`iter_text_sentences` for whole documents).
    """
    clean = text.translate(_BLANKS) if ("\ufeff" in text or "\u200b" in text or "\x00" in text) else text
    sents: list[list[list]] = []
    for sent in _syntok_segment(_TOKENIZER.tokenize(clean)):
        spans: list[list] = []
        for t in sent:
            v = t.value
            if len(v) > 1 and not any(c.isalnum() for c in v):
                spans.extend([t.offset + m.start(), t.offset + m.end()] for m in _SYMBOL_PIECES.finditer(v))
            elif v:
                spans.append([t.offset, t.offset + len(v)])
        if spans:
            spans = _merge(spans, clean)
            sents.append(_fill_gaps(spans, clean, spans[0][0], spans[-1][1]))
    if not sents:
        spans = [[m.start(), m.end()] for m in _NONSPACE.finditer(clean)]
        return [[(s, e) for s, e in spans]] if spans else []
    # Characters syntok left outside every sentence (rare): before the first sentence they
    # join the first one, otherwise the sentence before them.
    head = _fill_gaps([], clean, 0, sents[0][0][0])
    if head:
        sents[0][:0] = head
    for k, spans in enumerate(sents):
        hi = sents[k + 1][0][0] if k + 1 < len(sents) else len(clean)
        spans.extend(_fill_gaps([], clean, spans[-1][1], hi))
    return [[(s, e) for s, e in spans] for spans in sents]


def tokenize(text: str) -> list[str]:
    """All tokens of ``text`` (sentence boundaries dropped)."""
    return [text[s:e] for sent in split_sentences(text) for s, e in sent]


# --------------------------------------------------------------------------- streaming


_EOL = re.compile(r"\r\n|\r|\n")
_LAST_SPACE = re.compile(r"\s+(?=\S*$)")


def iter_pieces(reader, limit: int = 1 << 16) -> Iterator[str]:
    """Lines of a text stream with their endings, a line longer than ``limit`` in pieces.

    ``reader`` has ``read(n)`` returning ``str`` (a file opened with ``newline=''``); ``\n``,
    ``\r\n`` and a lone ``\r`` end lines. Memory stays bounded even without line breaks.
    """
    carry = ""
    while True:
        block = reader.read(limit)
        if not block:
            break
        text = carry + block
        pos = 0
        for m in _EOL.finditer(text):  # (not "[^\r\n]*(?:\r\n|\r|\n)": quadratic on a long line)
            if m.end() == len(text) and text.endswith("\r"):
                break  # maybe the first half of "\r\n"
            yield text[pos:m.end()]
            pos = m.end()
        carry = text[pos:]
        while len(carry) > limit:
            yield carry[:limit]
            carry = carry[limit:]
    if carry:
        yield carry


def iter_text_sentences(lines: Iterable[str], max_chars: int = 100_000) -> Iterator[TextSentence]:
    """Stream the sentences of a text given as lines (or pieces of lines) with their endings.

    ``lines`` is e.g. a file opened with ``newline=''`` or :func:`iter_pieces`; offsets index
    ``"".join(lines)``. Paragraphs (separated by blank lines) are tokenised one at a time; a
    paragraph longer than ``max_chars`` is cut at its last sentence boundary (or, failing one,
    anywhere), so memory stays bounded.
    """
    buf: list[str] = []
    buf_len = 0
    buf_start = 0  # absolute offset of the block
    buf_line = 1  # line number at block offset 0
    line_offs: list[int] = [0]  # block offsets where lines start (the first maps to buf_line)
    pos = 0  # absolute offset after the last piece read
    lineno = 1  # line number of the next piece
    at_line_start = True

    def sentences(block: str) -> list[TextSentence]:
        res = []
        for spans in split_sentences(block):
            line = buf_line + bisect.bisect_right(line_offs, spans[0][0]) - 1
            res.append(TextSentence([block[a:b] for a, b in spans], [(a + buf_start, b + buf_start) for a, b in spans],
                                    line, block[spans[0][0]:spans[-1][1]]))
        return res

    def flush(final: bool) -> Iterator[TextSentence]:
        """Tokenise the block; unless ``final``, keep its last sentence (or word) for later."""
        nonlocal buf, buf_len, buf_start, buf_line, line_offs
        block = "".join(buf)
        sents = sentences(block)
        keep = None
        if not final:
            if len(sents) > 1:
                keep = sents[-1].offsets[0][0] - buf_start
                sents = sents[:-1]
            else:  # one long sentence: cut after its last space (mid-token only without one)
                m = _LAST_SPACE.search(block)
                keep = m.end() if m is not None and 0 < m.end() < len(block) else None
                if keep is not None:
                    sents = sentences(block[:keep])
        yield from sents
        if keep is None:
            buf, buf_len, line_offs = [], 0, [0]
            return
        buf_line += bisect.bisect_right(line_offs, keep) - 1
        line_offs = [0] + [o - keep for o in line_offs if o > keep]
        buf = [block[keep:]]
        buf_len = len(buf[0])
        buf_start += keep

    for piece in lines:
        complete = piece.endswith(("\n", "\r"))
        if at_line_start and (not piece or piece.isspace()) and complete:  # a blank line
            if buf:
                yield from flush(True)
        elif piece:
            if not buf:
                buf_start, buf_line, line_offs = pos, lineno, [0]
            elif at_line_start:
                line_offs.append(buf_len)
            buf.append(piece)
            buf_len += len(piece)
            if buf_len >= max_chars:
                yield from flush(False)
        pos += len(piece)
        if complete:
            lineno += 1
        at_line_start = complete
    if buf:
        yield from flush(True)


def read_text(fh: IO[bytes], path: str, encoding: str = "utf-8", max_chars: int = 100_000) -> Iterator[TextSentence]:
    """The sentences of a raw-text stream; an undecodable byte is an error naming its line."""
    return iter_text_sentences(iter_pieces(DecodedStream(fh, path, encoding)), max_chars=max_chars)


# --------------------------------------------------------------------------- tokenised text


class TokenLine(NamedTuple):
    """One line of tokenised text: its tokens (empty for a blank line) or why it could not be read."""

    line: int
    tokens: list[str]
    text: str
    error: str | None


def read_token_lines(fh: IO[bytes], path: str, encoding: str = "utf-8", strict: bool = True) -> Iterator[TokenLine]:
    """Every line of a tokenised-text stream, tokens split at whitespace.

    ``strict``: an undecodable line or a NUL byte is an :class:`~tagger.errors.InputError`;
    otherwise an undecodable line comes with its ``error`` and no tokens.
    """
    for lineno, text, error in decoded_lines(fh, path, encoding, strict):
        yield TokenLine(lineno, [] if error else text.split(), text, error)
