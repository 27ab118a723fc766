"""Training step of the CIFAR10-DVS recipe's model on event frames: eager reference vs the fast settings, one run.

    python benchmarks/event_step.py [--batch-size 16] [--steps 3] [--configs reference fast compiled]

Model: `configs/cifar10dvs_s2tdpt_2_256.yaml`'s (s2tdpt_2_256 with 16 heads, pooling at all four tokenizer stages,
2 input channels, 128 × 128, T = 16). Input: random event-count frames ``[16, B, 2, 128, 128]`` (Poisson, mean 0.3
events per pixel and step, like a busy recording), random labels, AdamW. Each configuration runs in a fresh
process: 2 untimed warm-up steps (compiling happens there), then the median of ``--steps`` timed steps, and the
process's peak memory. float32 unless ``--amp bf16``.
"""

from __future__ import annotations

import argparse
import json

from s2tdpt.bench.common import machine, peak_rss_mb, run_worker, time_median

CONFIGS = {
    "reference": dict(lif_backend="torch", compile=False),
    "fast": dict(lif_backend="compiled", compile=False),
    "compiled": dict(lif_backend="compiled", compile=True),
}
MODEL = dict(num_heads=16, pool_at=(0, 1, 2, 3), in_chans=2, img_size=128, timesteps=16)


def worker(config: str, batch: int, steps: int, amp: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from s2tdpt import create_model
    from s2tdpt.engine.fast import compile_training

    torch.manual_seed(0)
    s = CONFIGS[config]
    model = create_model("s2tdpt_2_256", lif_backend=s["lif_backend"], **MODEL).train()
    net = compile_training(model) if s["compile"] else model
    frames = torch.poisson(torch.full((MODEL["timesteps"], batch, 2, 128, 128), 0.3))
    labels = torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(net(frames).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    median, times = time_median(step, steps, warmup=2)
    return {"seconds": median, "times": times, "peak_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch_size, args.steps, args.amp == "bf16")))
        return
    print(f"Machine: {machine(True)}; s2tdpt_2_256 DVS model, frames [16, {args.batch_size}, 2, 128, 128], "
          f"amp {args.amp}, median of {args.steps} steps\n")  # fmt: skip
    print("| setting | LIF | whole-model compile | s / step | images/s | peak memory |")
    print("|---|---|---|---:|---:|---:|")
    for config in args.configs:
        argv = [__file__, "--worker", config, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                "--amp", args.amp]  # fmt: skip
        r = run_worker(argv, tuned_malloc=True)
        s = CONFIGS[config]
        if "error" in r:
            print(f"| {config} | {s['lif_backend']} | {s['compile']} | failed: {r['error'][:80]} | | |", flush=True)
            continue
        print(f"| {config} | {s['lif_backend']} | {'on' if s['compile'] else 'off'} | {r['seconds']:.2f} s | "
              f"{args.batch_size / r['seconds']:.1f} | {r['peak_mb'] / 1024:.2f} GiB |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
