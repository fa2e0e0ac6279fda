"""Corpus readers, one per format, shared by every command that reads text.

``lines`` (line splitting and decoding with exact ``file:line`` errors), ``conll`` and ``conllu``
(one byte-preserving reader each: tokens and labels for prepare/evaluate/generate, every byte for
annotate), ``text`` (raw text with character offsets; tokenised lines), ``jsonl``, ``examples``
(labelled texts for ``classify``), ``hf`` (HuggingFace datasets), ``detect`` (the format sniffer),
``corpus`` (the sentence model) and ``read`` (a corpus file of any format).
"""
