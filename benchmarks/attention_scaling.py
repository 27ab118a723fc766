"""Linear vs dense STDP attention: forward + backward time and peak process memory, one point per process.

    python benchmarks/attention_scaling.py                 # both allocators, all points, markdown tables
    python benchmarks/attention_scaling.py --malloc tuned  # one allocator

Scaling sweep: one head, D_H = 48, N = 64 … 65,536 (batch 1). CIFAR point: T·B = 256, 12 heads, N = 64,
D_H = 32 — the shape inside s2tdpt_4_384 at batch 64. Spikes at density 0.25 (q, k, v), float32, gradient of
the output sum. The dense form is not attempted where its N×N float32 intermediates cannot fit in this
machine's memory; the table says so.
"""

from __future__ import annotations

import argparse
import json
import math

from s2tdpt.bench.common import machine, peak_rss_mb, run_worker, time_median

SWEEP = [64, 256, 1024, 4096, 16384, 65536]
DENSE_LIVE_NXN = 6  # N×N float32 tensors the dense forward + backward keeps alive at once (Δt, |Δt|, f, A, grads)


def worker(impl: str, lead: tuple[int, ...], n: int, d_h: int, reps: int) -> dict:
    import torch

    from s2tdpt.attention.stdp import stdp_attention, stdp_attention_dense

    fn = stdp_attention if impl == "linear" else stdp_attention_dense
    gen = torch.Generator().manual_seed(0)
    q, k, v = ((torch.rand((*lead, n, d_h), generator=gen) < 0.25).float().requires_grad_() for _ in range(3))
    base = peak_rss_mb()

    def step():
        q.grad = k.grad = v.grad = None
        out = fn(q, k, v, validate=False)  # the model's call: q, k come from a LIF, binary by construction
        out.sum().backward()

    median, times = time_median(step, reps)
    return {"median_s": median, "times": times, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base}


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def measure(impl: str, lead: tuple[int, ...], n: int, d_h: int, tuned: bool) -> dict:
    if impl == "dense":
        need = DENSE_LIVE_NXN * 4 * n * n * math.prod(lead)
        if need > 0.8 * available_bytes():
            return {"skipped": f"needs ~{need / 2**30:.0f} GiB (one N×N float32 matrix: {4 * n * n / 2**30:.0f} GiB)"}
    reps = 5 if (impl == "linear" or n <= 4096) else 3
    argv = [__file__, "--worker", impl, "--n", str(n), "--d-h", str(d_h), "--reps", str(reps)]
    argv += ["--lead", ",".join(map(str, lead))]
    return run_worker(argv, tuned)


def fmt(r: dict) -> tuple[str, str]:
    if "skipped" in r:
        return "not run", r["skipped"]
    if "error" in r:
        return "failed", r["error"]
    return f"{r['median_s'] * 1e3:.2f} ms", f"{r['peak_rss_mb']:.0f} MB (+{r['peak_rss_mb'] - r['rss_before_mb']:.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--malloc", choices=["default", "tuned", "both"], default="both")
    ap.add_argument("--max-n", type=int, default=SWEEP[-1], help="largest N of the sweep")
    ap.add_argument("--worker", choices=["linear", "dense"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--d-h", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--lead", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        lead = tuple(int(x) for x in args.lead.split(",") if x)
        print(json.dumps(worker(args.worker, lead, args.n, args.d_h, args.reps)))
        return

    for tuned in {"default": [False], "tuned": [True], "both": [False, True]}[args.malloc]:
        print(f"\n### {'tuned' if tuned else 'default'} allocator\n")
        print(f"Machine: {machine(tuned)}; float32, forward + backward, median of 5 runs (3 for dense N > 4096)")
        cols = ["N", "linear fwd+bwd", "linear peak RSS (+growth)", "dense fwd+bwd", "dense peak RSS (+growth)"]
        print("\n| " + " | ".join(cols) + " | dense / linear |")
        print("|---:|---:|---:|---:|---:|---:|")
        points = [((1,), n, 48) for n in SWEEP if n <= args.max_n] + [((256, 12), 64, 32)]
        for lead, n, d_h in points:
            lin, den = measure("linear", lead, n, d_h, tuned), measure("dense", lead, n, d_h, tuned)
            ratio = f"{den['median_s'] / lin['median_s']:.1f}×" if "median_s" in den and "median_s" in lin else "–"
            label = f"{n:,}" if lead == (1,) else f"{n} (CIFAR: T·B=256, 12 heads, D_H=32)"
            print(f"| {label} | {' | '.join(fmt(lin))} | {' | '.join(fmt(den))} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
