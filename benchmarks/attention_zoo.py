"""Every token mixer at D = 384, 12 heads: parameters, forward + backward time and peak memory, one run.

    python benchmarks/attention_zoo.py [--malloc default|tuned]

Two shapes: N = 64 (the CIFAR 8×8 token grid) with T = 4, B = 16, and N = 4,096 (a 64×64 grid) with T = 4,
B = 1. Input: a random membrane stream [T, B, N, D] (the mixer's own input neuron, projections, mechanism,
attention neuron, output projection and BN all run). float32, gradient of the output sum, each point in a
fresh process; mixers whose N × N intermediates cannot fit in this machine's memory are not attempted.
"""

from __future__ import annotations

import argparse
import json

from s2tdpt.bench.common import machine, peak_rss_mb, run_worker, time_median

D, HEADS = 384, 12
SHAPES = {64: (4, 16, (8, 8)), 4096: (4, 1, (64, 64))}  # N: (T, B, grid)
ROWS = [
    ("stdp", {}),
    ("stdp", {"impl": "dense"}),
    ("ssa", {}),
    ("ssa", {"order": "qk_first"}),
    ("sdsa", {}),
    ("qk_token", {}),
    ("a2os2a", {}),
    ("lrf_ssa", {}),
    ("lrf_dyn", {}),
    ("lrf_dyn", {"impl": "scan"}),
    ("identity", {}),
    ("random_frozen", {}),
    ("softmax", {}),
]
# float32 N×N tensors alive at once in forward + backward (an estimate for deciding what can run at all)
NXN_LIVE = {("stdp", "dense"): 6, ("ssa", "qk_first"): 3, ("random_frozen", ""): 3}


def worker(name: str, options: dict, n: int, reps: int) -> dict:
    import torch

    from s2tdpt.attention import create_attention
    from s2tdpt.snn import NeuronSpec

    t, b, grid = SHAPES[n]
    torch.manual_seed(0)
    mixer = create_attention(name, D, HEADS, neuron=NeuronSpec(), grid=grid, **options)
    params = sum(p.numel() for p in mixer.parameters())
    u = (torch.randn(t, b, n, D) * 2).requires_grad_()
    base = peak_rss_mb()

    def step():
        mixer.zero_grad(set_to_none=True)
        u.grad = None
        mixer(u).sum().backward()

    median, times = time_median(step, reps)
    return {"params": params, "median_s": median, "times": times, "peak_mb": peak_rss_mb(), "base_mb": base}


def label(name: str, options: dict) -> str:
    return name + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--malloc", choices=["default", "tuned"], default="tuned")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.options), args.n, args.reps)))
        return

    tuned = args.malloc == "tuned"
    with open("/proc/meminfo") as f:
        avail = int(next(line for line in f if line.startswith("MemAvailable")).split()[1]) * 1024
    print(f"Machine: {machine(tuned)}; float32, forward + backward, median of 5 runs (3 at N = 4,096)\n")
    cols = ["N = 64 fwd+bwd", "N = 64 peak RSS (+growth)", "N = 4,096 fwd+bwd", "N = 4,096 peak RSS (+growth)"]
    print("| mechanism | params | " + " | ".join(cols) + " |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, options in ROWS:
        cells, params = [], None
        for n in SHAPES:
            t, b, _ = SHAPES[n]
            live = NXN_LIVE.get((name, next(iter(options.values()), "")), 0)
            need = live * 4 * t * b * HEADS * n * n
            if need > 0.7 * avail:
                cells += ["not run", f"needs ~{need / 2**30:.0f} GiB"]
                continue
            argv = [__file__, "--worker", name, "--options", json.dumps(options), "--n", str(n)]
            r = run_worker(argv + ["--reps", "5" if n == 64 else "3"], tuned)
            if "error" in r:
                cells += ["failed", r["error"][:60]]
                continue
            params = r["params"]
            cells += [f"{r['median_s'] * 1e3:.1f} ms", f"{r['peak_mb']:.0f} MB (+{r['peak_mb'] - r['base_mb']:.0f})"]
        print(f"| {label(name, options)} | {params:,} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
