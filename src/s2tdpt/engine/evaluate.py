"""Evaluation: loss, top-1, top-5, per-class accuracy and the confusion matrix (summed over DDP ranks)."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .distributed import DistContext, all_reduce_sum
from .hardware import native_bf16_cpu


@dataclass
class EvalResult:
    loss: float
    top1: float  # percent
    top5: float  # percent (top-k with k = min(5, classes))
    count: int
    confusion: torch.Tensor  # [true, predicted] counts

    @property
    def per_class(self) -> torch.Tensor:
        """Recall of each true class, in percent (NaN for classes absent from the data)."""
        totals = self.confusion.sum(1).double()
        return 100.0 * self.confusion.diagonal().double() / totals


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix multiplies run natively (faster than fp32), so autocast pays off."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and native_bf16_cpu()


def resolve_amp(amp: str, device: torch.device) -> str:
    if amp == "auto":
        return "bf16" if native_bf16(device) else "none"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp 'fp16' needs a CUDA device (it uses a gradient scaler); use bf16 or none on the CPU")
    return amp


def autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    device: torch.device,
    num_classes: int,
    amp: str = "none",
    ctx: DistContext | None = None,
    progress: bool = True,
) -> EvalResult:
    ctx = ctx or DistContext(device=device)
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1 hits, top-5 hits, count
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    k = min(5, num_classes)
    show = progress and ctx.is_main and sys.stderr.isatty()
    for images, labels in tqdm(loader, desc="eval", leave=False, disable=not show):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        topk = logits.topk(k, dim=1).indices
        sums[0] += F.cross_entropy(logits, labels, reduction="sum")
        sums[1] += (topk[:, 0] == labels).sum()
        sums[2] += (topk == labels[:, None]).any(1).sum()
        sums[3] += labels.numel()
        confusion += torch.bincount(labels * num_classes + topk[:, 0], minlength=num_classes * num_classes)
    all_reduce_sum(sums, ctx)
    all_reduce_sum(confusion, ctx)
    model.train(was_training)
    n = int(sums[3].item())
    if n == 0:  # an accuracy of no images is undefined, not 0 %
        raise ValueError("the test set is empty: nothing to evaluate; check the data folder and --limit-test")
    return EvalResult(
        loss=sums[0].item() / n,
        top1=100.0 * sums[1].item() / n,
        top5=100.0 * sums[2].item() / n,
        count=int(sums[3].item()),
        confusion=confusion.view(num_classes, num_classes).cpu(),
    )
