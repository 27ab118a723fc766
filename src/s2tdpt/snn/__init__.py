"""Spiking neurons, surrogate gradients and time-folding helpers (time-first ``[T, B, ...]``)."""

from .fold import seq_apply
from .neuron import LIFNode, LIFParams, NeuronSpec, TernaryLIFNode, lif_multistep, lif_step, reset_states
from .surrogate import sigmoid_surrogate_grad, spike

__all__ = [
    "LIFNode",
    "LIFParams",
    "NeuronSpec",
    "TernaryLIFNode",
    "lif_multistep",
    "lif_step",
    "reset_states",
    "seq_apply",
    "sigmoid_surrogate_grad",
    "spike",
]
