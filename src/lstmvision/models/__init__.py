"""Task networks assembled from cells, layers and encoders, registered by name."""

from lstmvision.models.predictor import ConvLSTMPredictor
from lstmvision.models.registry import create_model, get_model_factory, list_models, register_model

__all__ = ["ConvLSTMPredictor", "create_model", "get_model_factory", "list_models", "register_model"]
