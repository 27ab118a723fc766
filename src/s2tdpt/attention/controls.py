"""Controls for honest attention claims (no paper): ``identity`` and ``random_frozen``.

A public benchmark of spiking transformers found that a random, frozen attention keeps almost all of the
accuracy on CIFAR-10; any claim that a mechanism helps needs these beside it, same backbone, budget and seed.

* ``identity``: the mixer returns V itself — no token mixing at all. V is binary already, so neither the scale
  nor an attention neuron follows (``SN_{0.5}(0.125·V)`` would never fire). Only V is projected.
* ``random_frozen``: ``SN_{0.5}(s · R V)`` with a fixed random non-negative N × N matrix R per head, drawn
  uniform in [0, 1) — the same range as the STDP weights — when the model is built, stored as a buffer (saved in
  checkpoints, never trained). Only V is projected.
"""

from __future__ import annotations

import torch

from .base import AttentionOp, AttentionWork, ProjectedAttention, SpikingAttention, accumulate
from .registry import register_attention
from .synapse import OnSynapses, device_weights

REST = 0.5  # resting weight of R's devices: the middle of [0, 1], as the STDP attention's default w_offset


@register_attention("identity")
class IdentityAttention(ProjectedAttention):
    branches = ("v",)  # Q and K would be computed and never used

    def mix(self, v: torch.Tensor) -> torch.Tensor:
        return v

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        return [], {}  # no token mixing, nothing to charge

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        return [], {}  # V passes through: no working memory

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}  # no token mixing, nothing to show


@register_attention("random_frozen")
class RandomFrozenAttention(OnSynapses, SpikingAttention):
    """Options: ``scale`` (0.125), ``attn_v_threshold`` (0.5) and ``synapse`` (R on memristive devices, written
    from the resting weight 0.5, as the STDP weights are — the control for the STDP attention on devices)."""

    branches = ("v",)

    def __init__(
        self, dim: int, num_heads: int, *, grid: tuple[int, int], synapse: str | dict | None = None, **kwargs
    ) -> None:
        super().__init__(dim, num_heads, grid=grid, **kwargs)
        n = grid[0] * grid[1]
        self.register_buffer("weights", torch.rand(num_heads, n, n))  # [H, N, N], frozen: a buffer
        self.init_synapse(synapse, num_heads, n)

    def mix(self, v: torch.Tensor) -> torch.Tensor:
        weights = self.weights.to(v.dtype)  # [H, N, N]
        if not self.synapse.is_ideal:  # with write noise, one noisy copy per (t, b): fresh for every pass
            copies = weights.expand(*v.shape[:2], *weights.shape) if self.synapse.write_noise else weights
            weights = device_weights(copies, REST, self.synapse, self.crossbar)
        return self.fire(weights @ v)  # [(T, B,) H, N, N] @ [T, B, H, N, D_H]

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        n, d = self.tokens, self.dim
        return [AttentionOp("R·V", "AC", n * n * d, rates["v"], timesteps * rates["v"] * n * n * d)], {}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """Each V spike adds a column of the stored R (H·N² weights) into N accumulators."""
        n, d, h = self.tokens, self.dim, self.num_heads
        return [accumulate("R·V", timesteps * rates["v"] * n * n * d, h * n * n, "weight")], {}

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"R (frozen)": self.weights.clone()}
