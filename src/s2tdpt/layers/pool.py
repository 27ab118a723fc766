"""Max-pooling for the tokenizer: ``nn.MaxPool2d`` evaluated in channels-last memory, indices recomputed in backward.

PyTorch's CPU max-pool over an NCHW tensor walks one channel plane at a time; over a channels-last (NHWC) copy it
vectorises across channels and, measured on the tokenizer's spike maps (``benchmarks/layouts.py``), the forward
takes 21–43 % of the time even with the two layout copies. The result, the argmax indices
(ties go to the first maximum in window order in both layouts) and so the gradient are identical to
``nn.MaxPool2d`` — the readable reference, and what runs for options this path does not cover (tested).

Backward keeps only the input (which the spiking neuron before the pool keeps anyway) and recomputes the argmax,
instead of keeping int64 indices: 8 bytes per output, more than the bf16 spikes being pooled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

_CL = torch.channels_last


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=_CL)


class _PoolNoIndices(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.geometry = (kernel, stride, padding)
        return F.max_pool2d(_nhwc(x), kernel, stride, padding).contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        k, s, p = ctx.geometry
        _, idx = F.max_pool2d(_nhwc(x), k, s, p, return_indices=True)  # flat h·W + w per plane: layout-free
        grad = torch.ops.aten.max_pool2d_with_indices_backward(
            grad_out.contiguous(), x, [k, k], [s, s], [p, p], [1, 1], False, idx.contiguous()
        )
        return grad, None, None, None


class ChannelsLastMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` with square int kernel / stride / padding on ``[N, C, H, W]``, computed channels-last.

    Other inputs or options (dilation, ceil mode, returned indices, non-4-D input) run the parent's forward.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p = self.kernel_size, self.stride, self.padding
        plain = all(isinstance(v, int) for v in (k, s, p)) and self.dilation == 1
        if x.dim() != 4 or not plain or self.ceil_mode or self.return_indices:
            return super().forward(x)
        return _PoolNoIndices.apply(x, k, s, p)  # without autograd (inference) this is just its forward
