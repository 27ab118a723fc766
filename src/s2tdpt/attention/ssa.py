"""Spiking Self-Attention (SSA) — Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer",
ICLR 2023, arXiv 2209.15425; used unchanged by Spikingformer (Zhou et al., arXiv 2304.11954).

Per head, with binary Q, K, V: ``SN_{0.5}(s · Q Kᵀ V)``, s = 0.125, no softmax. Without softmax the product is
associative: ``order="kv_first"`` (default) evaluates ``Q (Kᵀ V)`` in O(N·D_H²) time and O(D_H²) extra memory;
``"qk_first"`` builds the N × N map ``Q Kᵀ`` as the papers write it. On binary inputs both are exact integer
arithmetic in float32 (sums far below 2²⁴), so they agree exactly (tested).
"""

from __future__ import annotations

import torch

from .base import AttentionOp, AttentionWork, SpikingAttention, accumulate
from .registry import register_attention

ORDERS = ("kv_first", "qk_first")


def ssa_product(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, order: str = "kv_first") -> torch.Tensor:
    """``Q Kᵀ V`` over ``[..., N, D_H]`` inputs, in either association order."""
    if order == "kv_first":
        return q @ (k.transpose(-2, -1) @ v)  # [.., D_H, D_H] intermediate
    if order == "qk_first":
        return (q @ k.transpose(-2, -1)) @ v  # [.., N, N] intermediate
    raise ValueError(f"SSA order must be one of {ORDERS}, got {order!r}")


@register_attention("ssa")
class SSA(SpikingAttention):
    """Options: ``order`` (``"kv_first"`` or ``"qk_first"``), ``scale`` (0.125), ``attn_v_threshold`` (0.5)."""

    def __init__(self, dim: int, num_heads: int, *, order: str = "kv_first", **kwargs) -> None:
        super().__init__(dim, num_heads, **kwargs)
        if order not in ORDERS:
            raise ValueError(f"SSA order must be one of {ORDERS}, got {order!r}")
        self.order = order

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.fire(ssa_product(q, k, v, self.order))

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        """Spikingformer's rule, Kᵀ·V first: T·N·D·D_H·(fr_Q + min(fr_K, fr_V)); ``order="qk_first"``:
        T·N²·D·(fr_Q + fr_V)."""
        t, n, d, dh, r = timesteps, self.tokens, self.dim, self.head_dim, rates
        if self.order == "qk_first":
            return [AttentionOp("Q·Kᵀ, ·V", "AC", n * n * d, None, t * n * n * d * (r["q"] + r["v"]))], {}
        return [AttentionOp("Kᵀ·V, Q·", "AC", n * d * dh, None, t * n * d * dh * (r["q"] + min(r["k"], r["v"])))], {}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """Kᵀ·V first: coincident K, V spikes accumulate into H·D_H² sums, each Q spike reads a row of them into its
        output; ``qk_first``: each Q spike adds into the H·N² map A, each V spike reads a column of A."""
        t, n, d, h, dh, r = timesteps, self.tokens, self.dim, self.num_heads, self.head_dim, rates
        if self.order == "qk_first":
            return [accumulate("Q·Kᵀ → A", t * r["q"] * n * n * d, h * n * n),
                    accumulate("A·V", t * r["v"] * n * n * d, h * n * n)], {}  # fmt: skip
        return [accumulate("Kᵀ·V", t * min(r["k"], r["v"]) * n * d * dh, h * dh * dh),
                accumulate("Q·(KᵀV)", t * r["q"] * n * d * dh, h * dh * dh)], {}  # fmt: skip

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"Q·Kᵀ": (heads["q"] @ heads["k"].transpose(-2, -1)).mean(0)}
