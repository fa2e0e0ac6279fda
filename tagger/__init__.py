"""tagger: sequence labeling with a BiLSTM-CRF."""

import os as _os

# Our matrices are small: with OpenMP's default spin-waiting, two intra-op threads on a busy
# 2-core machine run up to 5x slower than one. Passive waiting removes that cliff. It must be
# set before torch initialises OpenMP; a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """Load a trained model directory and return a :class:`tagger.predict.Predictor`."""
    from tagger.predict import Predictor

    return Predictor.load(path, device=device)


__all__ = ["__version__", "load"]
