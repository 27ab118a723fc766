"""Softmax attention — Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv 1706.03762.

``softmax(Q Kᵀ / √D_H) V`` on real-valued Q, K, V (BN outputs, no neurons on the projections). It is the
attention of the ANN baseline ``ann_4_384`` ("Transformer-4-384" of the S²TDPT paper's Tables 2–3: the same
backbone with ReLU in place of every LIF and T = 1). In a spiking backbone it still reads the spikes of the
block's input neuron, but its Q, K, V and output are real-valued: not spike-driven.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..snn.registry import NeuronFactory
from .base import AttentionOp, AttentionWork, ProjectedAttention, dense_product
from .registry import register_attention


@register_attention("softmax")
class SoftmaxAttention(ProjectedAttention):
    emits_spikes = False  # A·V on real Q, K, V feeds ``proj``

    def __init__(self, dim: int, num_heads: int, *, neuron: NeuronFactory, grid: tuple[int, int]) -> None:
        super().__init__(dim, num_heads, neuron=neuron, grid=grid)
        self.qkv_lif = nn.Identity()  # real-valued Q, K, V

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # 4-D [T·B, H, N, D_H] lets PyTorch pick its fused (flash) kernel; with 5-D inputs it falls back to the
        # math path, which materialises the N × N matrix (13 GB at N = 4,096 in benchmarks/attention_zoo.py).
        t, b = q.shape[:2]
        y = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1))  # softmax(QKᵀ/√D_H)V
        return y.unflatten(0, (t, b))

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        """Q·Kᵀ and A·V on real values: 2·N²·D MACs per timestep (softmax itself uncharged, as in the spec)."""
        n, d = self.tokens, self.dim
        return [AttentionOp("Q·Kᵀ, A·V", "MAC", 2 * n * n * d, None, timesteps * 2 * n * n * d)], {}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        return dense_attention_work(timesteps, self.tokens, self.dim, self.num_heads), {}

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        q, k = heads["q"], heads["k"]
        return {"softmax(Q·Kᵀ/√D_H)": F.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1).mean(0)}


def dense_attention_work(timesteps: int, tokens: int, dim: int, heads: int) -> list[AttentionWork]:
    """Q·Kᵀ into the H·N² map A, then A·V, on real values: N²·D MACs each per timestep (softmax uncharged)."""
    t, n, d, h = timesteps, tokens, dim, heads
    return [dense_product("Q·Kᵀ → A", t * n * n * d, t * h * n * n, h * n * n),
            dense_product("A·V", t * n * n * d, t * n * d, h * n * n)]  # fmt: skip
