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

Three backends compute the same function. ``"torch"`` is the readable reference: a python loop of
:func:`lif_step` under autograd, which keeps about a dozen small tensors per step for backward. ``"fused"``
(default) is :class:`_FusedLIF`: the same forward arithmetic with fewer, in-place ops, saving only the membrane
potentials ``H`` for a hand-written backward through time. ``"compiled"`` (:mod:`.compiled`) generates one
kernel for the whole loop over T with ``torch.compile`` — several times faster on a CPU, where elementwise passes
over memory bound the neuron. Spikes are identical; gradients agree to float rounding (tested). The fast backends
require ``detach_reset=True`` (the default); otherwise the reference runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from . import compiled
from .base import Neuron, run_steps
from .registry import NeuronOps, register_neuron
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
        # H = V + (X − (V − V_reset))/τ, written as (X + V_reset)/τ + (1 − 1/τ)·V (the fused path's float ops)
        h = torch.add((x + p.v_reset) / p.tau, v, alpha=1.0 - 1.0 / p.tau)
    else:
        h = x + v  # Eq. 7: U_t = H_{t-1} + X_t (the leak is applied after the reset, Eq. 9)
    s = spike(h - p.v_threshold, p.surrogate_alpha)  # Eq. 8
    s_reset = s.detach() if p.detach_reset else s
    if p.charge == "decay_input":
        v_next = h * (1.0 - s_reset) + p.v_reset * s_reset  # hard reset
    else:
        v_next = p.beta * h * (1.0 - s_reset) + p.v_reset * s_reset  # Eq. 9
    return s, v_next


def lif_update_ops(p: LIFParams, thresholds: int = 1) -> NeuronOps:
    """:func:`lif_step` per neuron and step, in the cheapest form of its charge: decay_input
    ``V + (x − (V − V_reset))·(1/τ)`` is 1 mul + 2 adds (+1 add with V_reset ≠ 0); the paper's ``x + V`` then
    ``β·H`` after the reset is 1 add + 1 mul. Each threshold compare is an add; the hard reset is a select (free).
    One state word, read and written back."""
    add = 2 + (p.v_reset != 0) if p.charge == "decay_input" else 1
    return NeuronOps(mul=1, add=add + thresholds, state=1)


def lif_multistep(x_seq: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Reference multi-step LIF: a python loop over dim 0 of ``x_seq`` ([T, ...]); returns spikes [T, ...]."""
    return run_steps(lif_step, x_seq, torch.full_like(x_seq[0], p.v_reset), p)


class _FusedLIF(torch.autograd.Function):
    """Multi-step LIF with hard, detached reset; saves only ``H`` ([T, ...]) for backward.

    The same float operations as :func:`lif_step`, in fewer passes: the input term of every step at once, one
    ``add`` per step for the charge, the surrogate of every step at once in backward. Backward through time
    (S_t detached in the reset, σ' the surrogate derivative, {decay_input, paper} charge):
        dL/dH_t     = dL/dS_t · σ'(H_t − V_th) + dL/dV_t · (1 − S_t) · {1, β}
        dL/dX_t     = dL/dH_t · {1/τ, 1}
        dL/dV_{t−1} = dL/dH_t · {1 − 1/τ, 1}
    """

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, p: LIFParams) -> torch.Tensor:
        decay_input = p.charge == "decay_input"
        drive = (x_seq + p.v_reset) / p.tau if decay_input else x_seq  # [T, ...] input term of every step
        h_seq = torch.empty_like(x_seq)
        v = torch.full_like(x_seq[0], p.v_reset)
        for t in range(x_seq.shape[0]):
            h = h_seq[t]
            if decay_input:
                torch.add(drive[t], v, alpha=1.0 - 1.0 / p.tau, out=h)
                v = h.masked_fill(h >= p.v_threshold, p.v_reset)
            else:
                torch.add(drive[t], v, out=h)
                v = (p.beta * h).masked_fill_(h >= p.v_threshold, p.v_reset)
        ctx.p = p
        ctx.save_for_backward(h_seq)
        return (h_seq >= p.v_threshold).to(x_seq.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_s: torch.Tensor):
        (h_seq,) = ctx.saved_tensors
        p = ctx.p
        sg = torch.sigmoid((h_seq - p.v_threshold) * p.surrogate_alpha)
        grad_h = torch.ops.aten.sigmoid_backward(grad_s, sg).mul_(p.surrogate_alpha)  # spike path, all steps
        fired = h_seq >= p.v_threshold
        decay_input = p.charge == "decay_input"
        grad_v = None
        for t in reversed(range(h_seq.shape[0])):
            g = grad_h[t]
            if grad_v is not None:  # reset path from step t + 1
                through_reset = grad_v.masked_fill_(fired[t], 0.0)
                g.add_(through_reset if decay_input else through_reset.mul_(p.beta))
            grad_v = g * (1.0 - 1.0 / p.tau) if decay_input else g.clone()
        return (grad_h.div_(p.tau) if decay_input else grad_h), None


@register_neuron("lif")
class LIFNode(Neuron):
    """Multi-step LIF layer on time-first tensors ``[T, ...]`` → binary spikes of the same shape and dtype.

    Dynamics: :func:`lif_step`. Backends: ``torch`` (the reference loop), ``fused`` (:class:`_FusedLIF`, eager,
    hand-written backward) and ``compiled`` (:mod:`.compiled`, hand-written generated kernels); both fast paths
    are tested against the reference.
    """

    emits = "spikes"

    def __init__(
        self,
        backend: str = "fused",
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        charge: Charge = "decay_input",
        beta: float = 0.5,
        surrogate_alpha: float = 4.0,
        detach_reset: bool = True,
    ) -> None:
        super().__init__(backend)
        self.p = LIFParams(tau, v_threshold, v_reset, charge, beta, surrogate_alpha, detach_reset)

    dynamics = staticmethod(lif_step)

    def dynamics_args(self) -> tuple:
        return (self.p,)

    def update_ops(self) -> NeuronOps:
        return lif_update_ops(self.p)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.p.v_reset, dtype=torch.float32)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        self.check_input(x_seq)
        compilable = x_seq.dtype in (torch.float32, torch.bfloat16, torch.float16)  # float64 stays eager and exact
        if self.backend == "compiled" and self.p.detach_reset and compilable and compiled.available(x_seq.device.type):
            if not (torch.is_grad_enabled() and x_seq.requires_grad):
                return compiled.spikes_only(x_seq, self.p)  # nothing to keep for backward
            return compiled.CompiledLIF.apply(x_seq, self.p)  # float32 membrane inside, spikes in input dtype
        if self.backend in ("fused", "compiled") and self.p.detach_reset:
            # The membrane integrates in float32 even under bf16/fp16 autocast; spikes return in the input dtype.
            x32 = x_seq.float() if x_seq.dtype in (torch.bfloat16, torch.float16) else x_seq
            return _FusedLIF.apply(x32, self.p).to(x_seq.dtype)
        return super().forward(x_seq)  # the reference loop of lif_step

    def extra_repr(self) -> str:
        p = self.p
        return (
            f"charge={p.charge}, tau={p.tau}, beta={p.beta}, v_threshold={p.v_threshold}, "
            f"alpha={p.surrogate_alpha}, backend={self.backend}"
        )


class TernaryLIFNode(nn.Module):
    """Multi-step ternary LIF (the A²OS²A value neuron): emits +1 where ``H ≥ V_th``, −1 where ``H ≤ −V_th``, else 0.

    Charge as :class:`LIFNode`; hard reset to ``V_reset`` after either spike (detached); the surrogate gradient is
    the sum of the sigmoid surrogates of both thresholds. Reference python loop only.
    """

    emits = "spikes"  # −1/0/+1: each nonzero spike triggers one accumulate (with its sign)

    def __init__(self, **params) -> None:
        super().__init__()
        self.p = LIFParams(**params)

    def update_ops(self) -> NeuronOps:
        return lif_update_ops(self.p, thresholds=2)  # +V_th and −V_th

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        p = self.p
        x32 = x_seq.float() if x_seq.dtype in (torch.bfloat16, torch.float16) else x_seq
        v = torch.full_like(x32[0], p.v_reset)
        out = []
        for x in x32:
            h = torch.add((x + p.v_reset) / p.tau, v, alpha=1.0 - 1.0 / p.tau) if p.charge == "decay_input" else x + v
            s = spike(h - p.v_threshold, p.surrogate_alpha) - spike(-h - p.v_threshold, p.surrogate_alpha)
            fired = s.detach().abs()
            v = h * (1.0 - fired) + p.v_reset * fired
            if p.charge == "paper":
                v = v * torch.where(fired > 0, 1.0, p.beta)  # Eq. 9: the leak applies to silent neurons
            out.append(s)
        return torch.stack(out).to(x_seq.dtype)


def reset_states(module: nn.Module) -> None:
    """Clear the state of every stateful submodule (anything with a ``reset()`` method)."""
    for m in module.modules():
        if m is not module and hasattr(m, "reset") and callable(m.reset):
            m.reset()
