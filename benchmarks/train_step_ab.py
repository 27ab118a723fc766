"""The training step of one model under two checkouts of this project, alternated A, B, A, B, ... in fresh processes.

    git worktree add /tmp/before <commit>
    python benchmarks/train_step_ab.py --a /tmp/before/src --b src [--pairs 3] [--batch-size 64] [--amp none|bf16]

Each process imports ``s2tdpt`` from its ``--a`` / ``--b`` source folder (``PYTHONPATH``), builds the same seeded
model, random batch and AdamW as ``s2tdpt bench train-step`` (``TrainingStep``), with compiled neuron kernels
(``--lif-backend``) and whole-model ``torch.compile`` (``--compile off`` for eager), takes 2 untimed warm-up steps
(compiling happens there) and reports the median of ``--steps`` timed steps and the process's peak memory.
Alternating the two in one run is what makes the comparison hold on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def worker(model: str, batch: int, amp: bool, compile_: bool, steps: int, lif_backend: str) -> dict:
    from s2tdpt.bench.common import TrainingStep, peak_rss_mb, time_median
    from s2tdpt.engine.fast import compile_training

    bench = TrainingStep(model, batch, lif_backend=lif_backend, amp=amp)
    bench.model.train()
    if compile_:
        bench.model = compile_training(bench.model)
    median, times = time_median(bench.step, steps, warmup=2)
    return {"seconds": median, "times": times, "peak_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", help="source folder of checkout A (the one holding s2tdpt/)")
    ap.add_argument("--b", help="source folder of checkout B")
    ap.add_argument("--model", default="s2tdpt_4_384")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--amp", choices=["none", "bf16"], default="bf16", help="bf16 autocast, or float32")
    ap.add_argument("--compile", choices=["on", "off"], default="on", help="whole-model torch.compile")
    ap.add_argument(
        "--lif-backend", choices=["compiled", "fused", "torch"], default="compiled", help="the neurons' path"
    )
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        r = worker(args.model, args.batch_size, args.amp == "bf16", args.compile == "on", args.steps, args.lif_backend)
        print(json.dumps(r))
        return
    if not (args.a and args.b):
        ap.error("give both checkouts' source folders: --a DIR --b DIR")

    from s2tdpt.bench.common import machine
    from s2tdpt.cli.launch import TUNED_MALLOC

    print(f"Machine: {machine(True)}; {args.model}, batch {args.batch_size}, amp {args.amp}, compile {args.compile}, "
          f"neurons {args.lif_backend}, median of {args.steps} steps per process\n")  # fmt: skip
    print("| pair | checkout | s / step | peak memory |")
    print("|---:|---|---:|---:|")
    results: dict[str, list[float]] = {"A": [], "B": []}
    argv = [sys.executable, __file__, "--worker", "--model", args.model, "--batch-size", str(args.batch_size),
            "--amp", args.amp, "--compile", args.compile, "--steps", str(args.steps),
            "--lif-backend", args.lif_backend]  # fmt: skip
    for pair in range(1, args.pairs + 1):
        for name, src in (("A", args.a), ("B", args.b)):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(src), GLIBC_TUNABLES=TUNED_MALLOC)  # the CLI's
            res = subprocess.run(argv, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"| {pair} | {name} | failed: {res.stderr.strip().splitlines()[-1]} | |", flush=True)
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            results[name].append(r["seconds"])
            print(f"| {pair} | {name} ({src}) | {r['seconds']:.3f} s | {r['peak_mb'] / 1024:.2f} GiB |", flush=True)
    if results["A"] and results["B"]:
        a, b = statistics.median(results["A"]), statistics.median(results["B"])
        print(f"\nmedian over pairs: A {a:.3f} s, B {b:.3f} s, B / A = {b / a:.3f}")


if __name__ == "__main__":
    main()
