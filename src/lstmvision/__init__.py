"""lstmvision: recurrent (LSTM-family) models of visual sequences."""

__version__ = "0.1.0"

__all__ = ["__version__"]
