"""Training-step and inference benchmark of the paper's model: reference eager fp32 vs the fastest setting.

    s2tdpt bench train-step [--model s2tdpt_4_384] [--batch-size 64] [--malloc both] [--steps 5]

For each configuration, in a fresh process: seconds per training step (forward + backward + AdamW), images/s,
achieved FLOP/s as a fraction of this machine's fp32 GEMM peak and, where the CPU computes bf16 natively, its bf16
peak (measured in the same run; an emulated bf16 peak is not measured), peak
process memory (VmHWM); then the same for inference (eval mode, no gradients). FLOPs of a step count
2 per multiply-accumulate of every conv / linear, 3 passes (forward, input gradient, weight gradient) for
training and 1 for inference, T·B sequences — the usual convention (≈ 1.42 TFLOP for s2tdpt_4_384 at B = 64).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .common import TrainingStep, machine, peak_rss_mb, positive_int, run_worker, time_median

# name -> settings; "reference" is plain eager fp32 with the readable LIF loop; "fast" the eager fast paths (compiled
# LIF, bf16 autocast where the CPU computes bf16 natively, as `--amp auto` decides, else fp32; for inference
# BatchNorm folded and convs channels-last); "compiled" adds whole-model
# torch.compile (`s2tdpt train --compile on`, `s2tdpt eval --compile`; for inference a frozen graph, which folds BN
# itself, so its fold_bn only says what the model computes)
CONFIGS = {
    "reference": dict(amp="none", lif_backend="torch", fold_bn=False, compile=False),
    "fast": dict(amp="bf16", lif_backend="compiled", fold_bn=True, compile=False),
    "compiled": dict(amp="bf16", lif_backend="compiled", fold_bn=True, compile=True),
}


def gemm_peak(dtype_name: str, size: int = 2048, reps: int = 10) -> float:
    """Best FLOP/s of a square matrix multiply in this process (fp32 or bf16)."""
    import torch

    dtype = torch.float32 if dtype_name == "fp32" else torch.bfloat16
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def model_macs(model, images) -> int:
    """Multiply-accumulates of every conv / linear for one forward of ``images`` (all timesteps)."""
    import torch
    from torch import nn

    total = [0]

    def hook(mod, args, out):
        per_out = mod.in_features if isinstance(mod, nn.Linear) else (
            mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        )  # fmt: skip
        total[0] += out.numel() * per_out

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    return total[0]


def worker(model_name: str, config: str, mode: str, batch: int, steps: int) -> dict:
    import torch

    from s2tdpt.engine.fast import CompiledInference, compile_training, prepare_inference
    from s2tdpt.engine.hardware import native_bf16_cpu

    s = CONFIGS[config]
    amp = s["amp"] == "bf16" and native_bf16_cpu()  # emulated bf16 (AVX2 CPUs) is ~170x slower than fp32
    bench = TrainingStep(model_name, batch, lif_backend=s["lif_backend"], amp=amp)
    # every conv / linear of one forward, T·B sequences (the stem runs once per image); counted on one image in
    # fp32 and scaled, so that no extra full-batch forward inflates the memory peak measured below
    per_step_macs = model_macs(bench.model, bench.images[:1]) * batch
    if mode == "train":
        bench.model.train()
        if s["compile"]:
            bench.model = compile_training(bench.model)
        fn, flops = bench.step, 6 * per_step_macs
    else:
        if s["compile"]:
            model = CompiledInference(bench.model)
        else:
            model = prepare_inference(bench.model) if s["fold_bn"] else bench.model.eval()
        images = bench.images
        del bench  # the unfolded model and its optimiser would count in the inference peak

        @torch.no_grad()
        def infer_step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                model(images)

        fn, flops = infer_step, 2 * per_step_macs
    med, times = time_median(fn, steps, warmup=2)  # warm-up includes compilation, where enabled
    return dict(seconds=med, times=times, images_per_s=batch / med, flops=flops, flop_s=flops / med,
                peak_mb=peak_rss_mb(), amp="bf16" if amp else "fp32")  # fmt: skip


def _worker(argv: list[str], tuned: bool) -> dict:
    return run_worker(["-m", "s2tdpt.bench.train_step", *argv], tuned)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="s2tdpt bench train-step", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--model", default="s2tdpt_4_384", help="named model, s2tdpt.list_models() (default: %(default)s)")
    ap.add_argument("--batch-size", type=positive_int, default=64, help="images per step (default: %(default)s)")
    ap.add_argument(
        "--steps", type=positive_int, default=5, help="timed steps per configuration, after 2 untimed warm-up steps "
        "that include any compiling; the median is reported (default: %(default)s)",
    )  # fmt: skip
    ap.add_argument(
        "--malloc", choices=["default", "tuned", "both"], default="both", help="glibc allocator of the worker "
        "processes: glibc's default, the CLI's tuned setting, or both in turn (default: %(default)s)",
    )  # fmt: skip
    ap.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), help="reference: eager fp32, readable "
        "LIF loop; fast: bf16 autocast where the CPU has it (else fp32), compiled LIF, BatchNorm folded for "
        "inference; compiled: fast plus "
        "whole-model torch.compile (default: all three)",
    )  # fmt: skip
    ap.add_argument(
        "--modes", nargs="+", choices=["train", "infer"], default=["train", "infer"], help="train: forward, backward "
        "and AdamW step; infer: eval-mode forward without gradients (default: both)",
    )  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object instead of table rows")
    ap.add_argument("--worker", nargs=2, metavar=("CONFIG", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--gemm-peak", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from s2tdpt import list_models

    if args.model not in list_models():  # checked here: the worker processes would each fail on it
        ap.error(f"unknown --model {args.model!r}; available: {', '.join(list_models())}")
    if args.gemm_peak:
        print(json.dumps({"flop_s": gemm_peak(args.gemm_peak)}))
        return 0
    if args.worker:
        print(json.dumps(worker(args.model, args.worker[0], args.worker[1], args.batch_size, args.steps)))
        return 0

    results = {"machine": machine(), "model": args.model, "batch": args.batch_size, "rows": []}
    allocators = {"default": [False], "tuned": [True], "both": [False, True]}[args.malloc]
    from s2tdpt.engine.hardware import native_bf16_cpu

    # an emulated bf16 product (AVX2 CPUs) is ~170x slower than fp32: its "peak" would take many minutes to measure
    # and means nothing, so it is measured only where the CPU computes bf16 natively
    dtypes = ("fp32", "bf16") if native_bf16_cpu() else ("fp32",)
    for tuned in allocators:
        peaks = {d: _worker(["--gemm-peak", d], tuned)["flop_s"] for d in dtypes}
        for mode in args.modes:
            for config in args.configs:
                argv_ = ["--worker", config, mode, "--model", args.model, "--batch-size", str(args.batch_size)]
                r = _worker(argv_ + ["--steps", str(args.steps)], tuned)
                r.update(config=config, mode=mode, malloc="tuned" if tuned else "default", gemm_peaks=peaks)
                results["rows"].append(r)
                if not args.json:
                    _print_row(r)
    if args.json:
        print(json.dumps(results))
    return 0


def _print_row(r: dict) -> None:
    if "error" in r:
        print(f"| {r['mode']} | {r['config']} | {r['malloc']} | failed: {r['error']} |", flush=True)
        return
    p = r["gemm_peaks"]
    fp32 = f"{100 * r['flop_s'] / p['fp32']:.0f} %"
    bf16 = f"{100 * r['flop_s'] / p['bf16']:.0f} %" if "bf16" in p else "–"
    peaks = f"fp32 {p['fp32'] / 1e9:.0f}" + (f", bf16 {p['bf16'] / 1e9:.0f}" if "bf16" in p else ", bf16 not measured")
    print(
        f"| {r['mode']} | {r['config']} ({r.get('amp', '?')}) | {r['malloc']} | {r['seconds']:.2f} s | "
        f"{r['images_per_s']:.1f} | {r['flop_s'] / 1e9:.0f} GFLOP/s | {fp32} / {bf16} | "
        f"{r['peak_mb'] / 1024:.2f} GiB | {peaks} GFLOP/s |",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
