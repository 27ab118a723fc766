"""Memory layout at the tokenizer: channels-last max-pool and channels-last inference convs against NCHW.

    python benchmarks/layouts.py [--malloc tuned|default] [--pairs 3]

1. Max-pool (3×3, stride 2, padding 1) on bf16 spike maps of the tokenizer's shapes (the Fashion-MNIST recipe's
   two pools and s2tdpt_4_384's two), density 0.2: ``nn.MaxPool2d`` (NCHW, keeps int64 indices for backward)
   against ``ChannelsLastMaxPool2d`` (channels-last copy, argmax recomputed in backward); forward without
   autograd, and forward + backward. Median of 7, one worker process.
2. Inference of ``s2tdpt_4_384`` (batch 64, bf16 autocast, compiled LIF): ``fold_batchnorm`` against
   ``prepare_inference`` (the same plus channels-last conv weights), each in a fresh process, alternated
   ``--pairs`` times; median of 5 batches per process.
3. The same layout in training: a training step of ``s2tdpt_4_384`` (batch 64, bf16, compiled LIF, AdamW) with the
   tokenizer's conv weights NCHW (as shipped) or channels-last, one fresh process each, median of 3 steps.
"""

from __future__ import annotations

import argparse
import json
import sys

from s2tdpt.bench.common import TrainingStep, machine, run_worker, time_median

POOL_SHAPES = [(128, 32, 28, 28), (128, 64, 14, 14), (256, 192, 32, 32), (256, 384, 16, 16)]  # [T·B, C, H, W]


def pool_worker() -> dict:
    import torch

    from s2tdpt.layers.pool import ChannelsLastMaxPool2d

    torch.manual_seed(0)
    layers = {"nchw": torch.nn.MaxPool2d(3, 2, 1), "channels_last": ChannelsLastMaxPool2d(3, 2, 1)}
    rows = []
    for shape in POOL_SHAPES:
        x = (torch.rand(shape) < 0.2).to(torch.bfloat16)
        g = torch.ones(shape[0], shape[1], shape[2] // 2, shape[3] // 2, dtype=torch.bfloat16)
        row = {"shape": shape}
        for name, layer in layers.items():

            def forward(layer=layer, x=x):
                with torch.no_grad():
                    layer(x)

            def forward_backward(layer=layer, x=x, g=g):
                layer(x.detach().requires_grad_()).backward(g)

            row[f"{name}_fwd_ms"] = 1e3 * time_median(forward, 7, warmup=2)[0]
            row[f"{name}_fwd_bwd_ms"] = 1e3 * time_median(forward_backward, 7, warmup=2)[0]
        rows.append(row)
    return {"rows": rows, "machine": machine()}


def inference_worker(variant: str) -> dict:
    import torch

    from s2tdpt import create_model
    from s2tdpt.engine.fast import fold_batchnorm, prepare_inference

    torch.manual_seed(0)
    prepare = prepare_inference if variant == "channels_last" else fold_batchnorm
    model = prepare(create_model("s2tdpt_4_384", lif_backend="compiled"))
    images = torch.randn(64, 3, 32, 32)

    @torch.no_grad()
    def batch():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(images)

    return {"seconds": time_median(batch, 5, warmup=2)[0]}


def training_worker(variant: str) -> dict:
    import torch

    bench = TrainingStep("s2tdpt_4_384", 64)
    if variant == "train_channels_last":
        bench.model.patch_embed.to(memory_format=torch.channels_last)
    return {"seconds": time_median(bench.step, 3, warmup=2)[0]}


def _run(variant: str, tuned: bool) -> dict:
    r = run_worker([__file__, "--worker", variant], tuned)
    if "error" in r:
        raise SystemExit(f"{variant} worker failed: {r['error']}")
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--malloc", choices=["tuned", "default"], default="tuned")
    ap.add_argument("--pairs", type=int, default=3, help="alternated inference runs per variant")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        if args.worker == "pool":
            result = pool_worker()
        elif args.worker.startswith("train_"):
            result = training_worker(args.worker)
        else:
            result = inference_worker(args.worker)
        print(json.dumps(result))
        return 0

    tuned = args.malloc == "tuned"
    pools = _run("pool", tuned)
    print(f"Machine: {pools['machine']}\n")
    print("| map [T·B, C, H, W] | forward NCHW | forward channels-last | fwd+bwd NCHW | fwd+bwd channels-last |")
    print("|---|---:|---:|---:|---:|")
    for r in pools["rows"]:
        print(f"| {r['shape']} | {r['nchw_fwd_ms']:.2f} ms | {r['channels_last_fwd_ms']:.2f} ms | "
              f"{r['nchw_fwd_bwd_ms']:.2f} ms | {r['channels_last_fwd_bwd_ms']:.2f} ms |")  # fmt: skip
    times: dict[str, list[float]] = {"nchw": [], "channels_last": []}
    for _ in range(args.pairs):
        for variant in times:
            times[variant].append(_run(variant, tuned)["seconds"])
    print("\ns2tdpt_4_384 inference, batch 64, seconds per batch (alternated fresh processes):")
    for variant, ts in times.items():
        print(f"- {'fold_batchnorm' if variant == 'nchw' else 'prepare_inference'}: "
              + " / ".join(f"{t:.3f}" for t in ts))  # fmt: skip
    nchw, cl = (_run(v, tuned)["seconds"] for v in ("train_nchw", "train_channels_last"))
    print(f"\ns2tdpt_4_384 training step, batch 64: tokenizer NCHW {nchw:.2f} s, channels-last {cl:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
