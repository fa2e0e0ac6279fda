"""``tagger export``: a trained tagger as an ONNX directory, or as a smaller torch model directory.

The ONNX graph is the emission network of :meth:`tagger.nn.bilstm_crf.BiLSTMCRF.emissions_from_features`,
built node by node with :mod:`onnx.helper` (not traced: ONNX's ``LSTM`` op takes per-sequence lengths,
``sequence_lens``, and runs both directions of every sentence exactly within its own length, where
the padded trick of :func:`tagger.nn.padded_lstm.run_bilstm` would not trace into a graph)::

    inputs   token_words (N,) int64      word id of each distinct token
             token_chars (N, C) int64    its character ids, 0-padded (C >= 1; a token may have none)
             token_casing (N,) int64     its casing class
             rows (B, L) int64           the token (0..N-1) at each position of each sentence
             lengths (B,) int64          sentence lengths, 1..L
    output   emissions (B, L, T) float32 (meaningless past each length)

Every axis is dynamic. Word vectors: trainable rows and the frozen pretrained-only ("extra") rows are
two tables (ids ``>= num_words`` read the second), the extra one optionally float16 (cast after the
lookup). PyTorch's LSTM gates are ``i f g o``, ONNX's ``i o f c``: the weight blocks are reordered.

The directory (:data:`ONNX_FORMAT`)::

    config.json        the model's config.json (vocabularies, task, scheme, model section) with
                       format "tagger-onnx", the CRF's scores and constraints, and what was exported
    model.onnx         the emission network
    extra_words.json   the pretrained-only words (the extra table's rows), if any

Decoding (Viterbi, marginals, span probabilities, n-best) runs on the emissions in numpy
(:mod:`tagger.onnx.decode`, :class:`tagger.onnx.runtime.OnnxPredictor`).

Both formats can shrink the extra rows: ``max_extra_words`` keeps the N first (pretrained files list
words by frequency, and :func:`tagger.embeddings.extra_words` keeps their order), ``float16`` stores
them in half precision.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from tagger.errors import TaggerError
from tagger.onnx.runtime import MODEL_FILE, ONNX_FORMAT, ONNX_FORMAT_VERSION

OPSET = 17
FORMATS = ("onnx", "torch")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise TaggerError("exporting to ONNX needs the onnx package: pip install 'tagger[onnx]'") from None
    return onnx


def _lstm_weights(lstm, layer: int, hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX ``W`` (2, 4H, in), ``R`` (2, 4H, H), ``B`` (2, 8H) of one bidirectional layer of ``lstm``."""
    order = np.concatenate([np.arange(k * hidden, (k + 1) * hidden) for k in (0, 3, 1, 2)])  # ifgo -> iofc
    ws, rs, bs = [], [], []
    def get(name: str, suffix: str) -> np.ndarray:
        return getattr(lstm, f"{name}_l{layer}{suffix}").detach().cpu().numpy().astype(np.float32)

    for suffix in ("", "_reverse"):

        ws.append(get("weight_ih", suffix)[order])
        rs.append(get("weight_hh", suffix)[order])
        if lstm.bias:
            bs.append(np.concatenate([get("bias_ih", suffix)[order], get("bias_hh", suffix)[order]]))
        else:
            bs.append(np.zeros(8 * hidden, np.float32))
    return np.stack(ws), np.stack(rs), np.stack(bs)


def build_graph(model, extra: np.ndarray | None = None):
    """The ONNX ``ModelProto`` of ``model``'s emission network; ``extra`` replaces its extra rows
    (e.g. fewer, or float16)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    c = model.config
    inits: list = []
    nodes: list = []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str | list[str], **attrs) -> str:
        outs = [out] if isinstance(out, str) else out
        nodes.append(helper.make_node(op, inputs, outs, name=f"{op}_{len(nodes)}", **attrs))
        return outs[0]

    def weight(t) -> np.ndarray:
        return t.detach().cpu().numpy().astype(np.float32)

    # word vectors
    table = const("word_table", weight(model.word_embed.weight))
    if extra is None:
        extra = model.word_embed.extra.detach().cpu().numpy().astype(np.float32)
    parts = []
    if extra.shape[0]:
        num = const("num_words", np.array(c.num_words, np.int64))
        is_extra = node("GreaterOrEqual", ["token_words", num], "is_extra")
        unk = const("unk_id", np.array(1, np.int64))
        trained_ids = node("Where", [is_extra, unk, "token_words"], "trained_ids")
        zero = const("zero_id", np.array(0, np.int64))
        extra_ids = node("Max", [node("Sub", ["token_words", num], "extra_off"), zero], "extra_ids")
        ext = const("extra_table", extra)
        e = node("Gather", [ext, extra_ids], "extra_vec")
        if extra.dtype != np.float32:
            e = node("Cast", [e], "extra_vec32", to=TensorProto.FLOAT)
        w = node("Gather", [table, trained_ids], "trained_vec")
        parts.append(node("Where", [node("Unsqueeze", [is_extra, const("axis_last", np.array([1], np.int64))],
                                         "is_extra_col"), e, w], "word_vec"))
    else:
        parts.append(node("Gather", [table, "token_words"], "word_vec"))

    # character encoder
    enc = model.char_encoder
    if enc is not None:
        emb = node("Gather", [const("char_table", weight(enc.embed.weight)), "token_chars"], "char_emb")  # (N, C, D)
        pad = node("Equal", ["token_chars", const("zero_char", np.array(0, np.int64))], "char_pad")  # (N, C)
        if c.char_encoder == "cnn":
            x = node("Transpose", [emb], "char_emb_t", perm=[0, 2, 1])  # (N, D, C)
            k = enc.conv.kernel_size[0]
            h = node("Conv", [x, const("conv_w", weight(enc.conv.weight)), const("conv_b", weight(enc.conv.bias))],
                     "conv", pads=[k // 2, k // 2], kernel_shape=[k])  # (N, F, C or C + 1)
            width = node("Shape", ["token_chars"], "chars_width", start=1, end=2)  # (1,)
            s0, axis2 = const("s0", np.array([0], np.int64)), const("s_axis", np.array([2], np.int64))
            h = node("Slice", [h, s0, width, axis2], "conv_c")  # (N, F, C)
            masked = node("Where", [node("Unsqueeze", [pad, const("axis1", np.array([1], np.int64))], "pad3"),
                                    const("neg_inf", np.array(-np.inf, np.float32)), h], "conv_masked")
            pooled = node("ReduceMax", [masked], "char_max", axes=[2], keepdims=0)  # (N, F)
            parts.append(node("Where", [node("IsInf", [pooled], "char_inf"),
                                        const("zero_f", np.array(0.0, np.float32)), pooled], "char_vec"))
        else:  # lstm: final forward and backward states
            hid = enc.lstm.hidden_size
            real = node("Cast", [node("Not", [pad], "char_real")], "char_real_i", to=TensorProto.INT32)
            lens = node("ReduceSum", [real, const("axis_sum", np.array([1], np.int64))], "char_lens",
                        keepdims=0)  # (N,)
            empty = node("Equal", [lens, const("zero_i32", np.array(0, np.int32))], "char_empty")
            lens1 = node("Max", [lens, const("one_i32", np.array(1, np.int32))], "char_lens1")
            x = node("Transpose", [emb], "char_seq", perm=[1, 0, 2])  # (C, N, D)
            cw, cr, cb = _lstm_weights(enc.lstm, 0, hid)
            node("LSTM", [x, const("char_W", cw), const("char_R", cr), const("char_B", cb), lens1],
                 ["", "char_h"], direction="bidirectional", hidden_size=hid)  # Y_h (2, N, H)
            h = node("Reshape", [node("Transpose", ["char_h"], "char_h_t", perm=[1, 0, 2]),
                                 const("shape_n2h", np.array([0, 2 * hid], np.int64))], "char_h2")  # (N, 2H)
            parts.append(node("Where", [node("Unsqueeze", [empty, const("axis1b", np.array([1], np.int64))], "empty2"),
                                        const("zero_f2", np.array(0.0, np.float32)), h], "char_vec"))
    if model.casing_embed is not None:
        parts.append(node("Gather", [const("casing_table", weight(model.casing_embed.weight)), "token_casing"],
                          "casing_vec"))
    feats = node("Concat", parts, "feats", axis=1) if len(parts) > 1 else parts[0]  # (N, in)

    # BiLSTM over the sentences
    x = node("Transpose", [node("Gather", [feats, "rows"], "sent_feats", axis=0)], "x_0", perm=[1, 0, 2])  # (L, B, in)
    seq_lens = node("Cast", ["lengths"], "seq_lens", to=TensorProto.INT32)
    hid = c.hidden
    for layer in range(c.layers):
        lw, lr, lb = _lstm_weights(model.lstm, layer, hid)
        y = node("LSTM", [x, const(f"W_{layer}", lw), const(f"R_{layer}", lr), const(f"B_{layer}", lb), seq_lens],
                 f"y_{layer}", direction="bidirectional", hidden_size=hid)  # (L, 2, B, H)
        x = node("Reshape", [node("Transpose", [y], f"y_t_{layer}", perm=[0, 2, 1, 3]),
                             const(f"shape_{layer}", np.array([0, 0, 2 * hid], np.int64))], f"x_{layer + 1}")
    h = node("Transpose", [x], "h", perm=[1, 0, 2])  # (B, L, 2H)
    em = node("MatMul", [h, const("emit_w", weight(model.emit.weight).T.copy())], "em_raw")
    node("Add", [em, const("emit_b", weight(model.emit.bias))], "emissions")

    i64, f32 = TensorProto.INT64, TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("token_words", i64, ["N"]),
              helper.make_tensor_value_info("token_chars", i64, ["N", "C"]),
              helper.make_tensor_value_info("token_casing", i64, ["N"]),
              helper.make_tensor_value_info("rows", i64, ["B", "L"]),
              helper.make_tensor_value_info("lengths", i64, ["B"])]
    outputs = [helper.make_tensor_value_info("emissions", f32, ["B", "L", c.num_tags])]
    graph = helper.make_graph(nodes, "tagger_emissions", inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tagger")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def crf_section(model) -> dict | None:
    """The CRF's scores and constraints as JSON (exact: float32 values as Python floats)."""
    crf = model.crf
    if crf is None:
        return None

    def f(t) -> list:
        return t.detach().cpu().float().numpy().tolist()

    return {"start": f(crf.start_transitions), "transitions": f(crf.transitions), "end": f(crf.end_transitions),
            "start_allowed": crf.start_allowed.cpu().tolist(), "transitions_allowed": crf.trans_allowed.cpu().tolist(),
            "end_allowed": crf.end_allowed.cpu().tolist()}


def shrunk_extra(model, extra_words: list[str], max_extra_words: int | None,
                 float16: bool) -> tuple[list[str], np.ndarray]:
    """The extra words and rows kept: the first ``max_extra_words`` (the most frequent), in float16 if asked."""
    rows = model.word_embed.extra.detach().cpu().numpy().astype(np.float32)
    if max_extra_words is not None and max_extra_words < len(extra_words):
        extra_words, rows = extra_words[:max_extra_words], rows[:max_extra_words]
    if float16:
        if np.abs(rows).max(initial=0.0) > np.finfo(np.float16).max:
            raise TaggerError("extra word vectors exceed the float16 range: export without --float16")
        rows = rows.astype(np.float16)
    return extra_words, rows


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TaggerError(f"{out} already exists and is not an empty directory")


def export(model_dir: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx",
           max_extra_words: int | None = None, float16: bool = False) -> dict:
    """Export the tagger in ``model_dir`` to ``out`` (written atomically); returns what was written."""
    from tagger.fsutil import atomic_dir, atomic_write_bytes, atomic_write_json
    from tagger.modeldir import save_tensors
    from tagger.predict import EXTRA_WEIGHTS, EXTRA_WORDS, WEIGHTS, load_tagger

    if fmt not in FORMATS:
        raise TaggerError(f"unknown export format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    if max_extra_words is not None and max_extra_words < 0:
        raise TaggerError("--max-extra-words must be at least 0")
    if fmt == "onnx":
        _onnx()
    src, out = Path(model_dir), Path(out)
    _check_out(out)
    model, cfg, extra_words = load_tagger(src)
    if fmt == "onnx" and (model.feature_embeds or model.config.context):
        what = "feature columns" if model.feature_embeds else "document context"
        raise TaggerError(f"{src}: a model with {what} cannot be exported to ONNX yet "
                          "(export --format torch keeps it)")
    words, rows = shrunk_extra(model, extra_words, max_extra_words, float16)
    cfg = json.loads(json.dumps(cfg))  # a copy
    cfg["model"]["num_extra"] = len(words)
    info = {"source": str(src), "format": fmt, "float16": float16, "max_extra_words": max_extra_words,
            "extra_words": len(words), "extra_words_source": len(extra_words)}
    if out.exists():
        out.rmdir()  # empty: atomic_dir puts the new one in its place
    with atomic_dir(out) as tmp:
        if fmt == "torch":
            import torch

            from tagger.modeldir import write_config

            shutil.copyfile(src / WEIGHTS, tmp / WEIGHTS)

            write_config(tmp, "tagger", {k: v for k, v in cfg.items()
                                         if k not in ("format", "format_version", "kind", "tagger_version")})
            if words:
                save_tensors(tmp / EXTRA_WEIGHTS, {"extra": torch.from_numpy(rows)})
        else:
            proto = build_graph(model, rows)
            atomic_write_bytes(tmp / MODEL_FILE, proto.SerializeToString())
            body = {k: v for k, v in cfg.items() if k not in ("format", "format_version", "kind")}
            body.update({"format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION, "kind": "tagger",
                         "crf": crf_section(model), "export": info})
            atomic_write_json(tmp / "config.json", body)
        if words:
            atomic_write_bytes(tmp / EXTRA_WORDS, json.dumps(words, ensure_ascii=False).encode("utf-8"))
    info["bytes"] = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return info
