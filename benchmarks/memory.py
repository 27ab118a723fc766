"""Where the training step's memory goes: saved activations, resident memory by phase, allocator settings.

    python benchmarks/memory.py [--model s2tdpt_4_384] [--batch-size 64] [--steps 7] [--compile]

1. Tensors autograd keeps for backward after one forward (bf16 autocast, compiled LIF), by dtype and by whether
   they hold only 0/1, with BatchNorm + LIF fused (``norm_lif``, as shipped) and unfused — counted once per
   storage, so a spike tensor kept by two layers counts once. With ``--compile``, also the whole model under
   ``torch.compile`` (``s2tdpt train --compile on``), counted at its second forward (the first compiles).
2. For each glibc allocator setting, in a fresh process: ``--steps`` training steps (AdamW; with ``--compile``
   the compiled model, its first step compiling); the median seconds of the steps after the first two, the
   process's peak resident memory (VmHWM), and the largest resident size sampled every 3 ms in the forward and
   the backward pass of the first and the last step.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import statistics
import sys
import threading
import time

from s2tdpt.bench.common import TrainingStep, machine, peak_rss_mb, run_worker
from s2tdpt.cli.launch import TUNED_MALLOC

# label -> GLIBC_TUNABLES ("" = glibc's default allocator)
ALLOCATORS = {
    "default": "",
    "tuned (the CLI's)": TUNED_MALLOC,
    "tuned, one arena": TUNED_MALLOC + ":glibc.malloc.arena_max=1",
    "mmap ≥ 32 MiB, no trim": "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=68719476736",
    "mmap ≥ 64 MiB, no trim": "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=68719476736",
}


def saved_tensors(model_name: str, batch: int, whole_model: bool) -> dict:
    import torch

    from s2tdpt.engine.fast import compile_training
    from s2tdpt.snn import norm_lif

    bench = TrainingStep(model_name, batch)
    eager, result = bench.model, {}
    for label in ("fused", "unfused") + (("compiled",) if whole_model else ()):
        if label == "compiled":
            bench.model = compile_training(eager)
            bench.loss()  # compiles; its tensors are not counted
        storages = {}

        def pack(t, storages=storages):
            st = t.untyped_storage()
            if st.data_ptr() not in storages:
                binary = t.is_floating_point() and t.numel() > 0 and bool(((t == 0) | (t == 1)).all())
                storages[st.data_ptr()] = (st.nbytes(), str(t.dtype).removeprefix("torch."), binary)
            return t

        with norm_lif.unfused() if label == "unfused" else contextlib.nullcontext():
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                bench.loss()
        kinds = collections.Counter()
        for nbytes, dtype, binary in storages.values():
            kinds[f"{dtype}{' 0/1' if binary else ''}"] += nbytes
        result[label] = {k: v / 2**20 for k, v in sorted(kinds.items())}
    return result


def _rss_gib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 2**20


def phases(model_name: str, batch: int, steps: int, whole_model: bool) -> dict:
    from s2tdpt.engine.fast import compile_training

    bench = TrainingStep(model_name, batch)
    if whole_model:
        bench.model = compile_training(bench.model)
    phase, peaks, stop = ["start"], collections.defaultdict(float), threading.Event()

    def sample():
        while not stop.is_set():
            peaks[phase[0]] = max(peaks[phase[0]], _rss_gib())
            time.sleep(0.003)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times = []
    for step in range(steps):
        t0 = time.perf_counter()
        phase[0] = f"forward {step + 1}"
        loss = bench.loss()
        phase[0] = f"backward {step + 1}"
        bench.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        phase[0] = f"step {step + 1}"
        bench.optimizer.step()
        times.append(time.perf_counter() - t0)
    stop.set()
    sampler.join()
    keep = [f"{p} {s}" for s in (1, steps) for p in ("forward", "backward")]
    return dict(seconds=statistics.median(times[2:] or times), peak_gib=peak_rss_mb() / 1024,
                phases={k: peaks[k] for k in keep})  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="s2tdpt_4_384")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--compile", action="store_true", help="the whole model under torch.compile")
    ap.add_argument("--worker", choices=["saved", "phases"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "saved":
        print(json.dumps(saved_tensors(args.model, args.batch_size, args.compile)))
        return 0
    if args.worker == "phases":
        print(json.dumps(phases(args.model, args.batch_size, args.steps, args.compile)))
        return 0

    common = [__file__, "--model", args.model, "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    common += ["--compile"] if args.compile else []
    what = "whole-model torch.compile" if args.compile else "compiled LIF"
    print(f"Machine: {machine(tuned_malloc=False)}; {args.model}, batch {args.batch_size}, bf16, {what}\n")
    saved = run_worker(common + ["--worker", "saved"], tuned_malloc=False)
    kinds = sorted({k for v in saved.values() for k in v})
    print("| saved for backward | " + " | ".join(kinds) + " | total |")
    print("|---|" + "---:|" * (len(kinds) + 1))
    for label, v in saved.items():
        cells = " | ".join(f"{v.get(k, 0):.0f} MiB" for k in kinds)
        print(f"| {label} | {cells} | {sum(v.values()):.0f} MiB |")
    print("\n| allocator | s / step | peak | " + " | ".join(["fwd 1", "bwd 1", f"fwd {args.steps}",
                                                              f"bwd {args.steps}"]) + " |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for label, tunables in ALLOCATORS.items():
        r = run_worker(common + ["--worker", "phases"], tuned_malloc=False, tunables=tunables or None)
        if "error" in r:
            print(f"| {label} | failed: {r['error']} |", flush=True)
            continue
        cells = " | ".join(f"{g:.2f}" for g in r["phases"].values())
        print(f"| {label} | {r['seconds']:.2f} s | {r['peak_gib']:.2f} GiB | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
