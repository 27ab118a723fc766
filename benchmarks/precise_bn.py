"""Test top-1 of quick-start checkpoints before and after "precise BN": every BatchNorm's running statistics
recomputed as an exact average over the training set (one pass in training mode, no gradients, ``momentum=None``).

    python benchmarks/precise_bn.py runs/<run>/last.pt [...]

For checkpoints of the embedded quick start (``s2tdpt train`` defaults: digits, no augmentation). Prints one line
per checkpoint: its path, test top-1 as saved, and after one and two passes.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from s2tdpt.cli.common import model_from_checkpoint
from s2tdpt.data.loaders import build_loaders
from s2tdpt.engine.config import TrainConfig
from s2tdpt.engine.evaluate import evaluate


def precise_bn(model: nn.Module, loader, passes: int) -> None:
    """Running statistics = the average of the batch statistics over ``passes`` passes of ``loader``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            for images, _ in loader:
                model(images)


def main(paths: list[str]) -> None:
    data = build_loaders(TrainConfig())  # the quick start's data and batches
    cpu = torch.device("cpu")
    for path in paths:
        model, _ = model_from_checkpoint(path)
        tops = [evaluate(model, data.test_loader, cpu, 10, progress=False).top1]
        for passes in (1, 2):
            precise_bn(model, data.train_loader, passes)
            tops.append(evaluate(model, data.test_loader, cpu, 10, progress=False).top1)
        print(path, " ".join(f"{t:.2f}" for t in tops), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
