"""The BiLSTM-CRF: word + character + casing features → BiLSTM → emissions → CRF."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tagger.features import CASINGS, Batch
from tagger.modeldir import JsonConfig
from tagger.nn.crf import CRF
from tagger.nn.dropout import Dropout
from tagger.nn.embedding import WordEmbedding
from tagger.nn.padded_lstm import run_bilstm
from tagger.options import option

CHAR_ENCODERS = ("cnn", "lstm", "none")


@dataclass
class ModelConfig(JsonConfig):
    """Architecture hyper-parameters (saved in the model directory's config.json).

    The bounds are checked when a model directory is loaded and when training options are
    validated (they refer to these fields), so the two can never disagree.
    """

    num_words: int = option(help="trainable vocabulary size (ids 0..num_words-1)", min=1, max=5_000_000)
    num_extra: int = option(help="frozen pretrained-only words (ids num_words..)", min=0, max=5_000_000)
    word_dim: int = option(help="word vector size", min=1, max=2048)
    num_chars: int = option(help="character vocabulary size", min=1, max=1_000_000)
    num_tags: int = option(help="label vocabulary size", min=1, max=10_000)
    freeze_words: bool = option(False, help="keep the pretrained word vectors fixed")
    char_encoder: str = option("cnn", help="cnn | lstm | none", choices=CHAR_ENCODERS)
    char_dim: int = option(30, help="character embedding size", min=1, max=1024)
    char_filters: int = option(50, help="CNN filters, or LSTM hidden size per direction", min=1, max=4096)
    char_kernel: int = option(3, help="CNN kernel width", min=1, max=31)
    casing: bool = option(True, help="casing feature")
    casing_dim: int = option(10, help="casing embedding size", min=1, max=256)
    feature_sizes: list[int] = option(help="value vocabulary size of each feature column (incl. <pad>, <unk>)",
                                      default_factory=list)
    feature_dim: int = option(20, help="embedding size of each feature column", min=1, max=1024)
    context: int = option(0, help="tokens of document context read on each side of a sentence", min=0, max=4096)
    hidden: int = option(200, help="LSTM hidden size per direction", min=1, max=4096)
    layers: int = option(1, help="BiLSTM layers", min=1, max=8)
    dropout: float = option(0.5, help="dropout rate", min=0.0, below=1.0)
    word_dropout: float = option(0.05, help="share of training tokens replaced by <unk>", min=0.0, below=1.0)
    use_crf: bool = option(True, help="CRF output layer (else softmax)")


def sentence_rows(x: Tensor, start: Tensor, length: int) -> Tensor:
    """``x`` ``(batch, row_len, d)`` at positions ``start + 0..length-1`` of each row: ``(batch, length, d)``
    (positions past a row's end repeat its last one: callers mask them)."""
    idx = (start[:, None] + torch.arange(length, device=x.device)).clamp(max=x.shape[1] - 1)  # (batch, length)
    return x.gather(1, idx[:, :, None].expand(-1, -1, x.shape[2]))


class CharCNN(nn.Module):
    """Character CNN with max-pooling over each token (Ma & Hovy, 2016).

    The convolution runs as one matrix product over the batch's characters laid end to end,
    each token preceded by ``kernel // 2`` padding characters (so no window reaches into a
    neighbour): the padded ``(tokens, max_chars)`` layout spends most of its work on padding, and
    the convolution kernel is slow at these sizes (2-2.5x for the whole encoder, forward and
    backward). The weights are those of an ``nn.Conv1d`` with ``padding=kernel // 2``, whose
    output this is, up to float rounding.
    """

    def __init__(self, num_chars: int, dim: int, filters: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_chars, dim, padding_idx=0)
        self.dropout = Dropout(dropout)
        self.conv = nn.Conv1d(dim, filters, kernel, padding=kernel // 2)
        self.out_dim = filters

    def forward(self, chars: Tensor) -> Tensor:
        """``(tokens, filters)`` for character ids ``(tokens, max_chars)`` (0 = padding, after the characters)."""
        tokens, width = chars.shape
        if tokens == 0:
            return self.conv.weight.new_zeros(0, self.out_dim)  # (0, filters)
        k = self.conv.kernel_size[0]
        gap = k // 2
        lengths = (chars != 0).sum(1)  # (tokens,)
        start = torch.cumsum(lengths + gap, 0) - lengths  # (tokens,) first character's place: gap zeros before each
        cols = torch.arange(width, device=chars.device)  # (max_chars,)
        real = cols[None, :] < lengths[:, None]  # (tokens, max_chars)
        place = start[:, None] + cols[None, :]  # (tokens, max_chars)
        flat = chars.new_zeros(int(start[-1] + lengths[-1]) + k)  # (places,) ids laid end to end, zeros after
        flat[place[real]] = chars[real]
        x = self.dropout(self.embed(flat))  # (places, dim)
        n = x.shape[0] - k + 1
        windows = torch.cat([x[j : j + n] for j in range(k)], dim=1)  # (n, kernel*dim): row r = places r..r+k-1
        weight = self.conv.weight.permute(0, 2, 1).reshape(self.out_dim, -1)  # (filters, kernel*dim)
        h = nn.functional.linear(windows, weight, self.conv.bias)  # (n, filters): row r centred on place r+gap
        empty = (lengths == 0)[:, None]  # (tokens, 1): tokens without characters
        rows = torch.where(real, place, start[:, None]) - gap  # (tokens, max_chars); padding repeats a real row
        rows.masked_fill_(empty, 0)  # an empty token: any row (its output is zeroed below)
        return h[rows].amax(1).masked_fill(empty, 0.0)  # (tokens, filters)


class CharLSTM(nn.Module):
    """Character BiLSTM: final forward and backward states (Lample et al., 2016)."""

    def __init__(self, num_chars: int, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_chars, dim, padding_idx=0)
        self.dropout = Dropout(dropout)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, chars: Tensor) -> Tensor:
        """``(tokens, 2*hidden)`` for character ids ``(tokens, max_chars)`` (0 = padding)."""
        lengths = (chars != 0).sum(1)  # (tokens,)
        real = lengths > 0
        if not bool(real.all()):  # a token without characters: 0
            out = torch.zeros(chars.shape[0], self.out_dim, device=chars.device)  # (tokens, 2*hidden)
            if bool(real.any()):
                out[real] = self(chars[real])
            return out
        h = run_bilstm(self.lstm, self.dropout(self.embed(chars)), lengths)  # (tokens, max_chars, 2*hidden)
        half = self.lstm.hidden_size
        last = h[torch.arange(h.shape[0], device=h.device), lengths - 1, :half]  # (tokens, hidden) forward final
        return torch.cat([last, h[:, 0, half:]], dim=1)  # with the backward direction's final state


class BiLSTMCRF(nn.Module):
    """Sequence tagger: embeddings → BiLSTM → linear emissions → CRF."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.char_encoder not in CHAR_ENCODERS:
            raise ValueError(f"char_encoder must be one of {CHAR_ENCODERS}")
        self.word_embed = WordEmbedding(c.num_words, c.num_extra, c.word_dim, c.word_dropout, c.freeze_words)
        in_dim = c.word_dim
        self.char_encoder: CharCNN | CharLSTM | None = None
        if c.char_encoder == "cnn":
            self.char_encoder = CharCNN(c.num_chars, c.char_dim, c.char_filters, c.char_kernel, c.dropout)
        elif c.char_encoder == "lstm":
            self.char_encoder = CharLSTM(c.num_chars, c.char_dim, c.char_filters, c.dropout)
        if self.char_encoder is not None:
            in_dim += self.char_encoder.out_dim
        self.casing_embed = nn.Embedding(len(CASINGS), c.casing_dim, padding_idx=0) if c.casing else None
        if self.casing_embed is not None:
            in_dim += c.casing_dim
        if any(not 2 < n <= 10_000_000 for n in c.feature_sizes):
            raise ValueError("feature_sizes must be between 3 and 10,000,000 (<pad>, <unk> and the values)")
        self.feature_embeds = nn.ModuleList(nn.Embedding(n, c.feature_dim, padding_idx=0) for n in c.feature_sizes)
        in_dim += c.feature_dim * len(c.feature_sizes)
        self.dropout = Dropout(c.dropout)
        self.lstm = nn.LSTM(
            in_dim, c.hidden, num_layers=c.layers, bidirectional=True, batch_first=True,
            dropout=c.dropout if c.layers > 1 else 0.0,
        )
        self.emit = nn.Linear(2 * c.hidden, c.num_tags)
        self.crf = CRF(c.num_tags) if c.use_crf else None

    # ------------------------------------------------------------------ features

    def char_features(self, chars: Tensor) -> Tensor:
        """Character-encoder output ``(N, out_dim)`` of N tokens given as ``(N, max_chars)`` ids (0 = padding).

        Each token's output depends only on its own characters, so it can be computed once per
        distinct token (as :class:`tagger.predict.Predictor` does) and reused in any sentence.
        """
        assert self.char_encoder is not None
        return self.char_encoder(chars)

    def token_features(self, words: Tensor, chars: Tensor | None, casing: Tensor) -> Tensor:
        """The part of the input features ``(..., token_dim)`` that depends on the token alone: word
        embeddings of ``words`` (...), the character-encoder output ``chars`` (..., out_dim; None
        without a character encoder) and casing embeddings (prediction caches it per distinct token)."""
        parts = [self.word_embed(words)]
        if self.char_encoder is not None:
            parts.append(chars)
        if self.casing_embed is not None:
            parts.append(self.casing_embed(casing))
        return torch.cat(parts, dim=-1)

    def column_features(self, columns: Tensor | None) -> Tensor | None:
        """Embeddings ``(..., columns * feature_dim)`` of the feature columns' value ids ``columns``
        (..., feature columns); ``None`` for a model without feature columns."""
        if not self.feature_embeds:
            return None
        if columns is None or columns.shape[-1] != len(self.feature_embeds):
            got = 0 if columns is None else columns.shape[-1]
            raise ValueError(f"the model reads {len(self.feature_embeds)} feature column(s), got {got}")
        return torch.cat([e(columns[..., i]) for i, e in enumerate(self.feature_embeds)], dim=-1)

    def features(self, words: Tensor, chars: Tensor | None, casing: Tensor, columns: Tensor | None = None) -> Tensor:
        """Input features ``(..., in_dim)``: :meth:`token_features` and :meth:`column_features`."""
        x = self.token_features(words, chars, casing)
        cols = self.column_features(columns)
        return x if cols is None else torch.cat([x, cols], dim=-1)

    def emissions(self, batch: Batch) -> Tensor:
        """Per-token tag scores, (batch, seq_len, num_tags); finite but meaningless past each length.

        With document context (``batch.context``) the BiLSTM reads each whole window and the scores
        are those of the sentences' own tokens."""
        chars = None
        if self.char_encoder is not None:
            chars = self.char_encoder(batch.chars)[batch.char_rows]  # (batch, row_len, out_dim)
        x = self.dropout(self.features(batch.words, chars, batch.casing, batch.features))  # (batch, row_len, in_dim)
        rows = batch.mask.sum(1) if batch.context is None else batch.context[:, 1]  # (batch,)
        h = run_bilstm(self.lstm, x, rows)  # (batch, row_len, 2*hidden)
        em = self.emit(self.dropout(h))  # (batch, row_len, num_tags)
        if batch.context is None:
            return em
        return sentence_rows(em, batch.context[:, 0], batch.mask.shape[1])  # (batch, seq_len, num_tags)

    def emissions_from_features(self, feats: Tensor, rows: Tensor, lengths: Tensor) -> Tensor:
        """Tag scores ``(batch, seq_len, num_tags)`` of sentences whose token features are rows of ``feats``.

        ``feats`` is ``(N, in_dim)`` (from :meth:`features`); ``rows`` ``(batch, seq_len)`` long gives
        the row of ``feats`` at each position (any value in range past a sentence's length);
        ``lengths`` ``(batch,)`` holds each sentence's length (1..seq_len). In eval mode this equals
        :meth:`emissions` of the same sentences (up to float rounding); past a length it is meaningless.
        """
        n = rows.shape[1]
        if bool((lengths < 1).any()) or bool((lengths > n).any()):
            raise ValueError("lengths must be between 1 and rows.shape[1]")
        x = self.dropout(feats[rows.to(feats.device)])  # (batch, seq_len, in_dim)
        h = run_bilstm(self.lstm, x, lengths)  # (batch, seq_len, 2*hidden)
        return self.emit(self.dropout(h))  # (batch, seq_len, num_tags)

    # ------------------------------------------------------------------ objectives

    def loss(self, batch: Batch, reduction: str = "mean") -> Tensor:
        """Negative log-likelihood (CRF) or token cross-entropy (no CRF)."""
        assert batch.tags is not None, "the loss needs gold tags"
        em = self.emissions(batch)
        if self.crf is not None:
            return self.crf(em, batch.tags, batch.mask, reduction=reduction)
        ce = nn.functional.cross_entropy(em[batch.mask], batch.tags[batch.mask], reduction="sum")
        return ce / batch.mask.shape[0] if reduction == "mean" else ce

    @torch.no_grad()
    def decode(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Best paths (batch, seq_len) and their emissions (for confidences)."""
        em = self.emissions(batch)
        if self.crf is not None:
            paths, _ = self.crf.decode(em, batch.mask)
        else:
            paths = em.argmax(-1).masked_fill(~batch.mask, 0)
        return paths, em
