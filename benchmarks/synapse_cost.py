"""What a synapse model costs the STDP attention: forward + backward time and peak memory, one process per setting.

    python benchmarks/synapse_cost.py [--batch 64] [--tokens 64] [--repeats 5]

The STDP token mixer of `s2tdpt_4_384` (D = 384, 12 heads, T = 4) on random membrane input ``[T, B, N, D]``,
training mode: ideal (the linear form), levels + nonlinearity (the linear form with the device's table), write
noise through the linear form's Gaussian sampler and through the dense form's explicit draws (the module takes
whichever needs fewer numbers), and the `reram_om` preset (d2d and stuck devices: the dense N × N form).
Median of ``--repeats`` timed passes after one warm-up, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json

from s2tdpt.bench.common import machine, peak_rss_mb, run_worker, time_median

NOISY = {"levels": 22, "nonlinearity_up": 1.0, "nonlinearity_down": 1.0, "write_noise": 0.4158}
SETTINGS = {
    "ideal (linear form)": "ideal",
    "levels 22 + soft bounds (linear form)": {"levels": 22, "nonlinearity_up": 1.0, "nonlinearity_down": 1.0},
    "+ write noise 0.42 (linear form + sampler)": NOISY,
    "+ write noise 0.42 (dense form, explicit noise)": NOISY,
    "reram_om (d2d, stuck: dense form)": "reram_om",
    "ideal, dense form": "dense",
}


def worker(setting: str, batch: int, tokens: int, repeats: int) -> dict:
    """One setting in this process: median seconds of forward + backward, and the peak memory."""
    import math

    import torch

    from s2tdpt.attention import create_attention
    from s2tdpt.snn import NeuronSpec

    torch.manual_seed(0)
    side = int(math.isqrt(tokens))
    spec = SETTINGS[setting]
    kw = {"impl": "dense"} if spec == "dense" else {"synapse": spec}
    mixer = create_attention("stdp", 384, 12, neuron=NeuronSpec(), grid=(side, side), **kw).train()
    if "sampler" in setting:  # the sampler itself, also where the module would pick the dense form
        mixer._noise_cheaper_dense = lambda n, d_h: False
    if "explicit" in setting:
        mixer._noise_cheaper_dense = lambda n, d_h: True
    u = torch.randn(4, batch, tokens, 384) * 2.0

    def step():
        x = u.clone().requires_grad_()
        mixer(x).sum().backward()

    median, times = time_median(step, repeats)
    return dict(setting=setting, seconds=median, times=times, peak_mb=peak_rss_mb())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.tokens, args.repeats)))
        return 0
    print(f"Machine: {machine(True)}")
    print(f"\nSTDP mixer D = 384, 12 heads, T = 4, batch {args.batch}, N = {args.tokens}, forward + backward\n")
    print("| setting | s / pass (median) | peak memory |\n|---|---:|---:|")
    for setting in SETTINGS:
        argv = [__file__, "--worker", setting, "--batch", str(args.batch), "--tokens", str(args.tokens),
                "--repeats", str(args.repeats)]  # fmt: skip
        r = run_worker(argv, tuned_malloc=True)
        if "error" in r:
            print(f"| {setting} | failed: {r['error'][:80]} | |", flush=True)
            continue
        print(f"| {setting} | {r['seconds']:.3f} | {r['peak_mb'] / 1024:.2f} GiB |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
