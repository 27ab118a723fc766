"""The backward of ``LIF(BatchNorm(x))`` in training, three ways, alternated in one process: the LIF's generated
kernel followed by the library's BatchNorm backward (what ``s2tdpt.snn.norm_lif`` runs), BatchNorm's backward
written out in the same generated kernel, and in two (the sums with the LIF's backward, then dL/dx).

    python benchmarks/norm_lif_backward.py [--rounds 7]

Shapes are those of ``s2tdpt_4_384`` at batch 64, T = 4 (the layers where a BN feeds a LIF): the tokenizer's
stages at 32×32 and 16×16 (``[T·B, C, H, W]``) and a block's QKV and MLP-hidden BNs (tokens ``[T, B, N, C]``).
Prints the median time of each per layer and its speed relative to the first. float32; the kernels compile in a first
check that all three give the same gradients, and round 0 is not timed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from s2tdpt.bench.common import machine
from s2tdpt.snn import compiled
from s2tdpt.snn.neuron import LIFParams

T, B = 4, 64
LAYERS = {  # name: (x's shape in BN's layout, "tokens" or None for [T·B, C, H, W])
    "SPE 1 BN (96 ch, 32x32)": ((T * B, 96, 32, 32), None),
    "SPE 2 BN (192 ch, 32x32)": ((T * B, 192, 32, 32), None),
    "SPED 1 BN (384 ch, 16x16)": ((T * B, 384, 16, 16), None),
    "Q, K, V BNs as one (64 tokens, 3x384)": ((T, B, 64, 3 * 384), "tokens"),
    "block MLP BN (64 tokens, 1536)": ((T, B, 64, 1536), "tokens"),
}


def _inputs(shape, layout) -> dict:
    x = torch.randn(shape) * 2 + 0.5
    if layout == "tokens":  # [T, B, N, C]: channels last
        x_seq, c, dims, view = x, shape[-1], (0, 1, 2), (shape[-1],)
    else:  # [T·B, C, H, W] → [T, B, C, H, W]
        x_seq, c, dims, view = x.unflatten(0, (T, -1)), shape[1], (0, 1, 3, 4), (shape[1], 1, 1)
    w, b = torch.rand(c) + 0.5, torch.rand(c) - 0.5
    x_bn = x.reshape(-1, c) if layout == "tokens" else x
    _, mean, invstd = torch.native_batch_norm(x_bn, w, b, None, None, True, 0.1, 1e-5)
    scale, shift = (invstd * w).view(view), (b - mean * invstd * w).view(view)
    spikes = compiled.spikes_only((x_seq * scale + shift).contiguous(), LIFParams())
    return dict(x_seq=x_seq, x_bn=x_bn, w=w, mean=mean, invstd=invstd, scale=scale, shift=shift, spikes=spikes,
                grad_s=torch.randn_like(spikes), dims=dims, view=view)  # fmt: skip


def one_kernel(grad_s, x_seq, weight, mean, invstd, shift, spikes, dims, v_reset, tau, v_th, alpha, beta, decay_input):
    """The LIF's backward and BatchNorm's written out, for one generated kernel. With M values per channel,
    x̂ = (x − μ)·invstd: dL/dβ = Σ dL/dy, dL/dγ = Σ dL/dy·x̂, dL/dx = γ·invstd·(dL/dy − dL/dβ/M − x̂·dL/dγ/M)."""
    scale = invstd * weight
    grad_y = compiled._norm_backward(grad_s, x_seq, scale, shift, spikes, v_reset, tau, v_th, alpha, beta, decay_input)
    gy, x = grad_y.float(), x_seq.float()
    count = x.numel() / mean.numel()
    grad_bias = gy.sum(dims, keepdim=True)
    grad_weight = ((x - mean) * gy).sum(dims, keepdim=True) * invstd
    grad_x = scale * (gy - grad_bias / count - (x - mean) * invstd * (grad_weight / count))
    return grad_x.to(x_seq.dtype), grad_weight, grad_bias


def sums_kernel(grad_s, x_seq, mean, scale, shift, spikes, dims, v_reset, tau, v_th, alpha, beta, decay_input):
    """First of two kernels: dL/dy (stored) and BatchNorm's two sums per channel in the same pass."""
    grad_y = compiled._norm_backward(grad_s, x_seq, scale, shift, spikes, v_reset, tau, v_th, alpha, beta, decay_input)
    gy = grad_y.float()
    return grad_y, gy.sum(dims, keepdim=True), ((x_seq.float() - mean) * gy).sum(dims, keepdim=True)


def input_grad_kernel(grad_y, x_seq, mean, invstd, scale, grad_bias, grad_weight_raw, count):
    """Second of two kernels: dL/dx, one elementwise pass."""
    k = grad_weight_raw * invstd * invstd / count
    return (scale * (grad_y.float() - grad_bias / count - (x_seq.float() - mean) * k)).to(x_seq.dtype)


P = LIFParams()
CONSTS = (P.v_reset, P.tau, P.v_threshold, P.surrogate_alpha, P.beta, P.charge == "decay_input")


def before(i: dict):
    """The LIF's backward kernel (dL/dy), then the library's BatchNorm backward."""
    lif_backward = compiled._kernel(compiled._norm_backward)
    gy = lif_backward(i["grad_s"], i["x_seq"], i["scale"], i["shift"], i["spikes"], *CONSTS)
    return torch.ops.aten.native_batch_norm_backward(
        gy.reshape(i["x_bn"].shape), i["x_bn"], i["w"], None, None, i["mean"], i["invstd"], True, 1e-5, [True] * 3
    )


def after(i: dict):
    """Both in one generated kernel."""
    v = i["view"]
    stats = (i["w"].view(v), i["mean"].view(v), i["invstd"].view(v), i["shift"])
    both = compiled._kernel(one_kernel)
    return both(i["grad_s"], i["x_seq"], *stats, i["spikes"], i["dims"], *CONSTS)


def two(i: dict):
    """dL/dy and the sums in one kernel, dL/dx in a second."""
    v = i["view"]
    mean, invstd = i["mean"].view(v), i["invstd"].view(v)
    gy, gb, gw_raw = compiled._kernel(sums_kernel)(
        i["grad_s"], i["x_seq"], mean, i["scale"], i["shift"], i["spikes"], i["dims"], *CONSTS
    )
    count = i["x_seq"].numel() // i["mean"].numel()
    gx = compiled._kernel(input_grad_kernel)(gy, i["x_seq"], mean, invstd, i["scale"], gb, gw_raw, count)
    return gx, gw_raw * invstd, gb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    print(f"Machine: {machine()}; float32, T = {T}, batch {B}; median of {args.rounds} alternated rounds\n")
    print("| layer | LIF kernel + library BN backward | one kernel | two kernels |\n|---|---:|---:|---:|")
    totals = [0.0, 0.0, 0.0]
    for name, (shape, layout) in LAYERS.items():
        inp = _inputs(shape, layout)
        want = before(inp)  # all three compute the same gradients (dL/dx, dL/dγ, dL/dβ): checked before timing
        for got in (after(inp), two(inp)):
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g.reshape(w.shape), w, rtol=1e-4, atol=1e-4 * w.abs().max().item())
        times: list[list[float]] = [[], [], []]
        for r in range(args.rounds + 1):
            for k, fn in enumerate((before, after, two)):
                t0 = time.perf_counter()
                fn(inp)
                if r:  # round 0 compiles
                    times[k].append(time.perf_counter() - t0)
        med = [statistics.median(t) for t in times]
        for k in range(3):
            totals[k] += med[k]
        print(f"| {name} | " + " | ".join(f"{m * 1e3:.1f} ms ({med[0] / m:.2f}x)" for m in med) + " |")
    print("| all five | " + " | ".join(f"{m * 1e3:.1f} ms ({totals[0] / m:.2f}x)" for m in totals) + " |")


if __name__ == "__main__":
    main()
