"""Spiking MLP of the encoder block (Eq. 26): LIF → Linear(D→hD) → BN → LIF → Linear(hD→D) → BN."""

from __future__ import annotations

import torch
from torch import nn

from ..attention.registry import NeuronFactory
from ..snn.norm_lif import norm_lif
from .norm import TokenBatchNorm


class SpikingMLP(nn.Module):
    """``[T, B, N, D]`` membrane stream → ``[T, B, N, D]`` residual update; both linears see binary spikes."""

    bn_pairs = (("fc1", "bn1"), ("fc2", "bn2"))

    def __init__(self, dim: int, hidden_dim: int, neuron: NeuronFactory) -> None:
        super().__init__()
        self.lif1 = neuron()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.bn1 = TokenBatchNorm(hidden_dim)
        self.lif2 = neuron()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.bn2 = TokenBatchNorm(dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        s = norm_lif(self.fc1(self.lif1(u)), self.bn1, self.lif2)  # lif2(bn1(·)), slopes not stored in training
        return self.bn2(self.fc2(s))
