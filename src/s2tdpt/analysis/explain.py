"""Explanations of single predictions (the paper's Fig. 5): spiking Grad-CAM and spike-firing-rate (SFR) maps.

Grad-CAM (Selvaraju et al., ICCV 2017) on the last block's time-first features: A = U_L averaged over T
([B, N, D]), its gradient likewise; channel weights are the token-mean of the gradient, the map is
ReLU(Σ_d w_d A_{n,d}) on the token grid, normalised to [0, 1] per image. Own implementation (about fifteen
lines on the model's ``forward_features`` / ``forward_head`` split) rather than the ``grad-cam`` package: that
package brings OpenCV and a test-time-augmentation library along, and its layer hooks assume batch-first
activations, so time-first features would need a reshape wrapper anyway.

SFR map: per token, the fraction of the spikes that enter each block's attention (its input neuron's output
S̃ = SN(U_{l−1}), all channels = all heads) averaged over timesteps, heads/channels and blocks. Observed by
removable hooks; the model is not modified.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grad_cam(model: nn.Module, images: torch.Tensor, target: torch.Tensor | None = None):
    """Grad-CAM maps on the token grid for ``target`` classes (default: the predictions).

    Returns ``(cams [B, H', W'] in [0, 1], logits [B, classes])``. Gradients are taken w.r.t. the features only;
    parameters receive none.
    """
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        feats = model.forward_features(images).detach().requires_grad_()  # U_L, [T, B, N, D]
        logits = model.forward_head(feats)
        if target is None:
            target = logits.argmax(1)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), feats)
    model.train(was_training)
    acts, grads = feats.detach().mean(0), grad.mean(0)  # mean over T: [B, N, D]
    weights = grads.mean(1, keepdim=True)  # [B, 1, D]: token-mean of the gradient
    cam = F.relu((acts * weights).sum(-1))  # [B, N]
    cam = cam / cam.amax(1, keepdim=True).clamp_min(1e-12)
    side = int(round(cam.shape[1] ** 0.5))
    return cam.view(-1, side, side), logits.detach()


@torch.no_grad()
def sfr_map(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Spike firing rate per token, averaged over timesteps, channels (all heads) and blocks: ``[B, H', W']``."""
    rates = []

    def hook(module, args, out):  # out: S̃, [T, B, N, D]
        rates.append((out != 0).float().mean(dim=(0, 3)))  # [B, N]

    handles = [block.attn.in_lif.register_forward_hook(hook) for block in model.blocks]
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    sfr = torch.stack(rates).mean(0)  # mean over blocks
    side = int(round(sfr.shape[1] ** 0.5))
    return sfr.view(-1, side, side)


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Token-grid maps ``[B, h, w]`` → image-sized ``[B, size, size]`` (bilinear)."""
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
