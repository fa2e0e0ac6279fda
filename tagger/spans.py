"""Entity spans of a batch of tag-id sequences at once: :func:`tagger.schemes.to_spans`, vectorised.

conlleval's chunk rules (``_end_of_chunk`` / ``_start_of_chunk`` in :mod:`tagger.schemes`) look
only at a tag and the one before it, so they apply to every position of a ``(batch, seq_len)``
tensor at once. Each chunk has exactly one start and one end (a non-``O`` tag after ``O`` or
after a finished chunk always starts one, and the ``O`` appended after each sequence closes the
last), so the k-th start of a sentence pairs with its k-th end. Prediction reads its entities
this way instead of looping over tag strings in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tagger.schemes import Span, split_tag

_O, _B, _I, _E, _S = range(5)
_CODES = {"O": _O, "B": _B, "I": _I, "E": _E, "S": _S}


class SpanReader:
    """Reads entity spans from tag ids of the label list ``itos`` (a model's labels).

    Labels that are not entity tags (such as ``<pad>``) count as ``O``.
    """

    def __init__(self, itos: Sequence[str]) -> None:
        prefixes, types, names = [], [], []
        for label in itos:
            try:
                prefix, kind = split_tag(label)
            except ValueError:
                prefix, kind = "O", None
            prefixes.append(_CODES[prefix])
            if kind is not None and kind not in names:
                names.append(kind)
            types.append(-1 if kind is None else names.index(kind))
        self.prefix = torch.tensor(prefixes, dtype=torch.long)  # (labels,)
        self.type = torch.tensor(types, dtype=torch.long)  # (labels,) -1 for O
        self.names = names

    def __call__(self, paths: Tensor, lengths: Sequence[int]) -> list[list[Span]]:
        """The spans of each row of ``paths`` ``(batch, seq_len)``, reading ``lengths[b]`` tags of row b."""
        lens = torch.as_tensor(list(lengths))  # (batch,)
        inside = torch.arange(paths.size(1))[None, :] < lens[:, None]  # (batch, seq_len)
        return self.flat(paths.cpu()[inside], lengths)

    def flat(self, paths: Tensor, lengths: Sequence[int]) -> list[list[Span]]:
        """The spans of sentences whose tag ids are ``paths`` ``(tokens,)``: the ``lengths[0]`` tags of
        sentence 0, then sentence 1's, ..."""
        lens = torch.as_tensor(list(lengths), dtype=torch.long)  # (S,)
        # Each sentence followed by one O: the O before a sentence is the one after the previous.
        ext = torch.repeat_interleave(torch.arange(lens.numel()), lens + 1)  # (N + S,) sentence of each slot
        first = torch.cumsum(lens + 1, 0) - (lens + 1)  # (S,) slot of each sentence's first tag
        slot = torch.arange(paths.numel()) + torch.repeat_interleave(torch.arange(lens.numel()), lens)  # (N,)
        ids = paths.cpu()
        p = torch.full(ext.shape, _O).index_put_((slot,), self.prefix[ids])  # (N + S,) prefix codes
        t = torch.full(ext.shape, -1).index_put_((slot,), self.type[ids])  # (N + S,) type ids, -1 for O
        pp = torch.cat([torch.tensor([_O]), p[:-1]])  # previous prefix
        pt = torch.cat([torch.tensor([-1]), t[:-1]])  # previous type
        p_es, p_bi = (pp == _E) | (pp == _S), (pp == _B) | (pp == _I)
        ends = p_es | (p_bi & ((p == _B) | (p == _S) | (p == _O))) | ((pp != _O) & (pt != t))
        starts = (p == _B) | (p == _S) | ((p_es | (pp == _O)) & ((p == _E) | (p == _I))) | ((p != _O) & (pt != t))
        si = starts.nonzero().squeeze(1)  # (spans,) in order: by sentence, then position
        ei = ends.nonzero().squeeze(1)
        sb = ext[si]
        kinds = t[si].tolist()
        out: list[list[Span]] = [[] for _ in range(lens.numel())]
        for b, start, end, kind, base in zip(sb.tolist(), si.tolist(), ei.tolist(), kinds, first[sb].tolist(),
                                              strict=True):
            out[b].append(Span(self.names[kind], start - base, end - base))
        assert ext[ei].tolist() == sb.tolist(), "every chunk has one start and one end"
        return out
