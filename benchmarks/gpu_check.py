"""One command for a GPU session: training step, inference and one real epoch, into one JSON + Markdown table.

    python benchmarks/gpu_check.py --out gpu_check                      # on a CUDA machine, under 8 minutes
    python benchmarks/gpu_check.py --out /tmp/gc --dry-run              # a tiny model on the CPU (tests the script)

Records, for ``s2tdpt_4_384`` at batch 64 (``--model``, ``--batch-size``):

* the training step (forward, backward, AdamW) and inference (eval, no gradients) in three settings —
  ``reference`` (fp32, the readable LIF loop), ``fast`` (the compiled LIF, bf16 autocast where the device has it,
  BatchNorm folded for inference) and ``compiled`` (fast plus whole-model torch.compile, with Inductor's layout
  optimisation off on CUDA, as ``s2tdpt train --compile on`` does there) — median seconds, images/s and peak
  device memory;
* one epoch of ``configs/cifar10jpeg_s2tdpt_4_384.yaml`` (its augmentation, mixup and schedule; the settings
  ``auto`` picks on the device): epoch seconds and images/s. The data: ``--data-dir`` (a CIFAR-10 image folder),
  else a synthetic folder of random 32×32 JPEGs in 10 classes written first (``--synthetic N`` images), so that
  decoding and augmentation cost what they cost on real JPEGs. Accuracy of that epoch means nothing then.

Each step is timed after warm-up (compilation included in warm-up), synchronising the device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = {
    "reference": dict(amp=False, lif_backend="torch", compile=False),
    "fast": dict(amp=True, lif_backend="compiled", compile=False),
    "compiled": dict(amp=True, lif_backend="compiled", compile=True),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, device: torch.device, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _step(model, compiled: bool, mode: str, images, labels, amp: bool, device: torch.device):
    """The function timed for one setting: a training step, or an inference forward."""
    from s2tdpt.engine.fast import CompiledInference, compile_training, prepare_inference

    if mode == "train":
        net = compile_training(model) if compiled else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def train_step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = torch.nn.functional.cross_entropy(net(images).float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return train_step
    net = CompiledInference(model) if compiled else prepare_inference(model)

    @torch.no_grad()
    def infer_step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            net(images)

    return infer_step


def step_rows(model_name: str, batch: int, device: torch.device, steps: int, configs: list[str]) -> list[dict]:
    from s2tdpt import create_model
    from s2tdpt.engine.evaluate import native_bf16

    bf16 = native_bf16(device)
    rows = []
    for name in configs:
        s = CONFIGS[name]
        amp = s["amp"] and bf16
        for mode in ("train", "infer"):
            torch.manual_seed(0)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            model = create_model(model_name, lif_backend=s["lif_backend"]).to(device)
            cfg = model.config
            images = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size, device=device)
            labels = torch.randint(0, cfg.num_classes, (batch,), device=device)
            try:
                fn = _step(model, s["compile"], mode, images, labels, amp, device)
                times = _median_time(fn, device, steps, warmup=2)
            except Exception as e:  # a setting that fails on this device is a finding, not the end of the check
                rows.append(dict(config=name, mode=mode, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
                continue
            med = statistics.median(times)
            rows.append(dict(config=name, mode=mode, amp="bf16" if amp else "fp32", seconds=med, times=times,
                             images_per_s=batch / med, peak_mb=_peak_mb(device)))  # fmt: skip
            print(f"[gpu_check] {mode} {name}: {med:.4f} s, {batch / med:.0f} img/s", flush=True)
            del fn, model
    return rows


def synthetic_folder(root: Path, n: int, classes: int = 10, size: int = 32) -> Path:
    """``root/{train,test}/<class>/*.jpg`` of random images: n for training, n // 5 for testing."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", max(classes, n // 5))):
        for i in range(count):
            folder = root / split / f"c{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root


def epoch_row(recipe: Path, data_dir: Path, device: str, out: Path, overrides: dict) -> dict:
    import yaml

    from s2tdpt.engine.config import TrainConfig
    from s2tdpt.engine.curves import read_metrics
    from s2tdpt.engine.train import train

    cfg = yaml.safe_load(recipe.read_text())
    # one epoch of the recipe's settings: no warm-up or cool-down epochs to fit into it
    cfg.update(data_dir=str(data_dir), epochs=1, warmup_epochs=0, cooldown_epochs=0, out=str(out), device=device,
               **overrides)  # fmt: skip
    t0 = time.perf_counter()
    result = train(TrainConfig(**cfg))
    wall = time.perf_counter() - t0
    row = read_metrics(out / "metrics.csv")[-1]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    return dict(epoch_s=row["epoch_s"], train_s=row["train_s"], images_per_s=row["images_per_s"],
                wall_s=wall, test_top1=result.final_test_top1, amp=saved["amp"], lif_backend=saved["lif_backend"],
                compile=saved["compile"], workers=saved["workers"], batch_size=saved["batch_size"])  # fmt: skip


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"GPU check — {m['device']} · torch {m['torch']} · {report['model']} · batch {report['batch']}",
        "",
        "| mode | setting | precision | s / step | images/s | peak memory |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in report["steps"]:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['config']} | – | failed: {r['error']} | | |")
            continue
        peak = "–" if r["peak_mb"] is None else f"{r['peak_mb'] / 1024:.2f} GiB"
        lines.append(f"| {r['mode']} | {r['config']} | {r['amp']} | {r['seconds']:.4f} | {r['images_per_s']:.0f} | "
                     f"{peak} |")  # fmt: skip
    e = report.get("epoch")
    if e:
        lines += ["", f"One epoch of {report['recipe']} on {report['data']}: {e['epoch_s']:.1f} s "
                  f"({e['train_s']:.1f} s training, {e['images_per_s']:.0f} images/s; amp {e['amp']}, LIF "
                  f"{e['lif_backend']}, compile {e['compile']}, workers {e['workers']})"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--device", default="cuda", help="device to check (default cuda)")
    ap.add_argument("--model", default="s2tdpt_4_384")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per setting (median reported)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--recipe", default=str(Path(__file__).parents[1] / "configs" / "cifar10jpeg_s2tdpt_4_384.yaml"))
    ap.add_argument("--data-dir", help="CIFAR-10 image folder for the epoch (default: a synthetic one)")
    ap.add_argument("--synthetic", type=int, default=50_000, help="training images of the synthetic folder")
    ap.add_argument("--workers", type=int, default=8, help="data-loading workers for the epoch (default 8)")
    ap.add_argument("--dry-run", action="store_true", help="tiny model, CPU, 2 steps, 64 images: checks the script")
    args = ap.parse_args(argv)
    overrides = dict(workers=args.workers)
    if args.dry_run:
        args.device, args.model, args.batch_size, args.steps, args.synthetic = "cpu", "s2tdpt_tiny", 4, 2, 64
        overrides = dict(model="s2tdpt_tiny", batch_size=16, workers=0, limit_test=16, aa=None, compile="off")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run with --dry-run to check the script on the CPU")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)"
    report = dict(machine=dict(device=name, torch=torch.__version__), model=args.model, batch=args.batch_size,
                  recipe=Path(args.recipe).name)  # fmt: skip
    report["steps"] = step_rows(args.model, args.batch_size, device, args.steps, args.configs)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data_dir) if args.data_dir else synthetic_folder(Path(tmp) / "data", args.synthetic)
        report["data"] = str(data) if args.data_dir else f"{args.synthetic} synthetic 32×32 JPEGs"
        report["epoch"] = epoch_row(Path(args.recipe), data, args.device, Path(tmp) / "run", overrides)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
