"""Format sniffing: the one place that guesses a file's format from its name and first bytes.

Each caller says which formats it reads (``among``). The file-name suffix decides when it names
one of them; otherwise the content rules below run in a fixed order and the first that matches a
format in ``among`` wins; failing all, the last format of ``among`` is the answer.

1. ``jsonl``: the first non-blank line starts with ``{``.
2. ``conllu``: ``# sent_id``/``# text =``/``# newdoc``/``# newpar`` comments, or (almost) every
   line has ten tab-separated fields with a numeric ID.
3. ``conll``: a ``-DOCSTART-`` line, or blank-line separated blocks of lines that all have the
   same few columns.
4. ``tsv``: the first non-blank line holds a tab.
5. ``tokens``: punctuation and clitics stand apart (``happy , very``, ``it 's``) more often than
   attached: already tokenised text rather than raw text.

Format names: ``text`` raw text, ``tokens`` one tokenised sentence per line, ``conll``,
``conllu``, ``jsonl``, ``tsv``, ``csv``, ``lines`` one text per line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from tagger.errors import TaggerError
from tagger.formats.conll import DOCSTART
from tagger.formats.lines import read_head

HEAD_BYTES = 1 << 16
SUFFIXES = {
    ".txt": "text", ".text": "text", ".tok": "tokens", ".tokens": "tokens",
    ".conll": "conll", ".conll03": "conll", ".iob": "conll", ".bio": "conll", ".bioes": "conll",
    ".conllu": "conllu", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".tsv": "tsv", ".csv": "csv",
}
_CONLLU_COMMENTS = ("# sent_id", "# text =", "# newdoc", "# newpar")
_ATTACHED = re.compile(r"\w[,.;:!?]+(?:\s|$)|\w['’](?:s|t|re|ve|ll|d|m)\b")
_DETACHED = re.compile(r"\s[,.;:!?]+(?:\s|$)| (?:'s|n't|'re|'ve|'ll|'d|'m)\b")


class _Head:
    """The first lines of a file, decoded leniently."""

    def __init__(self, head: bytes, encoding: str) -> None:
        try:
            self.text = head.decode(encoding, "replace").lstrip("\ufeff")
        except LookupError:
            raise TaggerError(f"unknown encoding {encoding!r}") from None
        lines = self.text.splitlines()
        if len(head) >= HEAD_BYTES and lines:
            lines = lines[:-1]  # maybe cut in the middle
        self.lines = lines
        where = [i for i, ln in enumerate(lines) if ln.strip()][:200]
        self.nonblank = [lines[i] for i in where]
        # the lines the first 200 non-blank ones come from (rules that count blank lines use these)
        self.window = lines[: where[-1] + 1] if where else []
        self.data = [ln for ln in self.nonblank if not ln.startswith("#")]


def _jsonl(h: _Head) -> bool:
    return h.nonblank[0].lstrip().startswith("{")


def _conllu(h: _Head) -> bool:
    if any(ln.startswith(_CONLLU_COMMENTS) for ln in h.nonblank):
        return True
    fields = [ln.split("\t") for ln in h.data]
    ten = sum(len(f) == 10 and f[0].replace("-", "").replace(".", "").isdigit() for f in fields)
    return bool(fields) and ten >= 0.9 * len(fields)


def _conll(h: _Head) -> bool:
    if any(ln.split()[0] == DOCSTART for ln in h.nonblank):
        return True
    counts = [len(ln.split()) for ln in h.data]
    blanks = sum(not ln.strip() for ln in h.window)
    # the same few columns on every line, blank lines between sentences of two or more lines on average
    return bool(counts) and blanks > 0 and max(counts) <= 20 and len(set(counts)) == 1 and len(counts) >= 2 * blanks


def _tsv(h: _Head) -> bool:
    return "\t" in h.nonblank[0]


def _tokens(h: _Head) -> bool:
    return len(_DETACHED.findall(h.text)) > len(_ATTACHED.findall(h.text))


_RULES: list[tuple[str, Callable[[_Head], bool]]] = [
    ("jsonl", _jsonl), ("conllu", _conllu), ("conll", _conll), ("tsv", _tsv), ("tokens", _tokens)]


def sniff(head: bytes, name: str, among: Sequence[str], encoding: str = "utf-8") -> str:
    """The format of a file named ``name`` (may be ``""``) that starts with ``head``, one of ``among``."""
    by_name = SUFFIXES.get(Path(name).suffix.lower())
    h = _Head(head, encoding)
    if by_name == "conll" and "conllu" in among and h.nonblank and _conllu(h):
        return "conllu"  # CoNLL-X / CoNLL-U treebanks are often named .conll
    if by_name is not None and by_name in among:
        return by_name
    if h.nonblank:
        for fmt, rule in _RULES:
            if fmt in among and fmt != among[-1] and rule(h):
                return fmt
    return among[-1]


def detect_format(path: str | os.PathLike, among: Sequence[str], encoding: str = "utf-8") -> str:
    """The format of the file ``path``, one of ``among`` (see :func:`sniff`)."""
    return sniff(read_head(path, HEAD_BYTES), str(path), among, encoding)


def detect_text_format(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """``conllu``, ``conll`` or ``text``: one tokenised sentence per line (``tagger generate``'s name for it)."""
    fmt = detect_format(path, ("conllu", "conll", "tokens"), encoding)
    return "text" if fmt == "tokens" else fmt
