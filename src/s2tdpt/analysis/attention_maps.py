"""What an attention mechanism "looks at", for one image: its branch heads are observed through the heads tap and
the mechanism names its own maps (``maps`` on each class in ``s2tdpt/attention/``; e.g. STDP: A and the spike
counts that determine it; SSA: Q·Kᵀ; identity: none). Matrices are for one block, averaged over T, ``[H, N, N]``.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def capture_heads(model: nn.Module, image: torch.Tensor, block: int = -1) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Run one image ``[C, H, W]`` (or one sample of frames ``[T, C, H, W]``); return the block's attention module
    and its branch heads ``[T, 1, H, N, D_H]``."""
    attn = model.blocks[block].attn
    seen = {}
    handle = attn.heads_tap.register_forward_hook(lambda m, a, out: seen.__setitem__("heads", out))
    was_training = model.training
    model.eval()
    try:
        model(image[:, None] if image.dim() == 4 else image[None])  # a batch of one: frames keep T first
    finally:
        handle.remove()
        model.train(was_training)
    return attn, seen["heads"]


@torch.no_grad()
def attention_maps(model: nn.Module, image: torch.Tensor, block: int = -1) -> dict[str, torch.Tensor]:
    """Named maps for one image; matrices ``[H, N, N]`` averaged over T, vectors per head or per token."""
    attn, heads = capture_heads(model, image, block)
    h = dict(zip(attn.branches, (x[:, 0] for x in heads), strict=True))  # [T, H, N, D_H] each
    return attn.maps(h)
