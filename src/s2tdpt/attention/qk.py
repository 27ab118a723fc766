"""Q-K token attention (QKTA) — Zhou et al., "QKFormer: Hierarchical Spiking Transformer using Q-K Attention",
NeurIPS 2024, arXiv 2403.16552.

Per head: a token mask ``m_n = SN_{0.5}(Σ_c Q_{n,c})`` (row sum of Q, a LIF across time) gates the keys,
output ``m ⊙ K``. Only Q and K are projected (no V), so a block has D² fewer weights than the Q/K/V mechanisms.
O(N·D_H). Choice: QKFormer uses this token attention in its early stages of a hierarchical model; here it
replaces the attention of the same flat S²TDPT backbone as every other mechanism, so differences are its own.
"""

from __future__ import annotations

import torch

from ..snn.registry import NeuronFactory
from .base import ProjectedAttention
from .registry import register_attention


@register_attention("qk_token")
class QKTokenAttention(ProjectedAttention):
    branches = ("q", "k")

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

    def mix(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        mask = self.attn_lif(q.sum(dim=-1, keepdim=True))  # [T, B, H, N, 1] binary token mask
        return mask * k
