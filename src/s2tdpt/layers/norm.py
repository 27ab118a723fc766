"""BatchNorm over the channel (last) dim of token tensors ``[..., D]``, statistics pooled over all other dims."""

from __future__ import annotations

import torch
from torch import nn


class TokenBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` for channels-last token tensors such as ``[T, B, N, D]``.

    Statistics are pooled over T, B and N, exactly as the anchors' ``BatchNorm1d`` on ``[T·B, D, N]``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view(x.shape)
