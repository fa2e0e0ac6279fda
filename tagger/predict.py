"""Tagger model directories and the :class:`Predictor` API (``tagger.load``)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from tagger import modeldir, prediction, schemes
from tagger.collector import paused_gc
from tagger.errors import ModelError, TaggerError
from tagger.nn.bilstm_crf import BiLSTMCRF, ModelConfig, sentence_rows
from tagger.nn.packed import PackedLayout
from tagger.prediction import Entity, ModelVocabulary, Prediction
from tagger.spans import SpanReader
from tagger.threads import governed
from tagger.threads import poll as poll_threads
from tagger.tokens import BATCH_TOKENS, casing, length_batches
from tagger.vocab import Vocab, WordLookup

WEIGHTS = "model.safetensors"
EXTRA_WEIGHTS = "extra_embeddings.safetensors"
EXTRA_WORDS = "extra_words.json"


def tagger_config(model_cfg: ModelConfig, words: Vocab, chars: Vocab, labels: Vocab, *, lowercase: bool,
                  digits: bool, task: str, scheme: str, data: dict, constrained: bool,
                  training: dict | None = None, features: Sequence[tuple[str, Vocab]] = ()) -> dict:
    """The ``config.json`` content of a tagger model directory (``features``: each feature
    column the model reads, as prepare named it, and its values)."""
    return {
        "model": model_cfg.to_json(),
        "vocab": {"words": words.itos, "chars": chars.itos, "labels": labels.itos,
                  "lowercase": lowercase, "digits": digits,
                  "features": [{"column": name, "values": v.itos} for name, v in features]},
        "task": task,
        "scheme": scheme,
        "constrained": constrained,
        "data": data,
        "training": training or {},
    }


def save_tagger_static(model_dir: Path, config: dict, extra_words: Sequence[str], extra_matrix) -> None:
    """Write the parts of a tagger model directory that do not change during training."""
    modeldir.write_config(model_dir, "tagger", config)
    extra = torch.as_tensor(np.asarray(extra_matrix, dtype=np.float32))
    modeldir.save_tensors(model_dir / EXTRA_WEIGHTS, {"extra": extra})
    from tagger.fsutil import atomic_write_bytes

    atomic_write_bytes(model_dir / EXTRA_WORDS, json.dumps(list(extra_words), ensure_ascii=False).encode("utf-8"))


CONFIG_KEYS = {"format", "format_version", "kind", "tagger_version", "model", "vocab", "task", "scheme",
               "constrained", "data", "training"}


def _check_vocab(cfg: dict, where: str) -> dict:
    v = cfg.get("vocab")
    if not isinstance(v, dict):
        raise ModelError(f"{where}: config.json has no vocab")
    for key in ("words", "chars", "labels"):
        items = v.get(key)
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ModelError(f"{where}: vocab.{key} must be a list of strings")
    features = v.get("features", [])
    if not isinstance(features, list) or not all(
        isinstance(f, dict) and set(f) == {"column", "values"} and isinstance(f["column"], str)
        and isinstance(f["values"], list) and all(isinstance(x, str) for x in f["values"]) for f in features
    ):
        raise ModelError(f"{where}: vocab.features must be a list of {{column, values}} objects")
    return v


def load_tagger(path: str | os.PathLike, device: str = "cpu") -> tuple[BiLSTMCRF, dict, list[str]]:
    """Build the model from ``config.json`` and load its safetensors weights (no pickle)."""
    path = Path(path)
    cfg, mc, where = modeldir.read_model_section(path, "tagger", ModelConfig)
    unknown = sorted(set(cfg) - CONFIG_KEYS)
    if unknown:
        raise ModelError(f"{where}: unknown configuration keys: {', '.join(map(str, unknown[:5]))}")
    v = _check_vocab(cfg, where)
    if len(v["words"]) != mc.num_words or len(v["chars"]) != mc.num_chars or len(v["labels"]) != mc.num_tags \
            or [len(f["values"]) for f in v.get("features", [])] != mc.feature_sizes:
        raise ModelError(f"{where}: vocabulary sizes disagree with the model section")
    if cfg.get("scheme") not in ("plain", *schemes.SCHEMES):
        raise ModelError(f"{where}: unknown scheme {cfg.get('scheme')!r}")
    if cfg.get("task") not in ("entity", "plain"):
        raise ModelError(f"{where}: unknown task {cfg.get('task')!r}")
    extra_words: list[str] = []
    others: dict[str | os.PathLike, dict] = {}
    if mc.num_extra:
        extra_words = modeldir.read_json(path / EXTRA_WORDS, "extra word list")
        if not isinstance(extra_words, list) or len(extra_words) != mc.num_extra or not all(
            isinstance(w, str) for w in extra_words
        ):
            raise ModelError(f"{path / EXTRA_WORDS}: expected a list of {mc.num_extra} words")
        # float32, or float16 (a shrunk export: tagger export --float16), used as float32
        half = modeldir.header_dtype(path / EXTRA_WEIGHTS, "extra") == "F16"
        dtype = torch.float16 if half else torch.float32
        others[path / EXTRA_WEIGHTS] = {"extra": ((mc.num_extra, mc.word_dim), dtype)}
    # Names, shapes and dtypes are checked from the safetensors headers before anything is allocated.
    model = modeldir.build_checked(lambda: BiLSTMCRF(mc), path / WEIGHTS, others)
    modeldir.load_state(model, path / WEIGHTS)
    if mc.num_extra:
        t = modeldir.load_tensors(path / EXTRA_WEIGHTS, {"extra": (mc.num_extra, mc.word_dim)})
        if t["extra"].dtype != dtype or not torch.isfinite(t["extra"]).all():
            raise ModelError(f"{path / EXTRA_WEIGHTS}: expected finite float32 or float16 values")
        model.word_embed.set_extra(t["extra"].float())
    model.to(device)
    model.eval()
    return model, cfg, [str(w) for w in extra_words]


#: Tokens of whole batches whose input features are built, and whose CRF decoding runs, at once in
#: :meth:`Predictor.predict` (packed layout: as many steps as the block's longest sentence).
BLOCK_TOKENS = 1 << 14


class TokenCache:
    """Input features of tokens for prediction, with a per-token cache.

    Keeps, per distinct token, its word id, casing class and character-encoder output (a row
    of a table); the character encoder runs once per new token, on tokens grouped by length.
    The cache is emptied when it would grow past ``size`` tokens and whenever the character
    encoder's weights change (checked on every call); in training mode nothing is kept.
    Thread-safe.
    """

    def __init__(self, model: BiLSTMCRF, lookup: WordLookup, char_ids: Callable[[str], list[int]],
                 device: str = "cpu", size: int = 100_000) -> None:
        self.model = model
        self.lookup = lookup
        self.char_ids = char_ids  # token -> list of character ids
        self.device = device
        self.size = size
        self._info: dict[str, int] = {}  # token -> its row in the tables below
        self._words: torch.Tensor | None = None  # (rows,) word ids
        self._casing: torch.Tensor | None = None  # (rows,) casing classes
        self._table: torch.Tensor | None = None  # (rows, char out_dim) character-encoder outputs
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._info.clear()

    def __len__(self) -> int:
        return len(self._info)

    def _weights_key(self) -> bytes:
        """A digest of the character encoder's weights: the cached outputs are stale when it changes.

        Weights change in place (optimizer steps, ``load_state_dict``, ``copy_``) without any
        public torch notice, so their bytes are hashed; the encoder is small (tens of kB), and
        this runs once per block of tokens, far cheaper than encoding them.
        """
        enc = self.model.char_encoder
        if enc is None:
            return b""
        digest = hashlib.blake2b(digest_size=16)
        for p in enc.parameters():
            digest.update(p.detach().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
        return digest.digest()

    def _grow(self, need: int) -> None:
        """Make room for ``need`` rows in the per-token tables."""
        have = 0 if self._words is None else self._words.shape[0]
        if need <= have:
            return
        rows = max(need, 1024, 2 * have)
        enc = self.model.char_encoder
        grown = (torch.zeros(rows, dtype=torch.long), torch.zeros(rows, dtype=torch.long),
                 None if enc is None else torch.zeros(rows, enc.out_dim, device=self.device))
        base = len(self._info)
        for old, new in zip((self._words, self._casing, self._table), grown, strict=True):
            if old is not None and new is not None and base:
                new[:base] = old[:base]
        self._words, self._casing, self._table = grown

    def _add(self, new: list[str]) -> None:
        """Word id, casing class and character-encoder output of tokens not in the cache."""
        info, model = self._info, self.model
        base = len(info)
        self._grow(base + len(new))
        assert self._words is not None and self._casing is not None
        if self._table is not None:
            ids = [self.char_ids(t) for t in new]
            order = sorted(range(len(new)), key=lambda i: len(ids[i]))
            # Groups of similar lengths, each padded to its longest: 1,024 tokens a group encoded the 9.5k
            # distinct tokens of eng.testb in 0.03 s, groups of 4,096 (wider padding) in 0.05 s.
            for k in range(0, len(order), 1024):
                grp = order[k : k + 1024]
                width = max(1, len(ids[grp[-1]]))
                pad = [0] * width
                flat = [c for i in grp for c in (ids[i] + pad)[:width]]
                chars = torch.tensor(flat, dtype=torch.long, device=self.device).view(len(grp), width)
                rows = torch.tensor([base + i for i in grp], device=self.device)
                self._table[rows] = model.char_features(chars)
        self._words[base : base + len(new)] = torch.tensor(self.lookup.lookup(new), dtype=torch.long)
        self._casing[base : base + len(new)] = torch.tensor([casing(t) for t in new], dtype=torch.long)
        for i, t in enumerate(new):
            info[t] = base + i

    def features(self, tokens: Sequence[str]) -> torch.Tensor:
        """``(len(tokens), token_dim)`` input features of the tokens (:meth:`BiLSTMCRF.token_features`)."""
        model, dev = self.model, self.device
        if not tokens:
            empty = torch.zeros(0, dtype=torch.long, device=dev)
            enc = model.char_encoder
            with torch.inference_mode():
                return model.token_features(empty, None if enc is None else torch.zeros(0, enc.out_dim, device=dev),
                                            empty)
        with self._lock, torch.inference_mode():
            key = self._weights_key()
            if key != self._key or model.training:
                self._info.clear()
                self._key = key
            info = self._info
            new = [t for t in dict.fromkeys(tokens) if t not in info]
            if new:
                if len(info) + len(new) > self.size:
                    info.clear()
                    new = list(dict.fromkeys(tokens))
                self._add(new)
            assert self._words is not None and self._casing is not None
            rows = torch.tensor([info[t] for t in tokens], dtype=torch.long)  # (tokens,)
            chars = None if self._table is None else self._table[rows.to(dev)]
            if model.training:
                info.clear()
            return model.token_features(self._words[rows].to(dev), chars, self._casing[rows].to(dev))


class Predictor(ModelVocabulary):
    """Tags token lists with a trained model: ``tagger.load(path).predict([[...], ...])``.

    ``threads`` (attribute): torch CPU threads while predicting; 0 (the default) = the cores
    other processes leave free (:mod:`tagger.threads`), unless the caller is already inside a
    :class:`tagger.threads.Threads`.
    """

    def __init__(self, model: BiLSTMCRF, config: dict, extra_words: Sequence[str], device: str = "cpu") -> None:
        super().__init__(config, extra_words)
        self.model = model
        self.device = device
        self.cache = TokenCache(model, self.lookup, self.featurizer.char_ids, device)
        itos = self.labels.itos
        self._o_id = itos.index("O") if "O" in itos else -1
        self._spans = SpanReader(itos) if self.task == "entity" else None

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> Predictor:
        model, cfg, extra = load_tagger(path, device)
        return cls(model, cfg, extra, device)

    @property
    def has_crf(self) -> bool:
        """Whether the model has a CRF layer (n-best lists and CRF probabilities need one)."""
        return self.model.crf is not None

    def predict(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 256, nbest: int = 0,
        confidences: bool = True, scheme: str | None = None, token_scores: bool = True,
        batch_tokens: int = BATCH_TOKENS, features: Sequence[Sequence[Sequence[str]]] | None = None,
    ) -> list[Prediction]:
        """Predict tags for each token list, in input order.

        ``features``: a model with feature columns needs each sentence's values of them (one list
        per column, a value per token, in the model's order: :attr:`feature_columns`), here or
        with the sentences (:class:`~tagger.prediction.SentenceTokens`). A model with document
        context (:attr:`context`) reads each sentence's ``left`` and ``right`` tokens
        (:func:`tagger.context.with_context` adds them, with their feature values where the
        sentences have some).

        ``scheme`` converts entity tags to another scheme (default: the training scheme).
        ``nbest`` > 0 adds the k best tag sequences with their probabilities.
        ``token_scores=False`` skips the per-token marginals (``scores`` is then ``[]``): less
        work when only tags, entities or n-best lists are needed.
        ``confidences=False`` skips the CRF probabilities: token and entity scores are 1.0.

        Sentences are sorted by length and tagged in batches of at most ``batch_size`` sentences and
        ``batch_tokens`` padded token slots (:func:`length_batches`); input features
        come from :attr:`cache` (the character encoder runs once per distinct token); CRF
        probabilities are computed in float64 (:mod:`tagger.nn.crf`), entity probabilities only
        for sentences that have entities.
        """
        if features is not None:  # the values travel with their sentences (and into their rows)
            if len(features) != len(sentences):
                raise TaggerError(f"{len(sentences)} sentences but feature values for {len(features)}")
            sentences = [prediction.SentenceTokens(s, f, getattr(s, "left", None), getattr(s, "right", None),
                                                   getattr(s, "reach", 0))
                         for s, f in zip(sentences, features, strict=True)]
        out, lengths, order = prediction.start(sentences, batch_size, batch_tokens)
        rows, offsets = self.rows(sentences)  # what the BiLSTM reads of each (with its context), and where it starts
        row_lengths = [len(r) for r in rows]
        order.sort(key=lambda i: -row_lengths[i])
        columns = self.column_ids(rows, None)  # (row tokens, columns) value ids, or None
        batches = length_batches(row_lengths, batch_size, order, batch_tokens)
        with torch.inference_mode(), governed(self.threads), paused_gc():
            k = 0
            while k < len(batches):
                poll_threads()  # torch's thread count follows the machine's load (tagger.threads)
                block: list[list[int]] = []
                tokens = 0
                while k < len(batches) and (not block or tokens < BLOCK_TOKENS):
                    block.append(batches[k])
                    tokens += sum(row_lengths[i] for i in batches[k])
                    k += 1
                flat = [t for chunk in block for i in chunk for t in rows[i]]
                feats = self.cache.features(flat)  # (tokens, token_dim)
                if columns is not None:
                    ids = torch.cat([columns[i] for chunk in block for i in chunk]).to(self.device)  # (tokens, columns)
                    cols = self.model.column_features(ids)  # (tokens, columns * feature_dim)
                    assert cols is not None  # the model has feature columns, as the ids say
                    feats = torch.cat([feats, cols], dim=1)  # (tokens, in_dim)
                ems, kept, start = [], [], 0
                for chunk in block:
                    em, mask = self._chunk_emissions(feats, start, [row_lengths[i] for i in chunk],
                                                     [lengths[i] for i in chunk],
                                                     None if offsets is None else [offsets[i] for i in chunk])
                    start += sum(row_lengths[i] for i in chunk)
                    ems.append(em[mask])  # (tokens, T)
                    if nbest:
                        kept.append((em, mask, chunk))
                members = [i for chunk in block for i in chunk]
                preds = self._predict_block(torch.cat(ems), [lengths[i] for i in members],
                                            [sentences[i] for i in members], confidences, token_scores,
                                            marginals=token_scores and (confidences or nbest > 0))
                for i, pred in zip(members, preds, strict=True):
                    out[i] = pred
                at = 0
                for em, mask, chunk in kept:
                    self._nbest(em, mask, preds[at : at + len(chunk)], nbest)
                    at += len(chunk)
        return prediction.finish(out, self.task, self.scheme, scheme)

    def rows(self, sentences: Sequence[Sequence[str]]) -> tuple[Sequence[Sequence[str]], list[int] | None]:
        """What the BiLSTM reads for each sentence and where the sentence starts in it: the sentences
        themselves (``None``), or, for a model with document context, each with up to ``context``
        tokens of its own context on each side (:class:`~tagger.prediction.SentenceTokens` ``left`` /
        ``right``; none when a sentence has none)."""
        n = self.model.config.context
        if not n:
            return sentences, None
        rows, offsets = [], []
        for s in sentences:
            left, right = getattr(s, "left", None) or [], getattr(s, "right", None) or []
            left, right = left[max(0, len(left) - n):], right[:n]
            rows.append(prediction.join([left, s, right]))
            offsets.append(len(left))
        return rows, offsets

    def _chunk_emissions(self, feats: torch.Tensor, start: int, row_lengths: list[int], lengths: list[int],
                         offsets: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Emissions ``(batch, seq_len, T)`` and mask of one batch whose rows are the consecutive rows of
        ``feats`` from ``start`` (``row_lengths`` decreasing); with ``offsets``, of each row's sentence."""
        lens = torch.tensor(row_lengths)  # (batch,)
        starts = torch.tensor([0, *itertools.accumulate(row_lengths[:-1])]) + start  # (batch,)
        pos = torch.arange(row_lengths[0])  # (row_len,)
        rows = torch.where(pos[None, :] < lens[:, None], starts[:, None] + pos[None, :], 0)  # rows of feats
        em = self.model.emissions_from_features(feats, rows, lens)  # (batch, row_len, T)
        if offsets is not None:
            em = sentence_rows(em, torch.tensor(offsets, device=em.device), max(lengths))  # (batch, seq_len, T)
        own = torch.arange(em.shape[1], device=em.device)  # (seq_len,)
        return em, own[None, :] < torch.tensor(lengths, device=em.device)[:, None]

    def column_ids(self, sentences: Sequence[Sequence[str]],
                   features: Sequence[Sequence[Sequence[str]]] | None) -> list[torch.Tensor] | None:
        """Per sentence, ``(tokens, feature columns)`` value ids (see :meth:`column_values`)."""
        values = self.column_values(sentences, features)
        if values is None:
            return None
        n = len(self.feature_columns)
        return [torch.tensor(v, dtype=torch.long).reshape(n, -1).t() for v in values]

    def _predict_block(self, em: torch.Tensor, lengths: list[int], sents: Sequence[Sequence[str]],
                       confidences: bool, token_scores: bool, marginals: bool) -> list[Prediction]:
        """Predictions for sentences whose emissions are ``em`` ``(tokens, T)`` (those of sentence 0,
        then sentence 1, ...): one packed-layout pass of each CRF algorithm for them all. Token
        scores are the tags' marginal probabilities if ``marginals``, else 1 (or none)."""
        crf = self.model.crf
        itos = self.labels.itos
        layout = PackedLayout(lengths, em.device)
        if crf is not None:
            paths, _ = crf.decode_flat(em, layout)  # (tokens,)
            probs = crf.marginals_flat(em.double(), layout) if marginals else None  # (tokens, T)
        else:
            probs = em.softmax(-1)  # (tokens, T)
            paths = probs.argmax(-1)
        paths_l = paths.tolist()
        tok = probs.gather(1, paths[:, None]).squeeze(1).tolist() if token_scores and probs is not None else None
        preds: list[Prediction] = []
        at = 0
        for s, n in zip(sents, lengths, strict=True):
            scores = tok[at : at + n] if tok is not None else ([1.0] * n if token_scores else [])
            preds.append(Prediction(list(s), [itos[t] for t in paths_l[at : at + n]], scores))
            at += n
        if self.task == "entity":
            self._entities(em, paths, layout, lengths, preds, scored=crf is not None and confidences)
        return preds

    def _nbest(self, em: torch.Tensor, mask: torch.Tensor, preds: list[Prediction], nbest: int) -> None:
        """Add the ``nbest`` best tag sequences of a batch (``em`` ``(batch, seq_len, T)``) to ``preds``."""
        crf = self.model.crf
        if crf is None:
            return
        itos = self.labels.itos
        # Float64 emissions: path scores and log Z in float64 (float32 path scores were off by up to ~6e-5).
        kpaths, klogp = crf.nbest(em.double(), mask, nbest, normalize=True)  # (batch, k, seq_len), (batch, k)
        kp = kpaths.tolist()
        finite = torch.isfinite(klogp).tolist()
        kprob = klogp.exp().tolist()
        for b, p in enumerate(preds):
            n = len(p.tags)
            for q in range(nbest):
                if finite[b][q]:
                    p.nbest.append(([itos[t] for t in kp[b][q][:n]], kprob[b][q]))

    def _entities(self, em: torch.Tensor, paths: torch.Tensor, layout: PackedLayout, lengths: list[int],
                  preds: list[Prediction], scored: bool) -> None:
        """Entity spans of the predicted tags (flat ``paths`` of sentences laid out by ``layout``), with
        their CRF probabilities if ``scored`` (one pass over the sentences that have entities)."""
        assert self._spans is not None
        found = [(b, sp) for b, spans in enumerate(self._spans.flat(paths, lengths)) for sp in spans]
        if not found:
            return
        probs = [1.0] * len(found)
        crf = self.model.crf
        if scored and crf is not None:
            dev = em.device
            owner = torch.tensor([b for b, _ in found], device=dev)  # (spans,) sentence of each span
            rows = torch.zeros(len(preds), dtype=torch.bool, device=dev)  # (S,) sentences with entities
            rows[owner] = True
            keep = rows[layout.sentence]  # (tokens,)
            sub = PackedLayout(layout.lengths[rows], dev)
            sentence = (torch.cumsum(rows, 0) - 1)[owner]  # (spans,) its sentence's place among those kept
            start = torch.tensor([sp.start for _, sp in found], device=dev)  # (spans,)
            end = torch.tensor([sp.end for _, sp in found], device=dev)  # (spans,)
            steps = torch.arange(int((end - start).max()), device=dev)  # (W,)
            pos = sub.first[sentence][:, None] + torch.minimum(start[:, None] + steps, (end - 1)[:, None])  # (spans, W)
            sub_paths = paths[keep]  # (kept tokens,)
            log_p = crf.span_log_prob_flat(em[keep].double(), sub, sentence, start, end, sub_paths[pos])
            probs = log_p.exp().tolist()
        for (b, sp), pr in zip(found, probs, strict=True):
            preds[b].entities.append(Entity(sp.label, sp.start, sp.end, min(1.0, pr)))
