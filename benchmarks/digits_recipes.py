"""Recipes for the embedded quick start (8×8 digits), several seeds each: test errors per epoch, with weight EMAs
and precise BN evaluated in the same runs.

    OMP_NUM_THREADS=1 python benchmarks/digits_recipes.py --seeds 0 1 2 3 4 [--epochs 16] [--shift 0.5]
        [--ema 0.9 0.98] [--precise-bn] [--model-kwargs '{"embed_dim": 128}'] [--lr 2e-3] [--batch-size 16]
        [--smoothing 0] [--warmup-epochs 0.5] [--drop-last]

The loop is ``s2tdpt train``'s recipe (AdamW with no decay on norm and bias, warm-up then per-step cosine to 1e-5,
label smoothing, seeds from ``seed_everything(seed, 0)`` for the model and ``(seed, 1, epoch, 0)`` for each
epoch's order, float32) on in-memory tensors, so it is fast to sweep and can try what the CLI has no flag for:
``--shift P`` moves an image by a random whole pixel in x and y (each of −1, 0, +1, zero padding; (0, 0) is one of
the nine) with probability P; ``--crop-pad 1`` is P = 1. It differs from the CLI in the batches: a random
permutation per epoch whose last, partial batch is kept (45 steps of 32, the last of 29; the CLI's loader drops it:
44 steps, as ``--drop-last`` does here); either way a seed's figure differs from ``s2tdpt train --seed N``'s (another
data order); compare recipes with each other here. One JSON line per run, then a summary per column.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
from timm.loss import LabelSmoothingCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch import nn

from s2tdpt.data.datasets import NORMALIZATION
from s2tdpt.data.digits import load_digits_split
from s2tdpt.engine.train import seed_everything
from s2tdpt.models import S2TDPT, resolve_config

sys.path.insert(0, str(Path(__file__).parent))  # the sibling script's function, also when imported from elsewhere
from precise_bn import precise_bn  # noqa: E402


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The quick start's split, normalised as it trains: images [N, 1, 8, 8], labels [N]."""
    x_tr, x_te, y_tr, y_te = load_digits_split()
    (mean,), (std,) = NORMALIZATION["digits"]

    def prep(x):
        return ((torch.tensor(x).float() / 255 - mean) / std)[:, None]

    return prep(x_tr), torch.tensor(y_tr), prep(x_te), torch.tensor(y_te)


def random_shift(x: torch.Tensor, p: float, fill: float) -> torch.Tensor:
    """Each image [1, 8, 8] moved by (dy, dx) ∈ {−1, 0, 1}², uniformly, with probability ``p``; zero padding."""
    b, _, h, w = x.shape
    padded = nn.functional.pad(x, (1, 1, 1, 1), value=fill)
    dx, dy = torch.randint(0, 3, (b,)), torch.randint(0, 3, (b,))
    keep = torch.rand(b) >= p
    dy[keep], dx[keep] = 1, 1  # offset 1 in the padded image = not moved
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 128]).argmax(1) for i in range(0, len(x), 128)])
    return int((pred != y).sum())


def run(args: argparse.Namespace, seed: int, data) -> dict:
    xtr, ytr, xte, yte = data
    seed_everything(seed, 0)
    cfg = resolve_config(
        "s2tdpt_digits", num_classes=10, in_chans=1, img_size=8, lif_backend="fused", **json.loads(args.model_kwargs)
    )
    model = S2TDPT(cfg)
    opt = create_optimizer_v2(model, "adamw", lr=args.lr, weight_decay=0.01)
    steps = len(xtr) // args.batch_size if args.drop_last else math.ceil(len(xtr) / args.batch_size)
    sched = CosineLRScheduler(
        opt,
        t_initial=args.epochs * steps,
        lr_min=1e-5,
        warmup_t=round(args.warmup_epochs * steps),
        warmup_lr_init=1e-5,
        t_in_epochs=False,
    )
    criterion = LabelSmoothingCrossEntropy(args.smoothing) if args.smoothing > 0 else nn.CrossEntropyLoss()
    emas = [ModelEmaV3(model, decay=d) for d in args.ema]
    (mean,), (std,) = NORMALIZATION["digits"]
    fill = (0.0 - mean) / std  # a black pixel after normalisation
    per_epoch, train_s, step = [], 0.0, 0
    for epoch in range(args.epochs):
        seed_everything(seed, 1, epoch, 0)
        order = torch.randperm(len(xtr))
        model.train()
        t0 = time.perf_counter()
        for i in range(steps):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            images = random_shift(xtr[idx], args.shift, fill) if args.shift > 0 else xtr[idx]
            sched.step_update(step)
            step += 1
            loss = criterion(model(images), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for ema in emas:
                ema.update(model, step=step)
        train_s += time.perf_counter() - t0
        per_epoch.append(errors(model, xte, yte))
    nets = [("model", model)] + [(f"ema {d}", e.module) for d, e in zip(args.ema, emas, strict=True)]
    columns = {name: errors(net, xte, yte) for name, net in nets}
    if args.precise_bn:
        batches = [(xtr[i : i + 64], None) for i in range(0, len(xtr), 64)]  # one pass, batches of 64
        for name, net in nets:
            net = copy.deepcopy(net)
            precise_bn(net, batches, passes=1)  # BN statistics = the average of the batch statistics
            columns[f"{name}, precise BN"] = errors(net, xte, yte)
    return dict(seed=seed, train_s=round(train_s, 1), errors_per_epoch=per_epoch, final_errors=columns)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3, help="peak learning rate (the CLI's)")
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up from 1e-5, in epochs")
    p.add_argument("--drop-last", action="store_true", help="drop each epoch's last partial batch, as the CLI does")
    p.add_argument("--shift", type=float, default=0.0, help="probability of a random ±1-pixel shift")
    p.add_argument("--ema", type=float, nargs="*", default=[], help="decays of weight EMAs (timm ModelEmaV3)")
    p.add_argument("--precise-bn", action="store_true", help="also evaluate with precise BN statistics")
    p.add_argument("--model-kwargs", default="{}", help="JSON overrides of s2tdpt_digits' config")
    args = p.parse_args()
    data = digits_tensors()
    n_test = len(data[3])
    results = []
    for seed in args.seeds:
        results.append(run(args, seed, data))
        print(json.dumps(results[-1]), flush=True)
    for column in results[0]["final_errors"]:
        errs = [r["final_errors"][column] for r in results]
        accs = [100.0 * (n_test - e) / n_test for e in errs]
        print(f"{column:>24}: errors {errs}, top-1 mean {sum(accs) / len(accs):.2f} % (min {min(accs):.2f} %)")


if __name__ == "__main__":
    main()
