"""``evaluate()``: load a tagger model, tag gold data with it, score, and write the report files."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from tagger import __version__
from tagger.commands.evaluate.curve import read_learning_curve
from tagger.commands.evaluate.gold import Gold, gold_in_model_scheme, model_input, read_gold, resolve_format
from tagger.commands.evaluate.oov import oov_block
from tagger.commands.evaluate.outputs import write_outputs
from tagger.commands.evaluate.scoring import entity_figures, label_figures
from tagger.errors import TaggerError
from tagger.prediction import Tagger
from tagger.runtime import load_predictor
from tagger.threads import Threads, free_cores
from tagger.training.setup import DEVICE_PATTERN, resolve_device


def _check_arguments(batch_size: int, threads: int, device: str, out: str | os.PathLike | None) -> Path | None:
    """Refuse bad arguments before the model is loaded; returns the output directory."""
    if batch_size < 1:
        raise TaggerError("--batch-size must be at least 1")
    if threads < 0:
        raise TaggerError("--threads must be >= 0")
    if not re.fullmatch(DEVICE_PATTERN, device):
        raise TaggerError(f"unknown device {device!r} (use auto, cpu or cuda)")
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.exists() and not out_path.is_dir():
        raise TaggerError(f"{out_path} exists and is not a directory")
    return out_path


def _predict(predictor: Tagger, gold: Gold, batch_size: int, threads: int,
             device: str) -> tuple[list[list[str]], int | None]:
    """Predicted tags (model scheme) and the CPU threads used (None on a GPU); torch's setting is restored."""
    with Threads(threads) as cpu:
        preds = predictor.predict(model_input(gold, predictor.context), batch_size=batch_size, confidences=False)
        used_threads = cpu.count
    return [p.tags for p in preds], used_threads if device == "cpu" else None


def _figures(predictor: Tagger, gold: Gold, gold_m: list[list[str]],
             pred_m: list[list[str]]) -> tuple[dict, list[list[str]], list[list[str]]]:
    """The scores, error analysis and OOV figures; and the gold and predicted tags for predictions.conll."""
    oov = oov_block(predictor.lookup, gold.tokens, gold_m, pred_m)
    if predictor.task == "entity":
        figures, gold_out, pred_out, oov["entities"] = entity_figures(gold, gold_m, pred_m, predictor.scheme,
                                                                      predictor.lookup)
    else:
        figures, gold_out, pred_out = label_figures(gold, gold_m, pred_m), gold_m, pred_m
    return {**figures, "oov": oov}, gold_out, pred_out


def evaluate(
    model_dir: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    batch_size: int = 256,
    threads: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    runtime: str = "torch",
    **format_overrides,
) -> dict:
    """Evaluate a tagger model on gold data; returns the content of ``metrics.json``.

    ``data`` is a corpus file or ``PREPARED_DIR[:split]`` (default split ``test``).
    ``format_overrides`` (``format``, ``token_column``, ``label_column``, ``label_field``,
    ``encoding``) replace the model's training data options for reading a file; ``None`` keeps
    them. ``threads`` 0 picks a CPU thread count from the machine's load. With ``out``, writes
    the report files there. ``log`` receives warnings (e.g. gold labels the model never saw).
    ``runtime="onnx"``: ``model_dir`` is an ONNX export (``tagger export``), run by onnxruntime.
    """
    t_start = time.perf_counter()
    say = log or (lambda m: None)
    timing: dict[str, float] = {}
    out_path = _check_arguments(batch_size, threads, device, out)
    device = resolve_device(device)
    predictor = load_predictor(model_dir, runtime, device=device)
    if runtime == "onnx":
        predictor.threads = threads or free_cores()  # onnxruntime's intra-op threads
    timing["load_model"] = time.perf_counter() - t_start

    t = time.perf_counter()
    gold = read_gold(data, resolve_format(predictor.config, format_overrides), predictor.feature_columns)
    gold_m, gold_scheme, repairs = gold_in_model_scheme(gold, predictor.task, predictor.scheme)
    timing["read"] = time.perf_counter() - t
    unseen = sorted({lab for labs in gold_m for lab in labs} - (set(predictor.tag_names) - {"<pad>"}))
    if unseen:
        say(f"warning: gold labels the model never saw in training (it cannot predict them): {', '.join(unseen)}")

    t = time.perf_counter()
    pred_m, used_threads = _predict(predictor, gold, batch_size, threads, device)
    timing["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    n_tokens = sum(len(s) for s in gold.tokens)
    figures, gold_out, pred_out = _figures(predictor, gold, gold_m, pred_m)
    result: dict = {
        "model": str(model_dir), "data": gold.description, "source": gold.source, "split": gold.split,
        "format": gold.format, "task": predictor.task, "scheme": predictor.scheme, "gold_scheme": gold_scheme,
        "gold_repairs": repairs, "sentences": len(gold.tokens), "tokens": n_tokens,
        **figures, "unseen_labels": unseen, "learning_curve": read_learning_curve(Path(model_dir)),
    }
    timing["score"] = time.perf_counter() - t
    result.update(threads=used_threads, device=device, tagger_version=__version__,
                  tokens_per_second=round(n_tokens / timing["predict"], 1) if timing["predict"] > 0 else None)

    def stamp() -> None:
        result["seconds"] = round(time.perf_counter() - t_start, 3)
        result["timing"] = {k: round(v, 3) for k, v in timing.items()}

    stamp()
    if out_path is not None:
        t = time.perf_counter()
        result["files"] = write_outputs(out_path, result, gold, gold_out, pred_out)
        timing["write"] = time.perf_counter() - t
        stamp()
        from tagger.fsutil import atomic_write_json

        atomic_write_json(out_path / "metrics.json", result)
    return result
