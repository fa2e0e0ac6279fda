"""Tagger model directories and the :class:`Predictor` API (``tagger.load``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tagger import bundle, schemes
from tagger.errors import ModelError, TaggerError
from tagger.features import Featurizer, collate, length_batches
from tagger.model import BiLSTMCRF, ModelConfig
from tagger.vocab import Vocab, WordLookup

WEIGHTS = "model.safetensors"
EXTRA_WEIGHTS = "extra_embeddings.safetensors"
EXTRA_WORDS = "extra_words.json"


@dataclass
class Entity:
    """An entity span over token positions ``[start, end)`` with its CRF probability."""

    label: str
    start: int
    end: int
    score: float

    def to_json(self) -> dict:
        return {"label": self.label, "start": self.start, "end": self.end, "score": round(self.score, 6)}


@dataclass
class Prediction:
    """Tags for one sentence, with per-token confidences and (entity tasks) entity spans."""

    tokens: list[str]
    tags: list[str]
    scores: list[float]  # marginal probability of each predicted tag
    entities: list[Entity] = field(default_factory=list)
    nbest: list[tuple[list[str], float]] = field(default_factory=list)  # (tags, probability)


def tagger_config(model_cfg: ModelConfig, words: Vocab, chars: Vocab, labels: Vocab, *, lowercase: bool,
                  digits: bool, task: str, scheme: str, data: dict, constrained: bool, training: dict | None = None) -> dict:
    """The ``config.json`` content of a tagger model directory."""
    return {
        "model": model_cfg.to_json(),
        "vocab": {"words": words.itos, "chars": chars.itos, "labels": labels.itos,
                  "lowercase": lowercase, "digits": digits},
        "task": task,
        "scheme": scheme,
        "constrained": constrained,
        "data": data,
        "training": training or {},
    }


def save_tagger_static(model_dir: Path, config: dict, extra_words: Sequence[str], extra_matrix) -> None:
    """Write the parts of a tagger model directory that do not change during training."""
    bundle.write_config(model_dir, "tagger", config)
    bundle.save_tensors(model_dir / EXTRA_WEIGHTS, {"extra": torch.as_tensor(np.asarray(extra_matrix, dtype=np.float32))})
    from tagger.fsutil import atomic_write_bytes

    atomic_write_bytes(model_dir / EXTRA_WORDS, json.dumps(list(extra_words), ensure_ascii=False).encode("utf-8"))


def _check_vocab(cfg: dict, where: str) -> dict:
    v = cfg.get("vocab")
    if not isinstance(v, dict):
        raise ModelError(f"{where}: config.json has no vocab")
    for key in ("words", "chars", "labels"):
        items = v.get(key)
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ModelError(f"{where}: vocab.{key} must be a list of strings")
    return v


def load_tagger(path: str | Path, device: str = "cpu") -> tuple[BiLSTMCRF, dict, list[str]]:
    """Build the model from ``config.json`` and load its safetensors weights (no pickle)."""
    path = Path(path)
    cfg = bundle.read_config(path, "tagger")
    where = str(path / "config.json")
    m = cfg.get("model")
    if not isinstance(m, dict):
        raise ModelError(f"{where}: no model section")
    try:
        mc = ModelConfig.from_json(m)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: bad model section ({exc})") from None
    limits = {"num_words": 5_000_000, "num_extra": 5_000_000, "word_dim": 2048, "num_chars": 1_000_000,
              "num_tags": 10_000, "char_dim": 1024, "char_filters": 4096, "char_kernel": 31,
              "casing_dim": 256, "hidden": 4096, "layers": 8}
    for key, hi in limits.items():
        bundle.check_int(m, key, 0 if key == "num_extra" else 1, hi, where)
    if mc.char_encoder not in ("cnn", "lstm", "none"):
        raise ModelError(f"{where}: unknown char_encoder {mc.char_encoder!r}")
    if not (0.0 <= float(mc.dropout) < 1.0 and 0.0 <= float(mc.word_dropout) < 1.0):
        raise ModelError(f"{where}: dropout out of range")
    v = _check_vocab(cfg, where)
    if len(v["words"]) != mc.num_words or len(v["chars"]) != mc.num_chars or len(v["labels"]) != mc.num_tags:
        raise ModelError(f"{where}: vocabulary sizes disagree with the model section")
    if cfg.get("scheme") not in ("plain", *schemes.SCHEMES):
        raise ModelError(f"{where}: unknown scheme {cfg.get('scheme')!r}")
    model = BiLSTMCRF(mc)
    bundle.load_state(model, path / WEIGHTS)
    extra_words: list[str] = []
    if mc.num_extra:
        extra_words = bundle.read_json(path / EXTRA_WORDS, "extra word list")
        if not isinstance(extra_words, list) or len(extra_words) != mc.num_extra:
            raise ModelError(f"{path / EXTRA_WORDS}: expected a list of {mc.num_extra} words")
        t = bundle.load_tensors(path / EXTRA_WEIGHTS, {"extra": (mc.num_extra, mc.word_dim)})
        if t["extra"].dtype != torch.float32:
            raise ModelError(f"{path / EXTRA_WEIGHTS}: expected float32")
        model.extra_embed = t["extra"]
    model.to(device)
    model.eval()
    return model, cfg, [str(w) for w in extra_words]


class Predictor:
    """Tags token lists with a trained model: ``tagger.load(path).predict([[...], ...])``."""

    def __init__(self, model: BiLSTMCRF, config: dict, extra_words: Sequence[str], device: str = "cpu") -> None:
        self.model = model
        self.config = config
        v = config["vocab"]
        self.words = Vocab.from_json({"itos": v["words"], "specials": True})
        self.chars = Vocab.from_json({"itos": v["chars"], "specials": True})
        self.labels = Vocab.from_json({"itos": v["labels"], "specials": False})
        self.lookup = WordLookup(self.words, extra_words, lowercase=bool(v.get("lowercase")), digits=bool(v.get("digits", True)))
        self.featurizer = Featurizer(self.lookup, self.chars, self.labels)
        self.task: str = config["task"]
        self.scheme: str = config["scheme"]
        self.device = device

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        model, cfg, extra = load_tagger(path, device)
        return cls(model, cfg, extra, device)

    @property
    def tag_names(self) -> list[str]:
        return list(self.labels.itos)

    def predict(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 64, nbest: int = 0,
        confidences: bool = True, scheme: str | None = None,
    ) -> list[Prediction]:
        """Predict tags for each token list, in input order.

        ``scheme`` converts entity tags to another scheme (default: the training scheme).
        ``nbest`` > 0 adds the k best tag sequences with their probabilities.
        """
        if batch_size < 1:
            raise TaggerError("batch size must be at least 1")
        out: list[Prediction | None] = [None] * len(sentences)
        nonempty = [i for i, s in enumerate(sentences) if len(s) > 0]
        for i, s in enumerate(sentences):
            if len(s) == 0:
                out[i] = Prediction([], [], [])
        lengths = [len(sentences[i]) for i in nonempty]
        order = sorted(range(len(nonempty)), key=lambda j: lengths[j])
        enc = self.featurizer.encode
        with torch.inference_mode():
            for chunk in length_batches(lengths, batch_size, order):
                idx = [nonempty[j] for j in chunk]
                batch = collate([enc(sentences[i]) for i in idx], idx).to(self.device)
                for i, pred in zip(idx, self._predict_batch(batch, sentences, nbest, confidences)):
                    out[i] = pred
        if scheme is not None and self.task == "entity" and scheme != self.scheme:
            for p in out:
                p.tags = schemes.convert(p.tags, self.scheme, scheme)[0]
                p.nbest = [(schemes.convert(t, self.scheme, scheme)[0], pr) for t, pr in p.nbest]
        return out  # type: ignore[return-value]

    def _predict_batch(self, batch, sentences, nbest: int, confidences: bool) -> list[Prediction]:
        model = self.model
        em = model.emissions(batch)  # (batch, seq_len, num_tags)
        crf = model.crf
        mask = batch.mask
        lengths = mask.sum(1).tolist()
        itos = self.labels.itos
        if crf is not None:
            paths, best = crf.decode(em, mask)
            if confidences or nbest:
                marg = crf.marginals(em, mask)  # (batch, seq_len, num_tags)
                logz = crf.log_partition(em, mask, constrained=True)  # (batch,)
        else:
            probs = em.softmax(-1)
            paths = probs.argmax(-1)
            marg = probs
        tok_scores = marg.gather(2, paths.unsqueeze(-1)).squeeze(-1) if (confidences or nbest or crf is None) else None
        paths_l = paths.tolist()
        preds: list[Prediction] = []
        spans_all: list[list[schemes.Span]] = []
        for b, i in enumerate(batch.index):
            n = lengths[b]
            tags = [itos[t] for t in paths_l[b][:n]]
            scores = tok_scores[b, :n].tolist() if tok_scores is not None else [1.0] * n
            p = Prediction(list(sentences[i]), tags, scores)
            spans = schemes.to_spans(tags, self.scheme) if self.task == "entity" else []
            spans_all.append(spans)
            preds.append(p)
        if self.task == "entity":
            seg = [(b, sp) for b, spans in enumerate(spans_all) for sp in spans]
            if seg and crf is not None and confidences:
                bi = torch.tensor([b for b, _ in seg])
                st = torch.tensor([sp.start for _, sp in seg])
                en = torch.tensor([sp.end for _, sp in seg])
                width = int((en - st).max())
                seg_tags = torch.zeros(len(seg), width, dtype=torch.long)
                for k, (b, sp) in enumerate(seg):
                    seg_tags[k, : sp.end - sp.start] = paths[b, sp.start : sp.end]
                lp = crf.span_log_prob(em, mask, bi.to(em.device), st.to(em.device), en.to(em.device), seg_tags.to(em.device))
                probs_l = lp.exp().tolist()
            else:
                probs_l = [1.0] * len(seg)
            for (b, sp), pr in zip(seg, probs_l):
                preds[b].entities.append(Entity(sp.label, sp.start, sp.end, float(min(1.0, pr))))
        if nbest and crf is not None:
            kpaths, kscores = crf.nbest(em, mask, nbest)  # (batch, k, seq_len), (batch, k)
            kp = kpaths.tolist()
            kprob = (kscores - logz.unsqueeze(1)).exp().tolist()
            for b, p in enumerate(preds):
                n = lengths[b]
                for k in range(nbest):
                    if math.isfinite(kscores[b, k].item()):
                        p.nbest.append(([itos[t] for t in kp[b][k][:n]], kprob[b][k]))
        return preds
