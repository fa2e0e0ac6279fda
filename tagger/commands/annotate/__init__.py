"""Batch annotation: tag files, directories or stdin with a trained model (``tagger annotate``).

Input formats (``--input-format``; ``auto`` picks by extension, then by sniffing the content,
:mod:`tagger.formats.detect`), read by the shared readers of :mod:`tagger.formats`:

* ``text``   raw text, split into sentences and CoNLL-2003-like tokens (:mod:`tagger.formats.text`);
  offsets are character offsets into the decoded file read with ``newline=''``
  (``open(path, encoding=..., newline='').read()[start:end]`` is the token / entity text).
* ``tokens`` one pre-tokenised sentence per line, tokens separated by whitespace.
* ``conll``  column files; the token is in the model's token column (as it was trained; or
  ``token_column``). The predicted tag is added as a new last column; every other byte (other
  columns, ``-DOCSTART-``, comments, blank lines, line endings, the encoding) is copied unchanged.
* ``conllu`` CoNLL-U; the prediction goes into MISC (``NER=B-PER`` appended; ``misc:KEY`` picks
  another key) or replaces UPOS / XPOS. Everything else is copied unchanged.
* ``jsonl``  one JSON object per line with ``text`` (raw) or ``tokens`` (a list); other fields
  are passed through. ``tokens``/``tags``/``entities``/``offsets``/``sentences``/``nbest`` are
  (over)written. Blank lines are not records and are skipped.

Output formats: ``conll`` (``token tag`` lines, or the input columns plus the prediction for
CoNLL/CoNLL-U input) and ``jsonl`` (one object per sentence, or per record for JSONL input;
entities as ``{"start", "end", "label", "text", "score", "token_start", "token_end"}`` with
character offsets for raw text and token offsets otherwise). The default (``auto``) is ``conll``
for CoNLL/CoNLL-U input and ``jsonl`` otherwise. Entity tags are written in IOB2 unless
``scheme`` says otherwise (``model`` keeps the model's own scheme).

Modules: :mod:`.options` (what can be asked, what a run did), :mod:`.items` (inputs as records),
:mod:`.engine` (prediction, worker processes), :mod:`.render` (output bytes), :mod:`.jobs`
(inputs to outputs, safe writing), :mod:`.run` (the streaming run and the entry points).

Library use::

    import tagger
    from tagger.commands.annotate import AnnotateOptions, annotate_paths, annotate_text

    summary = annotate_paths(tagger.load("model"), ["corpus/"], "out/", AnnotateOptions(glob="*.txt"))
    records = annotate_text("model", "Peter lives in Paris.")
"""

from tagger.commands.annotate.engine import Engine
from tagger.commands.annotate.options import AnnotateOptions, AnnotateSummary
from tagger.commands.annotate.run import annotate_paths, annotate_stream, annotate_text, run_jobs

__all__ = ["AnnotateOptions", "AnnotateSummary", "Engine", "annotate_paths", "annotate_stream", "annotate_text",
           "run_jobs"]
