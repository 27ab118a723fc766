"""Encoder block with membrane-potential residuals (Eq. 14–27). It never branches on the attention type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..attention.registry import NeuronFactory, create_attention
from .mlp import SpikingMLP


class EncoderBlock(nn.Module):
    """``U' = U + Attn(U)`` (Eq. 25), ``X = U' + MLP(LN?(U'))`` (Eq. 27); ``[T, B, N, D] → [T, B, N, D]``.

    The paper's text mentions a LayerNorm before the MLP; its ancestor builds one but never applies it and the
    published 9.32 M parameters exclude it, so it is off by default (``mlp_layernorm=True`` applies it).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        neuron: NeuronFactory,
        grid: tuple[int, int],
        attention: str = "stdp",
        attn_kwargs: Mapping[str, Any] | None = None,
        mlp_layernorm: bool = False,
    ) -> None:
        super().__init__()
        self.attn = create_attention(attention, dim, num_heads, neuron=neuron, grid=grid, **dict(attn_kwargs or {}))
        self.norm = nn.LayerNorm(dim) if mlp_layernorm else nn.Identity()
        self.mlp = SpikingMLP(dim, int(dim * mlp_ratio), neuron)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = u + self.attn(u)  # membrane-potential residual (Eq. 25)
        return u + self.mlp(self.norm(u))  # Eq. 27
