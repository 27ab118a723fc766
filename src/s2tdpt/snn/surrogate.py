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


class IntegerSpike(torch.autograd.Function):
    """Integer spike count ``round(clip(q, 0, D))`` of a normalised membrane ``q = H / V_th`` (half rounds up).

    Backward: straight through the rounding, zero where the clip is active: ``dC/dq = 1`` for ``0 <= q <= D``.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, max_count: float) -> torch.Tensor:
        ctx.save_for_backward(q)
        ctx.max_count = max_count
        return round_half_up(q.clamp(0.0, max_count))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (q,) = ctx.saved_tensors
        inside = (q >= 0.0) & (q <= ctx.max_count)
        return grad_out * inside.to(grad_out.dtype), None


def round_half_up(q: torch.Tensor) -> torch.Tensor:
    """``floor(q) + [q − floor(q) >= 1/2]``, exact in floating point (``q − floor(q)`` has no rounding error),
    so it counts exactly the unit sub-steps a membrane ``q`` can pay for at threshold 1/2 (the expanded form)."""
    low = torch.floor(q)
    return low + (q - low >= 0.5).to(q.dtype)


def integer_spike(q: torch.Tensor, max_count: float) -> torch.Tensor:
    """Count ``round(clip(q, 0, max_count))`` with a straight-through gradient inside the clip range."""
    return IntegerSpike.apply(q, max_count)
