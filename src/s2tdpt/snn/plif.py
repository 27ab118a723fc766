"""Parametric LIF (Fang et al., *Incorporating Learnable Membrane Time Constant to Enhance Learning of Spiking
Neural Networks*, ICCV 2021, arXiv 2007.05785).

The LIF's ``decay_input`` charge with a learnable time constant, one per layer, kept above 1 by a sigmoid:

    H_t = V_{t-1} + k·(X_t − (V_{t-1} − V_reset)),   k = 1/τ = sigmoid(w)

then fire ``S_t = Θ(H_t − V_th)`` (sigmoid surrogate) and hard, detached reset to ``V_reset``. ``w`` starts at
``−log(τ₀ − 1)`` (τ₀ = 2 → w = 0, as the paper). The charge uses ``w`` clamped to ``[−10, 10]`` (τ between
1.00005 and 22,027): a far step of the optimiser cannot make the neuron stop charging (τ = ∞) or overflow.
No hand-written fast path: ``"fused"`` runs the reference loop,
``"compiled"`` the generated kernel of the same step (tested equal).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Neuron
from .registry import NeuronOps, register_neuron
from .surrogate import spike


@register_neuron("plif")
class ParametricLIFNode(Neuron):
    """LIF with a learnable membrane time constant τ = 1 / sigmoid(w) > 1 (one scalar per layer)."""

    emits = "spikes"
    W_RANGE = 10.0  # |w| used by the charge

    def __init__(
        self,
        backend: str = "fused",
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        surrogate_alpha: float = 4.0,
    ) -> None:
        super().__init__(backend)
        if not 1.0 + math.exp(-self.W_RANGE) <= tau <= 1.0 + math.exp(self.W_RANGE):
            raise ValueError(f"PLIF's initial tau must lie in (1, 22026] (tau = 1/sigmoid(w), |w| <= 10), got {tau}")
        self.w = nn.Parameter(torch.tensor(-math.log(tau - 1.0)))
        self.v_threshold, self.v_reset, self.surrogate_alpha = v_threshold, v_reset, surrogate_alpha

    @property
    def tau(self) -> float:
        """The current time constant."""
        return 1.0 / torch.sigmoid(self.w.detach().clamp(-self.W_RANGE, self.W_RANGE)).item()

    @staticmethod
    def dynamics(x, v, w, v_threshold: float, v_reset: float, alpha: float):
        h = v + torch.sigmoid(w) * (x - (v - v_reset))  # charge (w arrives clamped)
        s = spike(h - v_threshold, alpha)  # fire
        fired = s.detach()  # reset, spike detached
        return s, h * (1.0 - fired) + v_reset * fired

    def update_ops(self) -> NeuronOps:
        """``V + k·(x − (V − V_reset))`` with k = sigmoid(w) computed once per layer: 1 mul, 2 adds (+1 with
        V_reset ≠ 0); the threshold compare 1 add; the reset a select. One state word."""
        return NeuronOps(mul=1, add=3 + (self.v_reset != 0), state=1)

    def dynamics_args(self) -> tuple:
        return (self.w.clamp(-self.W_RANGE, self.W_RANGE), self.v_threshold, self.v_reset, self.surrogate_alpha)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.v_reset, dtype=torch.float32)

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4g} (learnable), v_threshold={self.v_threshold}, backend={self.backend}"
