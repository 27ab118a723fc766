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

from ..snn.registry import NeuronFactory
from .base import ProjectedAttention
from .registry import register_attention


@register_attention("identity")
class IdentityAttention(ProjectedAttention):
    branches = ("v",)  # Q and K would be computed and never used

    def mix(self, v: torch.Tensor) -> torch.Tensor:
        return v


@register_attention("random_frozen")
class RandomFrozenAttention(ProjectedAttention):
    branches = ("v",)

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        neuron: NeuronFactory,
        grid: tuple[int, int],
        scale: float = 0.125,
        attn_v_threshold: float = 0.5,
    ) -> None:
        super().__init__(dim, num_heads, neuron=neuron, grid=grid)
        n = grid[0] * grid[1]
        self.scale = scale
        self.register_buffer("weights", torch.rand(num_heads, n, n))  # [H, N, N], frozen: a buffer
        self.attn_lif = neuron(v_threshold=attn_v_threshold, binary=True)

    def mix(self, v: torch.Tensor) -> torch.Tensor:
        return self.attn_lif((self.weights.to(v.dtype) @ v) * self.scale)  # [H, N, N] @ [T, B, H, N, D_H]
