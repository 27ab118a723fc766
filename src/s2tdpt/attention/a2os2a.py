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
from .base import AttentionOp, AttentionWork, SpikingAttention, accumulate
from .registry import register_attention


@register_attention("a2os2a")
class A2OS2A(SpikingAttention):
    """Options: ``scale`` (1) and ``attn_v_threshold`` (0.5)."""

    needs_spikes = True  # binary Q and a ternary spiking V
    default_scale = 1.0

    def __init__(self, dim: int, num_heads: int, *, neuron: NeuronFactory, **kwargs) -> None:
        super().__init__(dim, num_heads, neuron=neuron, **kwargs)
        self.k_act = nn.ReLU()
        self.v_lif = neuron(ternary=True)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_bn(x).chunk(3, dim=-1)  # [T, B, N, D] each
        return torch.cat([self.qkv_lif(q), self.k_act(k), self.v_lif(v)], dim=-1)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.fire(q @ (k.transpose(-2, -1) @ v))

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        """Kᵀ·V with ternary V (±adds of K rows) and Q·(KᵀV) with binary Q: T·N·D·D_H·(fr_V + fr_Q), all adds."""
        t, n, d, dh = timesteps, self.tokens, self.dim, self.head_dim
        return [AttentionOp("Kᵀ·V, Q·", "AC", n * d * dh, None, t * n * d * dh * (rates["q"] + rates["v"]))], {}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """Each ternary V spike adds (±) a K row into H·D_H² sums; each Q spike reads a row of them."""
        t, n, d, h, dh = timesteps, self.tokens, self.dim, self.num_heads, self.head_dim
        return [accumulate("Kᵀ·V", t * rates["v"] * n * d * dh, h * dh * dh),
                accumulate("Q·(KᵀV)", t * rates["q"] * n * d * dh, h * dh * dh)], {}  # fmt: skip

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"Q·ReLU(K)ᵀ": (heads["q"] @ heads["k"].transpose(-2, -1)).mean(0)}
