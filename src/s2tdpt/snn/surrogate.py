"""Heaviside spike with a sigmoid surrogate gradient.

Forward: ``S = Θ(x)`` with ``Θ(x) = 1 if x >= 0 else 0`` (x = H − V_th).
Backward: ``dS/dx ≈ α·σ(αx)·(1 − σ(αx))``, the derivative of ``σ(αx)`` (SpikingJelly's ``Sigmoid``, α = 4).
"""

from __future__ import annotations

import torch


class SigmoidSpike(torch.autograd.Function):
    """Heaviside forward, sigmoid-derivative backward. Saves only ``x`` for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(x * ctx.alpha)
        # sigmoid_backward(g, y) = g·y·(1 − y), one fused kernel (the fused LIF uses the same ops)
        return torch.ops.aten.sigmoid_backward(grad_out, sg) * ctx.alpha, None


def spike(x: torch.Tensor, alpha: float = 4.0) -> torch.Tensor:
    """Fire where ``x >= 0``; gradients follow the sigmoid surrogate of steepness ``alpha``."""
    return SigmoidSpike.apply(x, alpha)


def sigmoid_surrogate_grad(x: torch.Tensor, alpha: float = 4.0) -> torch.Tensor:
    """Closed form of the surrogate derivative, ``α·σ(αx)·(1 − σ(αx))`` (for tests and docs)."""
    sg = torch.sigmoid(alpha * x)
    return alpha * sg * (1.0 - sg)
