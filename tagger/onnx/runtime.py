"""Prediction with an exported ONNX directory (``tagger export --format onnx``), without torch.

:class:`OnnxPredictor` offers what :class:`tagger.predict.Predictor` offers to ``tagger annotate`` and
the server (``predict``, ``task``, ``scheme``, ``config``, ``tag_names``, ``threads``, ``has_crf``):
onnxruntime computes the emissions (:mod:`tagger.onnx.export` describes the graph), numpy decodes
them (:mod:`tagger.onnx.decode`). Only numpy, onnxruntime and torch-free tagger modules are imported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tagger import prediction, schemes
from tagger.errors import ModelError, TaggerError
from tagger.fsutil import read_json
from tagger.onnx import decode
from tagger.prediction import Entity, ModelVocabulary, Prediction
from tagger.tokens import BATCH_TOKENS, casing, length_batches

#: ``format`` and ``format_version`` of an ONNX directory's config.json (:mod:`tagger.onnx.export` writes it)
ONNX_FORMAT = "tagger-onnx"
ONNX_FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
EXTRA_WORDS = "extra_words.json"


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise TaggerError("the onnx runtime needs the onnxruntime package: pip install 'tagger[onnx]'") from None
    return onnxruntime


def _matrix(value, shape: tuple[int, ...], dtype, where: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        a = None
    if a is None or a.shape != shape or (a.dtype.kind == "f" and not np.isfinite(a).all()):
        raise ModelError(f"{where}: expected {'x'.join(map(str, shape))} finite values")
    return a


def read_onnx_dir(path: str | os.PathLike) -> tuple[dict, list[str], decode.Potentials | None]:
    """Read and check an ONNX directory's config.json and extra words: (config, extra words, CRF)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory (expected an ONNX export directory)")
    where = str(path / "config.json")
    cfg = read_json(path / "config.json", "config.json")
    if not isinstance(cfg, dict) or cfg.get("format") != ONNX_FORMAT:
        if isinstance(cfg, dict) and cfg.get("format") == "tagger-model":
            raise ModelError(f"{path}: a torch model directory: export it first (tagger export MODEL --format onnx "
                             "--out DIR), or use --runtime torch")
        raise ModelError(f"{where}: not an ONNX tagger export")
    if cfg.get("format_version") != ONNX_FORMAT_VERSION:
        raise ModelError(f"{where}: unsupported ONNX export version {cfg.get('format_version')!r}")
    v, m = cfg.get("vocab"), cfg.get("model")
    if not isinstance(v, dict) or not isinstance(m, dict):
        raise ModelError(f"{where}: no vocab or model section")
    for key in ("words", "chars", "labels"):
        items = v.get(key)
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ModelError(f"{where}: vocab.{key} must be a list of strings")
    sizes = (m.get("num_words"), m.get("num_chars"), m.get("num_tags"))
    if sizes != (len(v["words"]), len(v["chars"]), len(v["labels"])):
        raise ModelError(f"{where}: vocabulary sizes disagree with the model section")
    if cfg.get("scheme") not in ("plain", *schemes.SCHEMES):
        raise ModelError(f"{where}: unknown scheme {cfg.get('scheme')!r}")
    if cfg.get("task") not in ("entity", "plain"):
        raise ModelError(f"{where}: unknown task {cfg.get('task')!r}")
    n_extra = m.get("num_extra")
    if not isinstance(n_extra, int) or isinstance(n_extra, bool) or n_extra < 0:
        raise ModelError(f"{where}: model.num_extra must be a non-negative integer")
    extra: list[str] = []
    if n_extra:
        extra = read_json(path / EXTRA_WORDS, "extra word list")
        if not isinstance(extra, list) or len(extra) != n_extra or not all(isinstance(w, str) for w in extra):
            raise ModelError(f"{path / EXTRA_WORDS}: expected a list of {n_extra} words")
    crf = cfg.get("crf")
    pot = None
    if crf is not None:
        t = len(v["labels"])
        if not isinstance(crf, dict):
            raise ModelError(f"{where}: bad crf section")
        pot = decode.Potentials(
            _matrix(crf.get("start"), (t,), np.float32, f"{where}: crf.start"),
            _matrix(crf.get("transitions"), (t, t), np.float32, f"{where}: crf.transitions"),
            _matrix(crf.get("end"), (t,), np.float32, f"{where}: crf.end"),
            _matrix(crf.get("start_allowed"), (t,), bool, f"{where}: crf.start_allowed"),
            _matrix(crf.get("transitions_allowed"), (t, t), bool, f"{where}: crf.transitions_allowed"),
            _matrix(crf.get("end_allowed"), (t,), bool, f"{where}: crf.end_allowed"),
        )
    if not (path / MODEL_FILE).is_file():
        raise ModelError(f"{path / MODEL_FILE}: missing ONNX model")
    return cfg, [str(w) for w in extra], pot


class OnnxPredictor(ModelVocabulary):
    """Tags token lists with an exported ONNX directory: ``OnnxPredictor.load(path).predict([[...], ...])``.

    ``threads`` (attribute): onnxruntime's intra-op threads (0 = its default, the physical cores).
    The session is made on first use, and again in a forked child (an inherited session's
    thread pool is not fork-safe), so forked annotate workers can share a loaded predictor.
    """

    runtime = "onnx"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        config, extra_words, self.potentials = read_onnx_dir(self.path)
        super().__init__(config, extra_words)
        self._session = None
        self._session_key: tuple[int, int] | None = None
        self._inherited: list = []  # sessions of a parent process: never used, never destroyed here
        self._lock = threading.Lock()
        self._spans = decode.SpanReader(self.labels.itos) if self.task == "entity" else None
        _ort()
        self._get_session()  # a bad model.onnx fails here, at load time

    @classmethod
    def load(cls, path: str | os.PathLike) -> OnnxPredictor:
        return cls(path)

    @property
    def has_crf(self) -> bool:
        return self.potentials is not None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_session=None, _session_key=None, _inherited=[], _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _get_session(self):
        key = (os.getpid(), self.threads)
        if self._session is not None and self._session_key == key:
            return self._session
        if self._session is not None and self._session_key is not None and self._session_key[0] != key[0]:
            self._inherited.append(self._session)  # forked: its thread pool is gone with the parent's threads
        ort = _ort()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(0, int(self.threads))
        opts.inter_op_num_threads = 1
        # No busy-waiting between the graph's ops: on a machine shared with other work (or with
        # annotate's reader thread), spinning threads took cores from the threads doing the work.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(self.path / MODEL_FILE), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path / MODEL_FILE}: cannot load the ONNX model "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        self._session_key = key
        return self._session

    def emissions(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """Emissions ``(B, L, T)`` float32 of non-empty sentences (L = the longest)."""
        index: dict[str, int] = {}
        rows = np.zeros((len(sentences), max(len(s) for s in sentences)), dtype=np.int64)
        for b, s in enumerate(sentences):
            rows[b, : len(s)] = [index.setdefault(t, len(index)) for t in s]
        tokens = list(index)
        ids = [self.featurizer.char_ids(t) for t in tokens]
        width = max(1, *map(len, ids))
        chars = np.zeros((len(tokens), width), dtype=np.int64)
        for i, c in enumerate(ids):
            chars[i, : len(c)] = c
        feeds = {"token_words": np.asarray(self.lookup.lookup(tokens), dtype=np.int64), "token_chars": chars,
                 "token_casing": np.asarray([casing(t) for t in tokens], dtype=np.int64), "rows": rows,
                 "lengths": np.asarray([len(s) for s in sentences], dtype=np.int64)}
        with self._lock:
            session = self._get_session()
        return session.run(["emissions"], feeds)[0]

    def predict(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 256, nbest: int = 0,
        confidences: bool = True, scheme: str | None = None, token_scores: bool = True,
        batch_tokens: int = BATCH_TOKENS, features: Sequence[Sequence[Sequence[str]]] | None = None,
    ) -> list[Prediction]:
        """Predict tags for each token list, in input order: :meth:`tagger.predict.Predictor.predict`
        (exports have no feature columns: ``features`` must be ``None``)."""
        self.column_values(sentences, features)  # refuses feature values
        out, lengths, order = prediction.start(sentences, batch_size, batch_tokens)
        for batch in length_batches(lengths, batch_size, order, batch_tokens):
            sents = [sentences[i] for i in batch]
            preds = self._decode(self.emissions(sents), sents, nbest, confidences, token_scores)
            for i, p in zip(batch, preds, strict=True):
                out[i] = p
        return prediction.finish(out, self.task, self.scheme, scheme)

    def _decode(self, em: np.ndarray, sents: Sequence[Sequence[str]], nbest: int, confidences: bool,
                token_scores: bool) -> list[Prediction]:
        itos = self.labels.itos
        lens = np.asarray([len(s) for s in sents], dtype=np.int64)
        pot = self.potentials
        fb = None
        tok = None
        if pot is not None:
            paths, _ = decode.viterbi(em, lens, pot)
            if token_scores and (confidences or nbest > 0):
                fb = decode.forward_backward(em, lens, pot)
                alphas, betas, log_z = fb
                assert betas is not None
                best = np.take_along_axis(alphas + betas, paths[:, :, None], 2)[:, :, 0]  # (B, L)
                tok = np.exp(best - log_z[:, None])
        else:
            probs = decode.softmax(em)
            paths = probs.argmax(-1)
            if token_scores:
                tok = np.take_along_axis(probs, paths[:, :, None], 2)[:, :, 0]
        preds = []
        paths_l = paths.tolist()
        tok_l = tok.tolist() if tok is not None else None
        for b, (s, n) in enumerate(zip(sents, lens.tolist(), strict=True)):
            scores = tok_l[b][:n] if tok_l is not None else ([1.0] * n if token_scores else [])
            preds.append(Prediction(list(s), [itos[t] for t in paths_l[b][:n]], scores))
        if self._spans is not None:
            found = [(b, sp) for b, p in enumerate(preds) for sp in self._spans.spans(paths_l[b][: len(p.tags)])]
            probs_e = [1.0] * len(found)
            if found and pot is not None and confidences:
                sent = np.asarray([b for b, _ in found], dtype=np.int64)
                sub_em, sub_paths = em, paths
                if fb is None:  # one pass over the sentences that have entities
                    keep, sent = np.unique(sent, return_inverse=True)
                    sub_em, sub_paths = em[keep], paths[keep]
                    fb = decode.forward_backward(sub_em, lens[keep], pot)
                width = max(sp.end - sp.start for _, sp in found)
                start = np.asarray([sp.start for _, sp in found], dtype=np.int64)
                end = np.asarray([sp.end for _, sp in found], dtype=np.int64)
                pos = np.minimum(start[:, None] + np.arange(width), (end - 1)[:, None])
                log_p = decode.span_log_prob(sub_em, fb, pot, sent, start, end, sub_paths[sent[:, None], pos])
                probs_e = np.exp(log_p).tolist()
            for (b, sp), pr in zip(found, probs_e, strict=True):
                preds[b].entities.append(Entity(sp.label, sp.start, sp.end, min(1.0, pr)))
        if nbest and pot is not None:
            em64 = em.astype(np.float64)
            if fb is not None and fb[0].shape[0] == len(sents):
                log_z = fb[2]
            else:
                log_z = decode.forward_backward(em64, lens, pot, betas=False)[2]
            kpaths, klogp = decode.nbest(em64, lens, pot, nbest, log_z=log_z)
            kp = kpaths.tolist()
            kprob = np.exp(klogp).tolist()
            finite = np.isfinite(klogp).tolist()
            for b, p in enumerate(preds):
                n = len(p.tags)
                for q in range(nbest):
                    if finite[b][q]:
                        p.nbest.append(([itos[t] for t in kp[b][q][:n]], kprob[b][q]))
        return preds
