"""ReLU as a registered "neuron": the ANN baseline runs the same backbone with real-valued activations."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_neuron


@register_neuron("relu")
class ReLUNeuron(nn.ReLU):
    """``max(x, 0)`` elementwise; stateless, so time needs no loop. Emits real values (every layer after it MACs)."""

    emits = "real"

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return torch.relu(x_seq)
