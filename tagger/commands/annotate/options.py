"""What ``tagger annotate`` can be told (:class:`AnnotateOptions`) and what a run did (:class:`AnnotateSummary`)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from tagger.errors import TaggerError
from tagger.options import check_fields, option

INPUT_FORMATS = ("auto", "text", "tokens", "conll", "conllu", "jsonl")
OUTPUT_FORMATS = ("auto", "conll", "jsonl")
SCHEME_CHOICES = ("model", "iob2", "bioes", "iob1")
CONLLU_TARGETS = {"upos": 3, "xpos": 4, "misc": 9}
MAX_PROBLEMS = 20


def conllu_target(spec: str) -> tuple[int, str | None]:
    """``misc`` / ``misc:KEY`` / ``upos`` / ``xpos`` → (field index, MISC key or None)."""
    name, _, key = spec.partition(":")
    name = name.lower()
    if name not in CONLLU_TARGETS or (key and name != "misc"):
        raise TaggerError(f"unknown --conllu-field {spec!r}: choose misc, misc:KEY, upos or xpos")
    if name == "misc":
        key = key or "NER"
        if any(c in key for c in "|=\t "):
            raise TaggerError(f"bad MISC key {key!r}")
        return 9, key
    return CONLLU_TARGETS[name], None


@dataclass
class AnnotateOptions:
    """Everything ``tagger annotate`` can be told (the CLI makes one flag of each field it shows)."""

    input_format: str = option("auto", choices=INPUT_FORMATS,
                               help="auto: by extension (.txt .conll .conllu .jsonl), then content.")
    output_format: str = option("auto", choices=OUTPUT_FORMATS,
                                help="auto: conll for CoNLL/CoNLL-U input, jsonl otherwise. Files are named "
                                "INPUT + .conll/.jsonl.")
    batch_size: int = option(256, min=1, help="Sentences per model batch, at most.")
    batch_tokens: int = option(4096, min=1, help="Padded token slots per model batch (sentences x the longest), "
                               "at most; a longer sentence is a batch of its own.")
    workers: int = option(1, min=1, help="Worker processes predicting in parallel (forked: they share the "
                          "loaded model).")
    nbest: int = option(0, min=0, help="Also write the K best tag sequences.")
    glob: str = option("*", help="File-name pattern inside input directories.")
    max_length: int = option(1000, min=1, help="Longer sentences are tagged in pieces of this many tokens and "
                             "rejoined.")
    scheme: str = option("iob2", choices=SCHEME_CHOICES,
                         help="Tag scheme of the output (entity models): iob2, the interchange format of "
                         "seqeval, conlleval and HuggingFace datasets; model keeps the model's own.")
    conllu_field: str = option("misc", help="CoNLL-U field for the prediction: misc (NER=TAG), misc:KEY, upos or "
                               "xpos.")
    token_column: int | None = option(None, help="Token column of CoNLL input (default: the model's, as it was "
                                      "trained).")
    resume: bool = option(False, help="Skip inputs whose output file already exists (it is complete).")
    encoding: str = option("utf-8", help="Text encoding of the inputs.")
    runtime: str = option("torch", choices=("torch", "onnx"),
                          help="torch: a model directory; onnx: a directory written by tagger export --format onnx, "
                          "run with onnxruntime.")
    threads: int = option(0, min=0, help="Torch threads per process (0 = cores / workers, not counting cores "
                          "other processes keep busy).")
    # sentences predicted (and held in memory) at a time; 0 = 4096, 1024 with workers
    chunk_size: int = option(0, min=0, cli=False, help="Sentences predicted at a time (0: automatic).")
    progress: bool | None = option(None, cli=False, help="Progress bar: None = only on a terminal.")
    max_chars: int = option(100_000, min=1, cli=False, help="Raw text handed to the tokenizer at once (a "
                            "paragraph is cut beyond).")
    prefetch: bool = option(True, cli=False, help="With one worker and over 2 cores, read and "
                            "tokenise in a thread while predicting.")

    def validate(self) -> None:
        check_fields(self)
        if not self.glob:
            raise TaggerError("--glob must not be empty")
        conllu_target(self.conllu_field)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise TaggerError(f"unknown encoding {self.encoding!r}") from None


@dataclass
class AnnotateSummary:
    """What a run did: counts, problems (record errors, failed files) and notes."""

    files: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    records: int = 0
    sentences: int = 0
    tokens: int = 0
    errors: int = 0  # records written with an "error" field
    split: int = 0  # sentences longer than max_length, tagged in pieces
    seconds: float = 0.0
    threads: int = 0  # torch threads per predicting process
    outputs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the first MAX_PROBLEMS messages
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.files_failed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    def format(self) -> str:
        rate = self.tokens / self.seconds if self.seconds > 0 else 0.0
        head = (f"annotated {self.files} file(s): {self.records:,} records, {self.sentences:,} sentences, "
                f"{self.tokens:,} tokens in {self.seconds:.1f}s ({rate:,.0f} tokens/s)")
        lines = [head]
        if self.files_skipped:
            lines.append(f"skipped {self.files_skipped} file(s) whose output already exists (--resume)")
        if self.split:
            lines.append(f"{self.split} sentence(s) longer than --max-length were tagged in pieces and rejoined")
        lines.extend(self.notes)
        if not self.ok:
            lines.append(f"problems: {self.errors} record(s) with errors, {self.files_failed} file(s) failed")
            more = self.errors + self.files_failed - len(self.problems)
            lines.extend(f"  {p}" for p in self.problems)
            if more > 0:
                lines.append(f"  ... and {more} more")
        return "\n".join(lines)
