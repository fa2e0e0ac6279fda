"""tagger: sequence labeling with a BiLSTM-CRF."""

__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """Load a trained model directory and return a :class:`tagger.predict.Predictor`."""
    from tagger.predict import Predictor

    return Predictor.load(path, device=device)


__all__ = ["__version__", "load"]
