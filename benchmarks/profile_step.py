"""Where a training step's (or inference batch's) time goes: ``torch.profiler`` over the fast setting, by kind of work.

    python benchmarks/profile_step.py [--mode train|infer] [--compile] [--model s2tdpt_4_384] [--steps 2]

Runs 3 warm-up steps (bf16 autocast where the CPU computes bf16 natively, as ``--amp auto`` decides, else fp32;
compiled LIF; training with AdamW, inference on the model prepared as
``s2tdpt eval`` does: BatchNorm folded, convs channels-last, no gradients), profiles ``--steps`` more and prints
self CPU time per step: by kind (matrix products and convolutions, generated LIF kernels, BatchNorm, copies,
max-pooling, everything else) and the ``--top`` operators. With ``--compile`` the whole model runs as compiled
graphs (as ``s2tdpt train --compile on`` / ``s2tdpt eval --compile``); their "generated LIF kernels" row then holds all
the fused work (LIF, BatchNorm, additions, pooling...) and the products stay separate calls. Run it under the
allocator you want to study
(the ``s2tdpt`` command's setting: ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736``).
"""

from __future__ import annotations

import argparse
import collections
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from s2tdpt.bench.common import TrainingStep, machine
from s2tdpt.engine.fast import CompiledInference, compile_training, prepare_inference

KINDS = {  # first matching prefix wins
    "matrix products, convolutions": ("aten::mm", "aten::addmm", "aten::bmm", "aten::convolution_backward",
                                       "aten::mkldnn_convolution", "mkldnn::", "aten::_mkl", "onednn::"),
    "generated LIF kernels": ("## Call CompiledFxGraph", "Torch-Compiled Region"),
    "BatchNorm": ("aten::native_batch_norm",),
    "copies, dtype conversions": ("aten::copy_", "aten::clone", "aten::contiguous"),
    "max-pooling": ("aten::max_pool2d",),
}  # fmt: skip


def kind_of(name: str) -> str:
    return next((k for k, prefixes in KINDS.items() if name.startswith(prefixes)), "everything else")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--model", default="s2tdpt_4_384")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--compile", action="store_true", help="the whole model under torch.compile (as in BENCHMARKS.md)")
    args = ap.parse_args(argv)

    bench = TrainingStep(args.model, args.batch_size)  # bf16 only where native, as training picks
    amp = bench.amp
    step = bench.step
    if args.mode == "train" and args.compile:
        bench.model = compile_training(bench.model)
    if args.mode == "infer":
        model = CompiledInference(bench.model) if args.compile else prepare_inference(bench.model)
        images = bench.images
        del bench

        @torch.no_grad()
        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                model(images)

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    per_step = {e.key: e.self_cpu_time_total / 1e6 / args.steps for e in events}  # seconds
    total = sum(per_step.values())
    what = "whole-model torch.compile" if args.compile else "compiled LIF"
    print(f"Machine: {machine()}; {args.model}, batch {args.batch_size}, {'bf16' if amp else 'fp32'}, {what}")
    what = "training step" if args.mode == "train" else "inference batch"
    print(f"self CPU time per {what}: {total:.2f} s (profiled, so a little above an unprofiled step)\n")
    by_kind = collections.Counter()
    for name, sec in per_step.items():
        by_kind[kind_of(name)] += sec
    print("| kind of work | s / step | share |\n|---|---:|---:|")
    for kind, sec in by_kind.most_common():
        print(f"| {kind} | {sec:.3f} | {100 * sec / total:.0f} % |")
    print("\n| operator | s / step |\n|---|---:|")
    for name, sec in sorted(per_step.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| {name[:70]} | {sec:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
