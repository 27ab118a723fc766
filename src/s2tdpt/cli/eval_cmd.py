"""``s2tdpt eval CHECKPOINT``: rebuild the model from the checkpoint alone and evaluate it."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import torch

from ..data.datasets import list_datasets
from ..data.loaders import build_test_loader
from ..engine.distributed import resolve_device
from ..engine.evaluate import evaluate, resolve_amp
from ..engine.fast import CompiledInference, prepare_inference
from .common import checkpoint_test_set, model_from_checkpoint, synapse_option, synapse_slug


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint: top-1, top-5, per-class accuracy, confusion matrix",
        description="Evaluate a checkpoint on the test split of a dataset (default: the one it was trained on). "
        "Writes eval.json, per_class.csv, confusion_matrix.csv and confusion_matrix.png to --out.",
    )
    p.add_argument(
        "checkpoint",
        help="a .pt file written by s2tdpt train (best.pt or last.pt), or a folder written by s2tdpt export",
    )
    p.add_argument("--dataset", choices=list_datasets(), help="dataset to evaluate on (default: the training dataset)")
    p.add_argument("--data-dir", help="dataset folder (default: the training run's)")
    p.add_argument("--limit-test", type=int, help="N >= 1 evenly spaced test images only (default: as in training)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the training run's)")
    p.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, ... (default: auto)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], help="mixed precision (default: the training run's)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="run full batches through a frozen torch.compile graph: ~0.14 s (14-20%%) less per batch of 64 for "
        "s2tdpt_4_384 on a 2-core CPU, after 20-25 s of compiling, so it pays off after ~150 batches; no gain for "
        "small models (BENCHMARKS.md). Same function up to bf16 rounding",
    )
    p.add_argument(
        "--synapse",
        help="evaluate the STDP attention on memristive synapses: a preset (ideal, reram_om, hfo2, ecram) or a "
        "YAML/JSON mapping of options, e.g. '{levels: 16, write_noise: 0.4}' (default: as trained)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the synapses' write noise and device draws (default: 0)"
    )
    p.add_argument("--workers", type=int, default=0, help="data-loading workers (default: 0)")
    p.add_argument("--out", help="output folder (default: <checkpoint folder>/eval-<dataset>)")
    p.add_argument("--no-download", dest="download", action="store_false", help="never try to download data")
    p.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    """Reject counts that cannot work before anything is loaded or written."""
    if args.limit_test is not None and args.limit_test < 1:
        raise ValueError(
            f"--limit-test must be at least 1 image, got {args.limit_test}; leave it out to evaluate the training "
            f"run's test images"
        )
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 0:
        raise ValueError(f"--workers must be 0 (load in this process) or more, got {args.workers}")


def json_safe(value):
    """``value`` with every non-finite float (an undefined accuracy) as None: null in strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    check_args(args)
    synapse = synapse_option(args.synapse)
    torch.manual_seed(args.seed)  # the crossbar's draws and the write noise
    model, ckpt = model_from_checkpoint(args.checkpoint, synapse)
    device = resolve_device(args.device)
    model = model.to(device)
    # same function: BN folded, convs channels-last; --compile adds a frozen graph of that (both tested)
    model = CompiledInference(model) if args.compile else prepare_inference(model)
    test_ds, info = checkpoint_test_set(ckpt, args.dataset, args.data_dir, args.limit_test, args.download)
    tcfg = ckpt.get("train_config", {})
    batch_size = args.batch_size or tcfg.get("batch_size", 64)
    amp = resolve_amp(args.amp or tcfg.get("amp", "none"), device)
    loader = build_test_loader(test_ds, batch_size, args.workers, layout=info.layout)
    res = evaluate(model, loader, device, model.config.num_classes, amp)

    folder = f"eval-{info.name.replace(':', '-')}" + (f"-{synapse_slug(synapse)}" if synapse is not None else "")
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / folder
    out.mkdir(parents=True, exist_ok=True)
    classes = list(info.class_names)
    per_class = res.per_class.tolist()
    summary = dict(
        checkpoint=str(args.checkpoint),
        dataset=info.name,
        synapse=model.config.attn_kwargs.get("synapse"),
        seed=args.seed,
        images=res.count,
        top1=res.top1,
        top5=res.top5,
        loss=res.loss,
        per_class_top1=dict(zip(classes, per_class, strict=True)),
    )
    # a class without test images has no accuracy: null in eval.json, empty in per_class.csv (never bare NaN)
    (out / "eval.json").write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
    with open(out / "per_class.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "images", "top1"])
        for c, n, acc in zip(classes, res.confusion.sum(1).tolist(), per_class, strict=True):
            w.writerow([c, n, f"{acc:.3f}" if math.isfinite(acc) else ""])
    with open(out / "confusion_matrix.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for c, row in zip(classes, res.confusion.tolist(), strict=True):
            w.writerow([c, *row])
    from ..analysis.plots import plot_confusion_matrix

    plot_confusion_matrix(res.confusion.numpy(), classes, out / "confusion_matrix.png", f"{info.name}: {res.top1:.2f}%")

    print(f"{info.name} test ({res.count} images): top-1 {res.top1:.2f}%  top-5 {res.top5:.2f}%  loss {res.loss:.4f}")
    width = max(len(c) for c in classes)
    for c, acc in zip(classes, per_class, strict=True):
        shown = f"{acc:6.2f}%" if math.isfinite(acc) else "     –   (no image of this class evaluated)"
        print(f"  {c:<{width}}  {shown}")
    print(f"wrote {out}/eval.json, per_class.csv, confusion_matrix.csv, confusion_matrix.png")
    return 0
