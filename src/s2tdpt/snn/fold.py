"""Fold time into batch for stateless layers: ``[T, B, ...] → [T·B, ...] → layer → [T, B, ...]``."""

from __future__ import annotations

from collections.abc import Callable

import torch


def seq_apply(fn: Callable[[torch.Tensor], torch.Tensor], x_seq: torch.Tensor) -> torch.Tensor:
    """Apply a stateless layer (conv, BN, pool) to every time step at once, BN statistics pooled over T·B."""
    t, b = x_seq.shape[:2]
    y = fn(x_seq.flatten(0, 1))  # [T·B, ...]
    return y.unflatten(0, (t, b))  # [T, B, ...]
