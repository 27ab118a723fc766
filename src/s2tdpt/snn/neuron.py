"""Leaky integrate-and-fire neuron (paper Eq. 7–9; spec §2), multi-step over time-first input ``[T, ...]``.

Two charge forms are offered:

* ``"decay_input"`` (default, the anchor Spikingformer/SpikingJelly form that produced the published numbers):
  ``H_t = V_{t-1} + (X_t − (V_{t-1} − V_reset)) / τ``;
* ``"paper"`` (the S²TDPT paper's Eq. 7–9): ``U_t = H_{t-1} + X_t`` and, after firing,
  ``H_t = V_reset·S_t + β·U_t·(1 − S_t)``.

Both fire with ``S_t = Θ(H_t − V_th)`` (sigmoid surrogate, α = 4) and reset hard to ``V_reset`` with the spike
in the reset term detached from autograd (the anchor's ``detach_reset=True``).

A neuron iterates over dim 0 (time) only and starts every forward from ``V_reset``: state never crosses
forward calls or samples. ``LIFNode.step`` offers a stateful single-step mode (reset with ``reset()``) for
streaming use; ``forward`` over T steps equals T calls of ``step`` (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .surrogate import spike

Charge = Literal["decay_input", "paper"]
CHARGES = ("decay_input", "paper")


@dataclass(frozen=True)
class LIFParams:
    """Constants of a LIF neuron. ``beta`` is used by the ``"paper"`` charge only, ``tau`` by ``"decay_input"``."""

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    charge: Charge = "decay_input"
    beta: float = 0.5
    surrogate_alpha: float = 4.0
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if self.charge not in CHARGES:
            raise ValueError(f"LIF charge must be one of {CHARGES}, got {self.charge!r}")
        if self.tau <= 0:
            raise ValueError(f"LIF tau must be > 0, got {self.tau}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"LIF beta must lie in [0, 1], got {self.beta}")


def lif_step(x: torch.Tensor, v: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step: charge with input ``x`` from state ``v``, fire, reset. Returns ``(spike, next_state)``."""
    if p.charge == "decay_input":
        h = v + (x - (v - p.v_reset)) / p.tau  # leaky integration of the input
    else:
        h = v + x  # Eq. 7: U_t = H_{t-1} + X_t (the leak is applied after the reset, Eq. 9)
    s = spike(h - p.v_threshold, p.surrogate_alpha)  # Eq. 8
    s_reset = s.detach() if p.detach_reset else s
    if p.charge == "decay_input":
        v_next = h * (1.0 - s_reset) + p.v_reset * s_reset  # hard reset
    else:
        v_next = p.v_reset * s_reset + p.beta * h * (1.0 - s_reset)  # Eq. 9
    return s, v_next


def lif_multistep(x_seq: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Reference multi-step LIF: a python loop over dim 0 of ``x_seq`` ([T, ...]); returns spikes [T, ...]."""
    v = torch.full_like(x_seq[0], p.v_reset)
    spikes = []
    for x in x_seq:  # time only; never a flattened T·B axis
        s, v = lif_step(x, v, p)
        spikes.append(s)
    return torch.stack(spikes)


class LIFNode(nn.Module):
    """Multi-step LIF layer on time-first tensors ``[T, ...]`` → binary spikes of the same shape and dtype."""

    def __init__(self, **params) -> None:
        super().__init__()
        self.p = LIFParams(**params)
        self.v: torch.Tensor | None = None  # state of the single-step mode only

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if x_seq.dim() < 2:
            raise ValueError(f"LIFNode expects a time-first tensor [T, ...] with >= 2 dims, got {tuple(x_seq.shape)}")
        return lif_multistep(x_seq, self.p)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Single-step mode: advance the stored state by one time step."""
        if self.v is None or self.v.shape != x.shape:
            self.v = torch.full_like(x, self.p.v_reset)
        s, self.v = lif_step(x, self.v, self.p)
        return s

    def reset(self) -> None:
        self.v = None

    def extra_repr(self) -> str:
        p = self.p
        return f"charge={p.charge}, tau={p.tau}, beta={p.beta}, v_threshold={p.v_threshold}, alpha={p.surrogate_alpha}"


def reset_states(module: nn.Module) -> None:
    """Clear the state of every stateful submodule (anything with a ``reset()`` method)."""
    for m in module.modules():
        if m is not module and hasattr(m, "reset") and callable(m.reset):
            m.reset()
