"""Spike-Driven Self-Attention (SDSA) — Yao et al., "Spike-driven Transformer", NeurIPS 2023, arXiv 2307.01694.

Per head: ``Q ⊙ SN_{0.5}(Σ_n K_n ⊙ V_n)``. The column sum over tokens of the AND of K and V gives one value per
channel; a LIF (threshold 0.5, across time) turns it into a binary channel mask that gates Q. No scale, no
matrix product, O(N·D_H). The result is already binary, so no further attention neuron follows (as in the
paper's code, where the projection reads ``Q ⊙ mask`` directly).
"""

from __future__ import annotations

import torch

from ..snn.registry import NeuronFactory
from .base import ProjectedAttention
from .registry import register_attention


@register_attention("sdsa")
class SDSA(ProjectedAttention):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        neuron: NeuronFactory,
        grid: tuple[int, int],
        attn_v_threshold: float = 0.5,
    ) -> None:
        super().__init__(dim, num_heads, neuron=neuron, grid=grid)
        self.attn_lif = neuron(v_threshold=attn_v_threshold, binary=True)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        kv = (k * v).sum(dim=-2, keepdim=True)  # [T, B, H, 1, D_H]: per-channel count of K∧V over tokens
        return q * self.attn_lif(kv)  # binary channel mask gating Q
