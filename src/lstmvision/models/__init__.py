"""Task networks assembled from cells, layers and encoders, registered by name."""

from lstmvision.models.captioner import SALSTM, Caption
from lstmvision.models.e3d_lstm import E3DLSTMClassifier, E3DLSTMPredictor
from lstmvision.models.multiview import (
    EarlyFusionClassifier,
    LateFusionClassifier,
    MPLSTMClassifier,
    MVLSTMClassifier,
    SingleViewClassifier,
)
from lstmvision.models.predictor import ConvLSTMPredictor, RecurrentPredictor
from lstmvision.models.predrnn import PredRNNPredictor, PredRNNv2
from lstmvision.models.pretrained import instantiate_model, load_pretrained, save_pretrained
from lstmvision.models.registry import create_model, get_model_factory, list_models, register_model
from lstmvision.models.video_classifier import CNNLSTM, CNNConvLSTM, SingleFrameClassifier

__all__ = [
    "CNNLSTM",
    "SALSTM",
    "CNNConvLSTM",
    "Caption",
    "ConvLSTMPredictor",
    "E3DLSTMClassifier",
    "E3DLSTMPredictor",
    "EarlyFusionClassifier",
    "LateFusionClassifier",
    "MPLSTMClassifier",
    "MVLSTMClassifier",
    "PredRNNPredictor",
    "PredRNNv2",
    "RecurrentPredictor",
    "SingleFrameClassifier",
    "SingleViewClassifier",
    "create_model",
    "get_model_factory",
    "instantiate_model",
    "list_models",
    "load_pretrained",
    "register_model",
    "save_pretrained",
]
