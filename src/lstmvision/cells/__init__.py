"""Recurrent cells, one per module, each with its sequence wrapper."""

from lstmvision.cells._fusion import gate_fusion, gate_fusion_enabled, match_weight_layout, set_gate_fusion
from lstmvision.cells._pooled import sequence_pass, set_weight_grad_pooling, weight_grad_pooling
from lstmvision.cells.convlstm import ConvLSTM, ConvLSTMCell, ConvLSTMState
from lstmvision.cells.e3dlstm import Eidetic3DLSTM, Eidetic3DLSTMCell, Eidetic3DLSTMState
from lstmvision.cells.mplstm import MPLSTMState, MultiPerspectiveLSTM, MultiPerspectiveLSTMCell
from lstmvision.cells.mvlstm import MultiViewLSTM, MultiViewLSTMCell, MVLSTMState
from lstmvision.cells.stlstm import SpatioTemporalLSTM, SpatioTemporalLSTMCell, SpatioTemporalLSTMState

__all__ = [
    "ConvLSTM",
    "ConvLSTMCell",
    "ConvLSTMState",
    "Eidetic3DLSTM",
    "Eidetic3DLSTMCell",
    "Eidetic3DLSTMState",
    "MPLSTMState",
    "MVLSTMState",
    "MultiPerspectiveLSTM",
    "MultiPerspectiveLSTMCell",
    "MultiViewLSTM",
    "MultiViewLSTMCell",
    "SpatioTemporalLSTM",
    "SpatioTemporalLSTMCell",
    "SpatioTemporalLSTMState",
    "gate_fusion",
    "gate_fusion_enabled",
    "match_weight_layout",
    "sequence_pass",
    "set_gate_fusion",
    "set_weight_grad_pooling",
    "weight_grad_pooling",
]
