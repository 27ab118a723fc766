"""The multi-step LIF as two generated kernels (``torch.compile``): one pass over time forward, one backward.

Eager PyTorch runs each per-step operation of :func:`~s2tdpt.snn.neuron.lif_step` as its own pass over memory;
on a CPU those elementwise passes, not arithmetic, bound the neuron's cost. Here the whole loop over T is one
function that Inductor fuses into a single loop per element: the forward reads the input once and writes the
spikes and the surrogate slope σ'(H − V_th) (kept for backward, in bf16 when the input is bf16, else float32);
the backward reads the incoming gradient, the slope and the spikes once and writes the input gradient.

:func:`norm_backward` is the backward of a LIF that follows a BatchNorm (:mod:`.norm_lif`): it recomputes the
membrane from BN's input instead of reading stored slopes.

Same dynamics as the reference (hard, detached reset; the membrane in float32). Spikes agree with the reference
loop; gradients agree to rounding (float32) or to bf16 precision of the stored slope (tested). Requires a
working ``torch.compile`` (a C++ compiler on the CPU); :func:`available` says whether it does, and
:class:`~s2tdpt.snn.neuron.LIFNode` falls back to the eager fused path when it does not.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch

log = logging.getLogger("s2tdpt")
# Inductor's C++ toolchain probe warns about a missing CUDA runtime on CPU-only machines; irrelevant here.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def _charge(x, v, v_reset: float, tau: float, decay_input: bool):
    """Membrane H_t from the input X_t (float32) and the state V_{t-1}."""
    return (x + v_reset) / tau + v * (1.0 - 1.0 / tau) if decay_input else x + v


def _after_spike(fired, h, v_reset: float, beta: float, decay_input: bool):
    """State V_t: hard reset where the neuron fired, else H_t (``decay_input``) or β·H_t (``paper``)."""
    return torch.where(fired, torch.full_like(h, v_reset), h if decay_input else beta * h)


def _slope(h, v_th: float, alpha: float, store: torch.dtype):
    """Surrogate derivative σ'(H − V_th)·α, rounded to the dtype it is kept in."""
    sig = torch.sigmoid((h - v_th) * alpha)
    return (sig * (1.0 - sig) * alpha).to(store)


def _slope_dtype(x_seq) -> torch.dtype:
    return torch.bfloat16 if x_seq.dtype in (torch.bfloat16, torch.float16) else torch.float32


def _forward(x_seq, v_reset: float, tau: float, v_th: float, alpha: float, beta: float, decay_input: bool):
    v = torch.zeros_like(x_seq[0], dtype=torch.float32) + v_reset
    spikes, slopes = [], []
    for t in range(x_seq.shape[0]):
        h = _charge(x_seq[t].float(), v, v_reset, tau, decay_input)
        fired = h >= v_th
        slopes.append(_slope(h, v_th, alpha, _slope_dtype(x_seq)))
        spikes.append(fired.to(x_seq.dtype))
        v = _after_spike(fired, h, v_reset, beta, decay_input)
    return torch.stack(spikes), torch.stack(slopes)


def _spikes_only(x_seq, v_reset: float, tau: float, v_th: float, beta: float, decay_input: bool):
    """Inference: the same dynamics without the surrogate slopes (nothing is kept for a backward pass)."""
    v = torch.zeros_like(x_seq[0], dtype=torch.float32) + v_reset
    spikes = []
    for t in range(x_seq.shape[0]):
        h = _charge(x_seq[t].float(), v, v_reset, tau, decay_input)
        fired = h >= v_th
        spikes.append(fired.to(x_seq.dtype))
        v = _after_spike(fired, h, v_reset, beta, decay_input)
    return torch.stack(spikes)


def _backward(grad_s, slopes, spikes, tau: float, beta: float, decay_input: bool):
    """dL/dX through time; ``slopes[t]`` indexes a stored [T, ...] tensor or a list of recomputed ones."""
    grad_v = torch.zeros_like(grad_s[0], dtype=torch.float32)
    grads = []
    for t in range(grad_s.shape[0] - 1, -1, -1):
        keep = 1.0 - spikes[t].float()  # reset path: V_t = H_t·(1 − S_t)(·β), S_t detached
        g = grad_s[t].float() * slopes[t].float() + grad_v * (keep if decay_input else keep * beta)
        grads.append(g / tau if decay_input else g)
        grad_v = g * (1.0 - 1.0 / tau) if decay_input else g
    return torch.stack(grads[::-1]).to(grad_s.dtype)


def _norm_backward(
    grad_s,
    x_seq,
    scale,
    shift,
    spikes,
    v_reset: float,
    tau: float,
    v_th: float,
    alpha: float,
    beta: float,
    decay_input: bool,
):
    """Backward of ``LIF(x·scale + shift)`` without stored slopes: the slopes are recomputed from BN's input ``x``
    ([T, ...], before normalisation) as :func:`_forward` computed them (y rounded to x's dtype as BN's output was;
    the reset from the forward's spikes), then :func:`_backward` — one generated kernel. Returns dL/dy."""
    v = torch.zeros_like(x_seq[0], dtype=torch.float32) + v_reset
    slopes = []
    for t in range(x_seq.shape[0]):
        y = (x_seq[t].float() * scale + shift).to(x_seq.dtype).float()
        h = _charge(y, v, v_reset, tau, decay_input)
        slopes.append(_slope(h, v_th, alpha, _slope_dtype(x_seq)))
        v = _after_spike(spikes[t] > 0, h, v_reset, beta, decay_input)
    return _backward(grad_s, slopes, spikes, tau, beta, decay_input)  # a list: stacking would write it to memory


_KERNELS: dict[Callable, Callable] = {}


def _kernel(fn: Callable) -> Callable:
    """``fn`` as its generated kernel (compiled once per process); while an enclosing ``torch.compile`` traces the
    whole model (``s2tdpt train --compile on``), ``fn`` itself, so that graph fuses the loop with its neighbours."""
    if torch.compiler.is_compiling():
        return fn
    if fn not in _KERNELS:
        _KERNELS[fn] = torch.compile(fn, dynamic=True)
    return _KERNELS[fn]


def norm_backward(grad_s, x_seq, scale, shift, spikes, p) -> torch.Tensor:
    """dL/dy of ``spikes = LIF(y)``, ``y = x·scale + shift`` per channel, recomputing the membrane from ``x``."""
    decay_input = p.charge == "decay_input"
    return _kernel(_norm_backward)(
        grad_s, x_seq, scale, shift, spikes, p.v_reset, p.tau, p.v_threshold, p.surrogate_alpha, p.beta, decay_input
    )


def spikes_only(x_seq: torch.Tensor, p) -> torch.Tensor:
    """Forward without autograd state (eval / no_grad)."""
    return _kernel(_spikes_only)(x_seq, p.v_reset, p.tau, p.v_threshold, p.beta, p.charge == "decay_input")


def available(device_type: str = "cpu") -> bool:
    """Whether torch.compile works here for ``device_type`` (tried once on a tiny input; the result is cached)."""
    return torch.compiler.is_compiling() or _probe(device_type)  # a whole-model compile in progress: it does


def require(device_type: str, what: str) -> None:
    """Raise a ValueError naming ``what`` (an option) unless torch.compile works for ``device_type``."""
    if not available(device_type):
        raise ValueError(
            f"{what} needs a working torch.compile on {device_type} (on a CPU: a C++ compiler), and it failed here "
            f"(see the warning above); leave the option out to run eagerly"
        )


@functools.cache
def _probe(device_type: str) -> bool:
    try:
        fwd, bwd = _kernel(_forward), _kernel(_backward)
        x = torch.randn(2, 3, 5, device=device_type)
        s, sl = fwd(x, 0.0, 2.0, 1.0, 4.0, 0.5, True)
        bwd(torch.ones_like(s), sl, s, 2.0, 0.5, True)
        one = torch.ones(5, device=device_type)
        _kernel(_norm_backward)(torch.ones_like(s), x, one, 0 * one, s, 0.0, 2.0, 1.0, 4.0, 0.5, True)
        return True
    except Exception as e:  # no compiler, unsupported platform, ...
        log.warning(f"compiled LIF unavailable on {device_type} ({type(e).__name__}: {e}); using the eager fused LIF")
        return False


class CompiledLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, p) -> torch.Tensor:
        decay_input = p.charge == "decay_input"
        spikes, slopes = _kernel(_forward)(
            x_seq, p.v_reset, p.tau, p.v_threshold, p.surrogate_alpha, p.beta, decay_input
        )
        ctx.p = p
        ctx.save_for_backward(slopes, spikes)
        return spikes

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_s: torch.Tensor):
        slopes, spikes = ctx.saved_tensors
        p = ctx.p
        return _kernel(_backward)(grad_s.contiguous(), slopes, spikes, p.tau, p.beta, p.charge == "decay_input"), None
