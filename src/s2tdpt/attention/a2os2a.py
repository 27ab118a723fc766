"""Accurate Addition-Only Spiking Self-Attention (A²OS²A) — Guo et al., "Spiking Transformer: Introducing Accurate
Addition-Only Spiking Self-Attention", CVPR 2025.

Heterogeneous neurons on the three projections: binary Q (LIF), real non-negative K (ReLU), ternary V ∈ {−1, 0, 1}
(a ternary LIF that fires ±1 beyond ±V_th). Per head ``Q · ReLU(K)ᵀ · V`` — no softmax (Q, K ≥ 0 already) and,
as in the paper, no scale: the unbounded ReLU K carries the magnitude. Evaluated as ``Q (Kᵀ V)``, O(N·D_H²).

Choice (the mechanism's output is real-valued and the output projection of this backbone reads spikes): an
attention LIF with threshold 0.5 turns ``Q Kᵀ V`` into spikes, with ``scale = 1`` (configurable).
"""

from __future__ import annotations

import torch
from torch import nn

from ..snn.registry import NeuronFactory
from .base import ProjectedAttention
from .registry import register_attention


@register_attention("a2os2a")
class A2OS2A(ProjectedAttention):
    needs_spikes = True  # binary Q and a ternary spiking V

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        neuron: NeuronFactory,
        grid: tuple[int, int],
        scale: float = 1.0,
        attn_v_threshold: float = 0.5,
    ) -> None:
        super().__init__(dim, num_heads, neuron=neuron, grid=grid)
        self.scale = scale
        self.k_act = nn.ReLU()
        self.v_lif = neuron(ternary=True)
        self.attn_lif = neuron(v_threshold=attn_v_threshold, binary=True)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_bn(x).chunk(3, dim=-1)  # [T, B, N, D] each
        return torch.cat([self.qkv_lif(q), self.k_act(k), self.v_lif(v)], dim=-1)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.attn_lif((q @ (k.transpose(-2, -1) @ v)) * self.scale)
