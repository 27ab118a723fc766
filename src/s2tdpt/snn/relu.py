"""ReLU as a registered "neuron": the ANN baseline runs the same backbone with real-valued activations."""

from __future__ import annotations

import torch
from torch import nn

from .registry import NeuronOps, register_neuron


@register_neuron("relu")
class ReLUNeuron(nn.ReLU):
    """``max(x, 0)`` elementwise; stateless, so time needs no loop. Emits real values (every layer after it MACs)."""

    emits = "real"

    def __init__(self) -> None:
        super().__init__()

    def update_ops(self) -> NeuronOps:
        """``max(x, 0)``: one compare per element, no state."""
        return NeuronOps(mul=0, add=1, state=0)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return torch.relu(x_seq)
