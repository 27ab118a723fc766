"""Spiking neurons (a registry: ``lif``, ``plif``, ``ilif``, ``relu``), surrogate gradients and time-folding
helpers (time-first ``[T, B, ...]``)."""

from .base import Neuron, run_steps
from .fold import seq_apply
from .ilif import IntegerLIFNode, set_expand
from .neuron import LIFNode, LIFParams, TernaryLIFNode, lif_multistep, lif_step, reset_states
from .plif import ParametricLIFNode
from .registry import (
    BACKENDS,
    EMITS,
    NeuronFactory,
    NeuronSpec,
    create_neuron,
    get_neuron_class,
    list_neurons,
    neuron_emits,
    neuron_options,
    register_neuron,
)
from .relu import ReLUNeuron
from .surrogate import integer_spike, sigmoid_surrogate_grad, spike

__all__ = [
    "BACKENDS",
    "EMITS",
    "IntegerLIFNode",
    "LIFNode",
    "LIFParams",
    "Neuron",
    "NeuronFactory",
    "NeuronSpec",
    "ParametricLIFNode",
    "ReLUNeuron",
    "TernaryLIFNode",
    "create_neuron",
    "get_neuron_class",
    "integer_spike",
    "lif_multistep",
    "lif_step",
    "list_neurons",
    "neuron_emits",
    "neuron_options",
    "register_neuron",
    "reset_states",
    "run_steps",
    "seq_apply",
    "set_expand",
    "sigmoid_surrogate_grad",
    "spike",
]
