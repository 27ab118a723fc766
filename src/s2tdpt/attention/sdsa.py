"""Spike-Driven Self-Attention (SDSA) — Yao et al., "Spike-driven Transformer", NeurIPS 2023, arXiv 2307.01694.

Per head: ``Q ⊙ SN_{0.5}(Σ_n K_n ⊙ V_n)``. The column sum over tokens of the AND of K and V gives one value per
channel; a LIF (threshold 0.5, across time) turns it into a binary channel mask that gates Q. No scale, no
matrix product, O(N·D_H). The result is already binary, so no further attention neuron follows (as in the
paper's code, where the projection reads ``Q ⊙ mask`` directly).
"""

from __future__ import annotations

import torch

from .base import AttentionOp, AttentionWork, SpikingAttention, accumulate
from .registry import register_attention


@register_attention("sdsa")
class SDSA(SpikingAttention):
    """Options: ``attn_v_threshold`` (0.5) and ``scale`` (1: the paper has none)."""

    default_scale = 1.0

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        kv = (k * v).sum(dim=-2, keepdim=True)  # [T, B, H, 1, D_H]: per-channel count of K∧V over tokens
        return q * self.fire(kv)  # binary channel mask gating Q

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        """Column sum of K ⊙ V: one add per coincident K and V spike, at most T·min(fr_K, fr_V)·N·D."""
        n, d, rate = self.tokens, self.dim, min(rates["k"], rates["v"])
        return [AttentionOp("Σₙ K⊙V", "AC", n * d, rate, timesteps * rate * n * d)], {}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """Coincident K, V spikes accumulate into D channel sums; the mask on Q is a select."""
        n, d = self.tokens, self.dim
        return [accumulate("Σₙ K⊙V", timesteps * min(rates["k"], rates["v"]) * n * d, d)], {}

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"Σ_n K⊙V per channel": (heads["k"] * heads["v"]).sum(-2).mean(0)}  # [H, D_H]
