"""Every registered neuron × backend at the shape of s2tdpt_4_384's MLP neuron: forward + backward time, one run.

    python benchmarks/neurons.py [--malloc default|tuned] [--reps 5]

Input: a random current ``[T, B, N, C] = [4, 64, 64, 1536]`` (float32, 100 MB), fed to the neuron alone and, as in
the model, through its token BatchNorm (``norm_lif``: fused with the neuron where that path exists, ``lif(bn(x))``
elsewhere). The gradient is that of the output sum. Each row runs in a fresh process (a compiled backend compiles in
its untimed warm-up); the median of ``--reps`` runs is reported with the output's firing rate, so that a row that
does not fire (and so would time a trivial backward) is visible.

For ``lif`` one more row, ``derived``: the kernel that :mod:`s2tdpt.snn.base` generates from ``lif_step`` for any
neuron (``Neuron.forward`` with the compiled backend), against which the LIF's hand-written ``fused`` pair and
``compiled`` kernels have to earn their keep.
"""

from __future__ import annotations

import argparse
import json

from s2tdpt.bench.common import machine, peak_rss_mb, run_worker, time_median

SHAPE = (4, 64, 64, 1536)  # T, B, tokens, hidden channels of the 4-384 model's MLP


def worker(name: str, backend: str, with_bn: bool, reps: int) -> dict:
    import torch

    from s2tdpt.layers.norm import TokenBatchNorm
    from s2tdpt.snn import create_neuron
    from s2tdpt.snn.base import Neuron
    from s2tdpt.snn.norm_lif import norm_lif

    torch.manual_seed(0)
    neuron = create_neuron(name, backend="compiled" if backend == "derived" else backend)
    bn = TokenBatchNorm(SHAPE[-1])
    if backend == "derived":  # the generic kernel of the neuron's one-step dynamics, not its own fast paths

        def run(x: torch.Tensor) -> torch.Tensor:
            return Neuron.forward(neuron, x)

    else:
        run = neuron
    # without BN, scale the current so that a LIF at V_th = 1 fires a realistic fraction (about 10-20 %)
    x = (torch.randn(SHAPE) * (1.0 if with_bn else 1.5)).requires_grad_()
    base = peak_rss_mb()

    def forward() -> torch.Tensor:
        if backend == "derived":
            return run(bn(x) if with_bn else x)
        return norm_lif(x, bn, neuron) if with_bn else neuron(x)

    def step() -> None:
        x.grad = None
        bn.zero_grad(set_to_none=True)
        neuron.zero_grad(set_to_none=True)
        forward().sum().backward()

    median, times = time_median(step, reps, warmup=2)
    with torch.no_grad():
        rate = forward().float().mean().item()
    return {"median_s": median, "times": times, "rate": rate, "peak_mb": peak_rss_mb(), "base_mb": base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--malloc", choices=["default", "tuned"], default="tuned")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--worker", nargs=3, metavar=("NEURON", "BACKEND", "BN"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        name, backend, bn = args.worker
        print(json.dumps(worker(name, backend, bn == "bn", args.reps)))
        return

    from s2tdpt.snn import BACKENDS, get_neuron_class, list_neurons, neuron_emits
    from s2tdpt.snn.base import Neuron

    tuned = args.malloc == "tuned"
    print(f"Machine: {machine(tuned)}; float32 [T, B, N, C] = {list(SHAPE)}, forward + backward, "
          f"median of {args.reps} runs\n")  # fmt: skip
    print("| neuron | emits | backend | neuron alone | BN + neuron | mean output (alone) | peak RSS (+growth) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in list_neurons():
        if not issubclass(get_neuron_class(name), Neuron):
            backends = ["fused"]  # stateless (relu): one implementation
        else:
            backends = [*BACKENDS, "derived"] if name == "lif" else list(BACKENDS)
        for backend in backends:
            cells, rate, mem = [], "", ""
            for bn in ("alone", "bn"):
                r = run_worker([__file__, "--worker", name, backend, bn, "--reps", str(args.reps)], tuned)
                if "error" in r:
                    cells.append(f"failed: {r['error'][:50]}")
                    continue
                cells.append(f"{r['median_s'] * 1e3:.0f} ms")
                if bn == "alone":
                    rate = f"{r['rate']:.3f}"
                    mem = f"{r['peak_mb']:.0f} MB (+{r['peak_mb'] - r['base_mb']:.0f})"
            print(f"| {name} | {neuron_emits(name)} | {backend} | {' | '.join(cells)} | {rate} | {mem} |", flush=True)


if __name__ == "__main__":
    main()
