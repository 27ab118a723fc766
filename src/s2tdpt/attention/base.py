"""The shared skeleton of every projection-based token mixer (paper Eq. 14–16 and 23–24).

    U ─ in_lif ─► S̃ ─ Linear (no bias) ─ BN ─ branch neurons ─► Q, K, V heads ─ mix ─► [T, B, H, N, D_H]
      ─ merge heads ─ Linear (bias) ─ BN ─► S'                                         (added to U by the block)

Subclasses choose the branches (``("q", "k", "v")`` or ``("q", "k")``), the BN and neurons on them
(:meth:`activate`) and the mechanism (:meth:`mix`). The projections of all branches run as one matrix multiply
with per-channel BN and neurons — the same function and parameter count as separate ones.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers.norm import TokenBatchNorm
from ..snn.norm_lif import norm_lif
from ..snn.registry import NeuronFactory


class ProjectedAttention(nn.Module):
    """Base class; see the module docstring. ``grid`` is the token grid (H', W'), N = H'·W'."""

    branches: tuple[str, ...] = ("q", "k", "v")
    bn_pairs = (("qkv", "qkv_bn"), ("proj", "proj_bn"))
    #: the mechanism is only defined on spikes (e.g. STDP counts them); refuse non-spiking (ANN) backbones
    needs_spikes: bool = False
    #: what reaches ``proj`` is spikes (a neuron, a binary mask or the V spikes); False for a real-valued output.
    #: Declared, not only observed: an untrained network is often silent, and all zeros look like spikes.
    emits_spikes: bool = True

    def __init__(self, dim: int, num_heads: int, *, neuron: NeuronFactory, grid: tuple[int, int]) -> None:
        super().__init__()
        self.dim, self.num_heads, self.grid = dim, num_heads, tuple(grid)
        self.head_dim = dim // num_heads
        nb = len(self.branches)
        self.in_lif = neuron()
        self.qkv = nn.Linear(dim, nb * dim, bias=False)
        self.qkv_bn = TokenBatchNorm(nb * dim)
        self.qkv_lif = neuron(binary=True)
        self.heads_tap = nn.Identity()  # observation point: analysis hooks see the branch heads (Q, K, V) here
        self.proj = nn.Linear(dim, dim)
        self.proj_bn = TokenBatchNorm(dim)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """Projections ``[T, B, N, n_branches·D]`` before BN → normalised and spiking (or activated) branches.

        Default: ``qkv_lif(qkv_bn(x))``, run by :func:`norm_lif` (slopes not stored in training).
        """
        return norm_lif(x, self.qkv_bn, self.qkv_lif)

    def mix(self, *heads: torch.Tensor) -> torch.Tensor:
        """The mechanism: branch heads ``[T, B, H, N, D_H]`` each → ``[T, B, H, N, D_H]``."""
        raise NotImplementedError

    def project(self, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``U [T, B, N, D]`` → the branch heads, each ``[T, B, H, N, D_H]`` (views, no copy)."""
        t, b, n, _ = u.shape
        x = self.activate(self.qkv(self.in_lif(u)))  # [T, B, N, n_branches·D]
        x = x.view(t, b, n, len(self.branches), self.num_heads, self.head_dim)
        return tuple(x.permute(3, 0, 1, 4, 2, 5))  # n_branches × [T, B, H, N, D_H]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        t, b, n, d = u.shape
        if n != self.grid[0] * self.grid[1]:
            raise ValueError(f"{type(self).__name__} was built for a {self.grid} token grid, got N = {n} tokens")
        y = self.mix(*self.heads_tap(self.project(u)))  # [T, B, H, N, D_H]
        y = y.transpose(2, 3).reshape(t, b, n, d)  # merge heads: [T, B, N, D]
        return self.proj_bn(self.proj(y))
