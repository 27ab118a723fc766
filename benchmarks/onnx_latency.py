"""Inference latency of the exported ONNX model (onnxruntime) beside PyTorch eager and compiled inference.

    python benchmarks/onnx_latency.py [--model s2tdpt_4_384] [--batches 64 1] [--rounds 5]

Same model and weights (seeded init), fp32, this process's thread count for both runtimes. Each round times
every runtime in turn (median of --calls calls after warm-up), so that a change in machine load hits all of
them alike; the table gives the median over rounds and the spread. Eager is what ``s2tdpt eval`` runs
(BatchNorm folded, channels-last convs, the fused LIF); compiled is ``s2tdpt eval --compile``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from s2tdpt.bench.common import machine, time_median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="s2tdpt_4_384")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()

    import onnxruntime

    from s2tdpt import create_model
    from s2tdpt.engine.fast import CompiledInference, prepare_inference
    from s2tdpt.engine.onnx_export import export_onnx

    torch.manual_seed(0)
    model = create_model(args.model, lif_backend="fused").eval()
    cfg = model.config
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = export_onnx(model, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - t0
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        eager = prepare_inference(model)
        print(f"{machine()} · {args.model} · fp32 · {torch.get_num_threads()} threads · ONNX export {export_s:.0f} s")
        print("| batch | runtime | s / batch (median of rounds) | min – max | images/s |")
        print("|---:|---|---:|---:|---:|")
        for batch in args.batches:
            x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size)
            compiled = CompiledInference(model)
            runtimes = {
                "PyTorch eager (s2tdpt eval)": lambda x=x: eager(x),
                "PyTorch compiled (eval --compile)": lambda x=x, c=compiled: c(x),
                "onnxruntime": lambda x=x: session.run(None, {"images": x.numpy()}),
            }
            with torch.no_grad():
                for fn in runtimes.values():  # warm-up (the compiled graph is built here)
                    fn()
                    fn()
                results = {name: [] for name in runtimes}
                for _ in range(args.rounds):
                    for name, fn in runtimes.items():
                        results[name].append(time_median(fn, args.calls, warmup=0)[0])
            for name, times in results.items():
                med = statistics.median(times)
                print(f"| {batch} | {name} | {med:.4f} | {min(times):.4f} – {max(times):.4f} | {batch / med:.0f} |")


if __name__ == "__main__":
    main()
