"""One loader for both runtimes: :func:`load_predictor` (``tagger annotate --runtime``, the server)."""

from __future__ import annotations

import os

from tagger.errors import TaggerError
from tagger.prediction import Tagger

RUNTIMES = ("torch", "onnx")


def load_predictor(path: str | os.PathLike, runtime: str = "torch", device: str = "cpu") -> Tagger:
    """A predictor for a model directory (``torch``: :class:`tagger.predict.Predictor`) or an ONNX
    export directory (``onnx``: :class:`tagger.onnx.runtime.OnnxPredictor`, CPU only, no torch)."""
    if runtime == "torch":
        from tagger.predict import Predictor

        return Predictor.load(path, device=device)
    if runtime == "onnx":
        if device not in ("cpu", "auto"):
            raise TaggerError("the onnx runtime runs on the CPU only")
        from tagger.onnx.runtime import OnnxPredictor

        return OnnxPredictor.load(path)
    raise TaggerError(f"unknown runtime {runtime!r} (expected one of: {', '.join(RUNTIMES)})")
