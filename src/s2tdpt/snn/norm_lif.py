"""``LIF(BatchNorm(x))`` in training without storing the neuron's surrogate slopes (``norm_lif``).

Where a BatchNorm feeds a LIF (in S²TDPT: the QKV projection's BN, the MLP's first BN, and the BN of tokenizer
stages 1–3, each with the next stage's LIF), autograd through the two modules keeps BN's input ``x`` (for BN's
backward) *and* the LIF's slopes σ'(H − V_th) (for the LIF's backward): two tensors of the layer's size. The slopes
are a cheap function of ``x`` and BN's batch statistics, so :class:`_NormLIF` keeps only ``x``, the statistics and
the spikes, and recomputes the membrane in backward inside the same generated kernel that runs the LIF's backward
(:func:`~s2tdpt.snn.compiled.norm_backward`): 0.52 GiB fewer saved activations at batch 64 for ``s2tdpt_4_384``
(``benchmarks/memory.py``), for no extra pass over memory.

The forward is the reference's own operations on the CPU (``torch.native_batch_norm``, which ``nn.BatchNorm*``
calls there, with the same running-statistics update, then the compiled LIF), so outputs and running statistics
are identical (on CUDA ``nn.BatchNorm`` may use cuDNN instead: equal to rounding); gradients agree with
``lif(bn(x))`` to rounding (tested). The fused path is taken only where it is the same function — a training-mode
``TokenBatchNorm`` (token layout) or ``BatchNorm2d`` (``[T·B, C, H, W]``), a ``LIFNode`` with the compiled backend,
gradients wanted, on CPU or CUDA, and no hooks or replaced ``forward`` on either module (so analysis tools that
observe them see the modules run as written) — and :func:`norm_lif` runs ``lif(bn(x))`` everywhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules import module as _module

from ..layers.norm import TokenBatchNorm
from . import compiled
from .neuron import LIFNode, LIFParams

_enabled = True


@contextlib.contextmanager
def unfused() -> Iterator[None]:
    """Within this block :func:`norm_lif` runs ``lif(bn(x))`` as written (to measure or test the fused path)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def norm_lif(x: torch.Tensor, bn: nn.Module, lif: nn.Module, timesteps: int | None = None) -> torch.Tensor:
    """``lif(bn(x))``, in training without keeping the LIF's slopes for backward.

    Args:
        x: BN's input. Token layout ``[T, B, N, C]`` for a token BatchNorm (``timesteps=None``; BN normalises the
            last dim), or ``[T·B, C, H, W]`` for ``BatchNorm2d`` with ``timesteps=T``.
        bn: the BatchNorm (or ``nn.Identity`` after BN folding).
        lif: the neuron.
    Returns:
        spikes ``[T, B, N, C]`` or ``[T, B, C, H, W]``.
    """
    if not _fusable(x, bn, lif, timesteps):
        y = bn(x)
        return lif(y if timesteps is None else y.unflatten(0, (timesteps, -1)))
    return _NormLIF.apply(x, bn.weight, bn.bias, bn, lif.p, timesteps)


def _hooked(m: nn.Module) -> bool:
    """Whether anything observes or replaces the module's call (hooks, an instance-level ``forward``)."""
    return bool(
        m._forward_hooks
        or m._forward_pre_hooks
        or m._backward_hooks
        or m._backward_pre_hooks
        or _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
        or "forward" in m.__dict__
    )


def _fusable(x: torch.Tensor, bn: nn.Module, lif: nn.Module, timesteps: int | None) -> bool:
    # the BN must compute what _NormLIF computes: TokenBatchNorm over the last dim, or BatchNorm2d over dim 1
    if timesteps is None:
        layout_ok = type(bn).forward is TokenBatchNorm.forward
    else:
        layout_ok = type(bn).forward is nn.BatchNorm2d.forward and isinstance(bn, nn.BatchNorm2d) and x.dim() == 4
    channels = x.shape[-1] if timesteps is None else (x.shape[1] if x.dim() > 1 else 0)
    return (
        _enabled
        and layout_ok
        and bn.training
        and x.numel() > max(channels, 1)  # BN in training needs more than one value per channel (nn raises)
        and type(lif).forward is LIFNode.forward
        and lif.backend == "compiled"
        and lif.p.detach_reset
        and torch.is_grad_enabled()
        and x.requires_grad
        and x.dtype in (torch.float32, torch.bfloat16, torch.float16)
        and x.device.type in ("cpu", "cuda")
        and not (_hooked(bn) or _hooked(lif))
        and compiled.available(x.device.type)
    )


def _momentum(bn: nn.modules.batchnorm._BatchNorm) -> float:
    """The running-statistics factor of this step, advancing ``num_batches_tracked`` as ``_BatchNorm.forward``."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return momentum


def _bn_layout(x: torch.Tensor, timesteps: int | None) -> torch.Tensor:
    """``x`` as BN sees it, channels in dim 1: tokens ``[T, B, N, C]`` → ``[M, C]``; ``[T·B, C, H, W]`` as is."""
    return x.reshape(-1, x.shape[-1]) if timesteps is None else x


class _NormLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, bn, p: LIFParams, timesteps: int | None):
        x_bn = _bn_layout(x, timesteps)
        bn._check_input_dim(x_bn)
        tracked = bn.track_running_stats  # as _BatchNorm.forward: no running statistics passed when not tracking
        y, mean, invstd = torch.native_batch_norm(
            x_bn,
            weight,
            bias,
            bn.running_mean if tracked else None,
            bn.running_var if tracked else None,
            True,
            _momentum(bn),
            bn.eps,
        )
        y_seq = y.view(x.shape) if timesteps is None else y.unflatten(0, (timesteps, -1))
        spikes = compiled.spikes_only(y_seq, p)  # [T, ...]
        ctx.p, ctx.timesteps, ctx.eps = p, timesteps, bn.eps
        ctx.save_for_backward(x, weight, bias, mean, invstd, spikes)
        return spikes

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_s):
        x, weight, bias, mean, invstd, spikes = ctx.saved_tensors
        timesteps = ctx.timesteps
        x_bn = _bn_layout(x, timesteps)
        c = x_bn.shape[1]
        # BN's affine map per channel as the CPU kernel applies it, y = x·a + (b − mean·a) with a = invstd·w (the
        # kernel's fused multiply-adds are emulated in float64 for the per-channel shift only; the recomputed y
        # of the elementwise pass can differ from BN's by one unit in the last place, which only touches slopes)
        scale = invstd if weight is None else invstd * weight.float()
        b = torch.zeros_like(scale) if bias is None else bias.float()
        shift = (b.double() - mean.double() * scale.double()).float()
        if timesteps is None:
            x_seq, view = x, (c,)
        else:
            x_seq, view = x.unflatten(0, (timesteps, -1)), (c,) + (1,) * (x.dim() - 2)
        grad_y = compiled.norm_backward(grad_s.contiguous(), x_seq, scale.view(view), shift.view(view), spikes, ctx.p)
        grad_y_bn = grad_y.reshape(x_bn.shape)
        need = ctx.needs_input_grad
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad_y_bn, x_bn, weight, None, None, mean, invstd, True, ctx.eps,
            [need[0], weight is not None and need[1], bias is not None and need[2]],
        )  # fmt: skip
        gx = gx.reshape(x.shape) if gx is not None else None
        return gx, gw, gb, None, None, None
