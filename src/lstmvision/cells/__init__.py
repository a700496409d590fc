"""Recurrent cells, one per module, each with its sequence wrapper."""

from lstmvision.cells.convlstm import ConvLSTM, ConvLSTMCell, ConvLSTMState

__all__ = ["ConvLSTM", "ConvLSTMCell", "ConvLSTMState"]
