"""Speed settings that leave the model's function unchanged (each has an equivalence test).

* :func:`fold_batchnorm` — inference: fold every BatchNorm into the conv / linear before it (a copy; eval only).

Which layer pairs fold is declared by the modules themselves (``bn_pairs``), so nothing is guessed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each declared (conv/linear, BN) pair fused into one layer."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for layer_name, bn_name in getattr(module, "bn_pairs", ()):
            layer, bn = getattr(module, layer_name), getattr(module, bn_name)
            if isinstance(bn, nn.Identity):
                continue
            fused = fuse_conv_bn_eval(layer, bn) if isinstance(layer, nn.Conv2d) else fuse_linear_bn_eval(layer, bn)
            setattr(module, layer_name, fused)
            setattr(module, bn_name, nn.Identity())
    return folded
