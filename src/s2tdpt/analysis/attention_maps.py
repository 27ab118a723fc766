"""What each attention mechanism "looks at", for one image: observed through the attention's heads tap.

* ``stdp``: the per-head STDP matrix A (dense reference, :func:`stdp_attention_matrix`) and the spike counts
  r_Q, r_K that determine it (A depends on nothing else).
* ``ssa`` / ``lrf_ssa``: Q Kᵀ; ``a2os2a``: Q·ReLU(K)ᵀ; ``softmax``: softmax(Q Kᵀ/√D_H); ``random_frozen``: R.
* ``qk_token``: the token mask's input Σ_c Q (a per-token map); ``sdsa``: Σ_n K ⊙ V (a per-channel map).
* ``lrf_dyn``: the dendritic kernel K[d, l] along tokens; ``identity``: nothing to show.

Matrices are for one block and one timestep (or averaged over T), ``[H, N, N]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attention.stdp import stdp_attention_matrix


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
    name = model.config.attention
    h = dict(zip(attn.branches, (x[:, 0] for x in heads), strict=True))  # [T, H, N, D_H] each
    out: dict[str, torch.Tensor] = {}
    if name == "stdp":
        out["A (STDP)"] = stdp_attention_matrix(h["q"], h["k"], validate=False, **attn.stdp()).mean(0)
        out["spike count r_Q"] = h["q"].sum(-1)  # [T, H, N]
        out["spike count r_K"] = h["k"].sum(-1)
    elif name in ("ssa", "lrf_ssa"):
        out["Q·Kᵀ"] = (h["q"] @ h["k"].transpose(-2, -1)).mean(0)
    elif name == "a2os2a":
        out["Q·ReLU(K)ᵀ"] = (h["q"] @ h["k"].transpose(-2, -1)).mean(0)
    elif name == "softmax":
        scale = h["q"].shape[-1] ** -0.5
        out["softmax(Q·Kᵀ/√D_H)"] = F.softmax(h["q"] @ h["k"].transpose(-2, -1) * scale, dim=-1).mean(0)
    elif name == "random_frozen":
        out["R (frozen)"] = attn.weights.clone()
    elif name == "qk_token":
        out["Σ_c Q per token"] = h["q"].sum(-1).mean(0)  # [H, N]
    elif name == "sdsa":
        out["Σ_n K⊙V per channel"] = (h["k"] * h["v"]).sum(-2).mean(0)  # [H, D_H]
    elif name == "lrf_dyn":
        out["dendritic kernel K[d, l]"] = attn.dynamics.kernel(h[attn.branches[0]].shape[-2])  # [D, N]
    return out
