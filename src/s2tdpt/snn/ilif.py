"""Integer LIF: training emits integer spike counts, inference can run them as binary sub-steps.

After SpikeYOLO (Luo et al., *Integer-Valued Training and Spike-Driven Inference Spiking Neural Network for
High-performance and Energy-efficient Object Detection*, ECCV 2024, arXiv 2407.20708). Per time step,

    H_t = V_{t-1} + (X_t − V_{t-1}) / τ                         charge (the LIF's decay_input form, V_reset = 0)
    C_t = round(clip(H_t / V_th, 0, D))                         fire: an integer count in 0..D (half rounds up)
    V_t = (H_t / V_th − C_t) · V_th                             soft reset: subtract what was emitted

with a straight-through gradient ``dC/dH = 1/V_th`` inside the clip range (:func:`~.surrogate.integer_spike`).
D = ``max_count`` (4 by default); D = 1 is a binary neuron that fires at half the threshold.

A count C is what D binary sub-steps emit when the neuron may fire once per sub-step at threshold 1/2 (normalised)
and subtracts 1 per spike: ``expand=True`` runs it that way (:meth:`IntegerLIFNode.substeps` returns the binary
trains ``[T, D, ...]``) and emits their sum per step, which is what a downstream synapse integrates over the D
sub-steps; its output, and so the model's logits, equal the count form's (tested). A count k costs k accumulates.

Backends: ``torch`` runs :meth:`IntegerLIFNode.dynamics` step by step under autograd (the reference); ``fused``
(:class:`_FusedILIF`) runs the same float operations without building a graph and has a hand-written backward
(tested equal); ``compiled`` generates a kernel from the reference step.
"""

from __future__ import annotations

import torch

from .base import Neuron, run_steps
from .registry import NeuronOps, register_neuron
from .surrogate import integer_spike


class _FusedILIF(torch.autograd.Function):
    """Multi-step integer LIF, the operations of :meth:`IntegerLIFNode.dynamics` in order, without an autograd
    graph per step; saves only the normalised membranes ``q`` ([T, ...]). Backward through time (C_t detached in
    the reset, so only its straight-through path carries gradient):
        dL/dq_t     = dL/dC_t · [0 <= q_t <= D] + dL/dV_t · V_th
        dL/dH_t     = dL/dq_t / V_th
        dL/dX_t     = dL/dH_t / τ
        dL/dV_{t−1} = dL/dH_t − dL/dH_t / τ
    """

    @staticmethod
    def forward(
        ctx, x_seq: torch.Tensor, v0: torch.Tensor, tau: float, v_threshold: float, max_count: int
    ) -> torch.Tensor:
        q_seq = torch.empty_like(x_seq)  # [T, ...] normalised membrane of every step
        counts = torch.empty_like(x_seq)
        v, low = v0.clone(), torch.empty_like(x_seq[0])  # state and scratch, reused every step
        scaled = v_threshold != 1.0  # dividing or multiplying by 1 is exact: skip those passes
        for t in range(x_seq.shape[0]):
            q, c = q_seq[t], counts[t]
            torch.sub(x_seq[t], v, out=q).div_(tau).add_(v)  # H = V + (X − V)/τ
            if scaled:
                q.div_(v_threshold)  # q = H / V_th
            # C = round_half_up(clip(q, 0, D)) = floor + [fraction >= 1/2], the same exact operations, in place
            torch.floor(torch.clamp(q, 0.0, max_count, out=c), out=low)
            c.sub_(low).ge_(0.5).add_(low)
            torch.sub(q, c, out=v)  # soft reset
            if scaled:
                v.mul_(v_threshold)
        ctx.save_for_backward(q_seq)
        ctx.consts = (tau, v_threshold, max_count)
        return counts

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_c: torch.Tensor):
        (q_seq,) = ctx.saved_tensors
        tau, v_threshold, max_count = ctx.consts
        grad = grad_c * ((q_seq >= 0) & (q_seq <= max_count))  # straight through inside the clip, all steps
        grad_x = torch.empty_like(grad)
        grad_v = None
        for t in reversed(range(q_seq.shape[0])):
            g = grad[t]  # dL/dq_t, then dL/dH_t, in place
            if grad_v is not None:
                g.add_(grad_v, alpha=v_threshold)
            if v_threshold != 1.0:
                g.div_(v_threshold)
            torch.div(g, tau, out=grad_x[t])
            grad_v = g - grad_x[t]
        return grad_x, None, None, None, None  # the initial state is a constant


@register_neuron("ilif")
class IntegerLIFNode(Neuron):
    """Integer LIF: counts ``0..max_count`` per step, soft reset, straight-through gradient."""

    emits = "counts"
    auto_backend = "fused"  # its hand-written pair is faster than the kernel derived from its step (BENCHMARKS.md)
    fused_steps = staticmethod(_FusedILIF.apply)
    #: options that make the neuron binary (one spike per step at most), for mechanisms defined on 0/1 spikes
    binary_options = {"max_count": 1}

    def __init__(
        self,
        backend: str = "fused",
        tau: float = 2.0,
        v_threshold: float = 1.0,
        max_count: int = 4,
        expand: bool = False,
    ) -> None:
        super().__init__(backend)
        if tau <= 0:
            raise ValueError(f"ILIF tau must be > 0, got {tau}")
        if v_threshold <= 0:
            raise ValueError(f"ILIF v_threshold must be > 0, got {v_threshold}")
        if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 1:
            raise ValueError(f"ILIF max_count (D) must be a positive integer, got {max_count!r}")
        self.tau, self.v_threshold, self.max_count, self.expand = tau, v_threshold, max_count, bool(expand)

    @staticmethod
    def dynamics(x, v, tau: float, v_threshold: float, max_count: int):
        h = v + (x - v) / tau  # charge
        q = h / v_threshold  # membrane in units of the threshold
        c = integer_spike(q, float(max_count))  # fire: 0..D
        return c, (q - c.detach()) * v_threshold  # soft reset (q − c is exact: see round_half_up)

    @staticmethod
    def expanded_dynamics(x, v, tau: float, v_threshold: float, max_count: int):
        """:meth:`dynamics` as ``max_count`` binary sub-steps; returns (sub-step spikes ``[D, ...]``, next state)."""
        h = v + (x - v) / tau
        u = h / v_threshold
        sub = []
        for _ in range(max_count):  # at most one spike per sub-step, each paid for by one threshold
            s = (u >= 0.5).to(u.dtype)
            u = u - s
            sub.append(s)
        return torch.stack(sub), u * v_threshold

    def dynamics_args(self) -> tuple:
        return (self.tau, self.v_threshold, self.max_count)

    def update_ops(self) -> NeuronOps:
        """Charge ``V + (x − V)·(1/τ)``: 1 mul, 2 adds; ``q = H·(1/V_th)``: 1 mul; the count
        ``clamp(round(q), 0, D)``: 1 add (round half up) + 2 compares; soft reset ``(q − c)·V_th``: 1 add, 1 mul.
        One state word."""
        return NeuronOps(mul=3, add=6, state=1)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if self.expand:
            return self.substeps(x_seq).sum(1)  # [T, ...]: the counts, as the sum of binary sub-steps
        return super().forward(x_seq)

    @torch.no_grad()
    def substeps(self, x_seq: torch.Tensor) -> torch.Tensor:
        """The spike-driven form (inference): binary spikes ``[T, D, ...]`` whose sum over D is the count."""
        self.check_input(x_seq)
        x32 = x_seq.float() if x_seq.dtype in (torch.bfloat16, torch.float16) else x_seq
        v0 = self.initial_state(x32[0]).to(x32.dtype)
        return run_steps(self.expanded_dynamics, x32, v0, *self.dynamics_args()).to(x_seq.dtype)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, max_count={self.max_count}, expand={self.expand}, "
            f"backend={self.backend}"
        )


def set_expand(model: torch.nn.Module, on: bool = True) -> int:
    """Switch every integer LIF of ``model`` to (or from) its binary sub-step form; returns how many."""
    nodes = [m for m in model.modules() if isinstance(m, IntegerLIFNode)]
    for m in nodes:
        m.expand = on
    return len(nodes)
