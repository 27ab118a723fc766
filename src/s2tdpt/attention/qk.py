"""Q-K token attention (QKTA) — Zhou et al., "QKFormer: Hierarchical Spiking Transformer using Q-K Attention",
NeurIPS 2024, arXiv 2403.16552.

Per head: a token mask ``m_n = SN_{0.5}(Σ_c Q_{n,c})`` (row sum of Q, a LIF across time) gates the keys,
output ``m ⊙ K``. Only Q and K are projected (no V), so a block has D² fewer weights than the Q/K/V mechanisms.
O(N·D_H). Choice: QKFormer uses this token attention in its early stages of a hierarchical model; here it
replaces the attention of the same flat S²TDPT backbone as every other mechanism, so differences are its own.
"""

from __future__ import annotations

import torch

from .base import AttentionOp, AttentionWork, SpikingAttention, accumulate
from .registry import register_attention


@register_attention("qk_token")
class QKTokenAttention(SpikingAttention):
    """Options: ``attn_v_threshold`` (0.5) and ``scale`` (1: the paper has none)."""

    branches = ("q", "k")
    default_scale = 1.0

    def mix(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        mask = self.fire(q.sum(dim=-1, keepdim=True))  # [T, B, H, N, 1] binary token mask
        return mask * k

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        """Row sum of Q: one add per Q spike, T·fr_Q·N·D; the mask multiplies nothing."""
        n, d = self.tokens, self.dim
        return [AttentionOp("Σ_c Q", "AC", n * d, rates["q"], timesteps * rates["q"] * n * d)], {}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """Each Q spike adds into its token's count (H·N words); the mask on K is a select."""
        n, d = self.tokens, self.dim
        return [accumulate("Σ_c Q", timesteps * rates["q"] * n * d, self.num_heads * n)], {}

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"Σ_c Q per token": heads["q"].sum(-1).mean(0)}  # [H, N]
