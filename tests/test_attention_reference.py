"""Value references for every attention mechanism, written out in the test from the formulas.

Sources: specs/baselines.md (ssa, sdsa, qk_token, a2os2a, random_frozen, softmax), specs/lrf_dyn.md §3 (lrf_ssa)
and the paper's Eq. 17–22 / specs/s2tdpt.md §5 (stdp). Each reference is a plain Python loop over tokens and
channels on ``.tolist()`` values: it shares no code with the modules (no ``ssa_product``, no STDP tables, no
``LocalField``), so a mechanism that sums over the wrong axis, reverses its keys, transposes a product or takes
the wrong branch of Eq. 21 gives different numbers even where every shape test passes.

Two views per mechanism, both in float64:

* the mechanism alone: hand-made heads through ``mixer.mix``; a forward pre-hook on the attention neuron
  captures its input (the attention before ``SN_{0.5}``), and the mix output is checked against a literal LIF;
* the whole module: a forward pass on a firing membrane input, the heads captured at ``heads_tap``, the neuron's
  input and the merged heads at the output projection compared with the references of those captured heads.

Last, ``stdp_attention`` (linear) and ``stdp_attention_dense`` against a literal loop over (query i, key j), on
inputs with zero-count tokens, count ties (Δt = 0) and both signs of Δt, for default, custom and per-head constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from s2tdpt.attention import create_attention, stdp_attention, stdp_attention_dense
from s2tdpt.snn import NeuronSpec

T, B, HEADS, D_H = 3, 2, 2, 4
S = 0.125  # the SSA scale of Spikformer and S²TDPT (baselines.md, Eq. 23)
ATTN_TH = 0.5  # threshold of the attention neuron SN_{0.5}
TOL = dict(rtol=1e-12, atol=1e-12)

Rows = list[list[float]]  # one head at one (t, b): [N][channels]


# ----------------------------------------------------------------------------------------------------------------
# Literal references, one head at a time.


def ref_lif(x: torch.Tensor, v_th: float, tau: float = 2.0) -> torch.Tensor:
    """specs/s2tdpt.md §2 over dim 0: ``H_t = V_{t−1} + (X_t − V_{t−1})/τ``, fire ``H ≥ V_th``, hard reset to 0."""
    v, out = torch.zeros_like(x[0]), []
    for x_t in x:
        h = v + (x_t - v) / tau
        s = (h >= v_th).to(x.dtype)
        v = h * (1 - s)
        out.append(s)
    return torch.stack(out)


def per_head(fn: Callable[..., Rows], *heads: torch.Tensor) -> torch.Tensor:
    """Apply ``fn(h, *rows)`` to every (t, b, h) slice of ``[T, B, H, N, C]`` heads; stack to a float64 tensor."""
    lists = [x.tolist() for x in heads]
    t_, b_, h_ = heads[0].shape[:3]
    out = [[[fn(h, *(x[t][b][h] for x in lists)) for h in range(h_)] for b in range(b_)] for t in range(t_)]
    return torch.tensor(out, dtype=torch.float64)


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def weighted_rows(weight: Callable[[int, int], float], v: Rows) -> Rows:
    """``out_i = Σ_j weight(i, j) · v_j`` with an explicit loop over query i and key j."""
    n, d = len(v), len(v[0])
    out = []
    for i in range(n):
        row = [0.0] * d
        for j in range(n):
            w = weight(i, j)
            for c in range(d):
                row[c] += w * v[j][c]
        out.append(row)
    return out


def ssa_head(q: Rows, k: Rows, v: Rows, scale: float) -> Rows:
    """Spikformer: ``s · Q Kᵀ V``, query i weighs key j by the overlap of their spikes."""
    return [[scale * x for x in row] for row in weighted_rows(lambda i, j: dot(q[i], k[j]), v)]


def sdsa_head(k: Rows, v: Rows) -> Rows:
    """Spike-driven Transformer: ``Σ_n K_n ⊙ V_n`` — one count per channel, summed over tokens → [1, D_H]."""
    return [[sum(k[n][c] * v[n][c] for n in range(len(k))) for c in range(len(k[0]))]]


def qk_head(q: Rows) -> Rows:
    """QKFormer token attention: ``Σ_c Q_{n,c}`` — one count per token, summed over channels → [N, 1]."""
    return [[sum(q[n])] for n in range(len(q))]


def local_field_head(v_all: list[Rows], weights: list[torch.Tensor], dilations, grid, h: int) -> Rows:
    """lrf_dyn.md §3.1: ``Σ_d Σ_{(a,b) ∈ {−1,0,1}²} r^d_{ab} · v_{(y+a·d, x+b·d)}`` on the raster token grid,
    zero outside; one 3×3 kernel per channel, channels = heads concatenated (head h holds h·D_H … h·D_H+D_H−1).
    ``v_all``: every head's V at this (t, b), so the channel index is explicit.
    """
    rows, cols = grid
    d_h = len(v_all[h][0])
    out = [[0.0] * d_h for _ in range(rows * cols)]
    for w, dil in zip(weights, dilations, strict=True):
        kernel = w.tolist()  # [D, 1, 3, 3] depthwise weights of this dilation
        for y in range(rows):
            for x in range(cols):
                for a in (-1, 0, 1):
                    for b in (-1, 0, 1):
                        yy, xx = y + a * dil, x + b * dil
                        if not (0 <= yy < rows and 0 <= xx < cols):
                            continue
                        for c in range(d_h):
                            r = kernel[h * d_h + c][0][a + 1][b + 1]
                            out[y * cols + x][c] += r * v_all[h][yy * cols + xx][c]
    return out


def softmax_head(q: Rows, k: Rows, v: Rows) -> Rows:
    """Vaswani: ``softmax(Q Kᵀ / √D_H) V``, softmax over keys j for every query i."""
    n, scale = len(q), 1 / math.sqrt(len(q[0]))
    out = []
    for i in range(n):
        scores = [dot(q[i], k[j]) * scale for j in range(n)]
        top = max(scores)
        e = [math.exp(s - top) for s in scores]
        row = [0.0] * len(v[0])
        for j in range(n):
            for c in range(len(row)):
                row[c] += e[j] / sum(e) * v[j][c]
        out.append(row)
    return out


def stdp_weight(q_row, k_row, t_max: float, a_stdp: float, tau: float, w_offset: float) -> float:
    """Paper Eq. 17–22 for one (query i, key j) pair."""
    d_h = len(q_row)
    r_q, r_k = sum(q_row), sum(k_row)  # Eq. 17: spike counts over the head's channels
    t_q = t_max * (1 - r_q / d_h)  # Eq. 18: more spikes → earlier first spike
    t_k = t_max * (1 - r_k / d_h)
    dt = t_q - t_k  # Eq. 19
    f = a_stdp * math.exp(-abs(dt) / tau)  # Eq. 20
    dw = f if dt < 0 else -f  # Eq. 21: potentiation iff the query fires first (Δt < 0); Δt = 0 depresses
    return dw + w_offset  # Eq. 22


def stdp_head(q: Rows, k: Rows, v: Rows, t_max=4.0, a_stdp=0.5, tau=1.0, w_offset=0.5) -> Rows:
    """``A·V`` with ``A_ij`` from :func:`stdp_weight` (before the scale and the attention neuron)."""
    return weighted_rows(lambda i, j: stdp_weight(q[i], k[j], t_max, a_stdp, tau, w_offset), v)


# ----------------------------------------------------------------------------------------------------------------
# One case per mechanism: how to make its heads, its attention before the neuron, and its mix output.


def binary(gen: torch.Generator, shape, p: float) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float64) < p).double()


def ternary(gen: torch.Generator, shape) -> torch.Tensor:
    return torch.randint(-1, 2, shape, generator=gen).double()


@dataclass
class Case:
    name: str
    grid: tuple[int, int]
    make_heads: Callable[[torch.Generator, tuple], tuple[torch.Tensor, ...]]
    pre: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]  # before SN_{0.5}: [T, B, H, ·, ·]
    post: Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor]  # (pre, heads) → mix output
    options: dict = field(default_factory=dict)
    kinds: str = "bbb"  # per head: b = 0/1 spikes, p = real ≥ 0 with zeros (ReLU), t = ternary, r = real


def fire(pre, heads):
    return ref_lif(pre, ATTN_TH)


def lrf_pre(mixer, heads):
    """lrf_dyn.md §3.2: ``s · (Q Kᵀ V + Σ_d DWConv_d(V))``, the local field inside the scale."""
    q, k, v = (x.tolist() for x in heads)
    weights = [conv.weight.detach() for conv in mixer.local.convs]  # the module's learned r^d, read, not run
    dilations = tuple(conv.dilation[0] for conv in mixer.local.convs)
    t_, b_, h_ = heads[0].shape[:3]
    out = [
        [
            [
                [
                    [S * (g + lo) for g, lo in zip(g_row, l_row, strict=True)]
                    for g_row, l_row in zip(
                        ssa_head(q[t][b][h], k[t][b][h], v[t][b][h], 1.0),
                        local_field_head(v[t][b], weights, dilations, mixer.grid, h),
                        strict=True,
                    )
                ]
                for h in range(h_)
            ]
            for b in range(b_)
        ]
        for t in range(t_)
    ]
    return torch.tensor(out, dtype=torch.float64)


def random_frozen_pre(mixer, heads):
    (v,) = heads
    r = mixer.weights.tolist()  # [H, N, N], the frozen matrix drawn at construction
    return per_head(lambda h, v_: [[S * x for x in row] for row in weighted_rows(lambda i, j: r[h][i][j], v_)], v)


CASES = [
    Case(
        "ssa",
        (3, 4),
        lambda g, s: (binary(g, s, 0.5), binary(g, s, 0.5), binary(g, s, 0.4)),
        lambda m, hs: per_head(lambda h, q, k, v: ssa_head(q, k, v, S), *hs),
        fire,
    ),
    Case(
        "sdsa",
        (3, 4),
        lambda g, s: (binary(g, s, 0.5), binary(g, s, 0.3), binary(g, s, 0.3)),
        lambda m, hs: per_head(lambda h, k, v: sdsa_head(k, v), hs[1], hs[2]),
        lambda pre, hs: hs[0] * ref_lif(pre, ATTN_TH),  # Q gated by the channel mask
    ),
    Case(
        "qk_token",
        (3, 4),
        lambda g, s: (binary(g, s, 0.3), binary(g, s, 0.5)),
        lambda m, hs: per_head(lambda h, q: qk_head(q), hs[0]),
        lambda pre, hs: ref_lif(pre, ATTN_TH) * hs[1],  # K gated by the token mask
        kinds="bb",
    ),
    Case(
        "a2os2a",
        (3, 4),
        # binary Q, real K ≥ 0 (ReLU: some exact zeros), ternary V; no scale (s = 1)
        lambda g, s: (binary(g, s, 0.4), torch.randn(s, generator=g, dtype=torch.float64).relu(), ternary(g, s)),
        lambda m, hs: per_head(lambda h, q, k, v: ssa_head(q, k, v, 1.0), *hs),
        fire,
        kinds="bpt",
    ),
    Case(
        "lrf_ssa",
        (4, 6),  # non-square, and wide enough that both default dilations 3 and 5 reach a neighbour
        lambda g, s: (binary(g, s, 0.4), binary(g, s, 0.4), binary(g, s, 0.4)),
        lrf_pre,
        fire,
    ),
    Case(
        "lrf_ssa",
        (3, 4),
        lambda g, s: (binary(g, s, 0.4), binary(g, s, 0.4), binary(g, s, 0.4)),
        lrf_pre,
        fire,
        options=dict(dilations=(1, 2), order="qk_first"),
    ),
    Case(
        "random_frozen",
        (4, 6),  # enough tokens that s·R·V crosses the threshold
        lambda g, s: (binary(g, s, 0.7),),
        random_frozen_pre,
        fire,
        kinds="b",
    ),
    Case(
        "softmax",
        (3, 4),
        lambda g, s: tuple(torch.randn(s, generator=g, dtype=torch.float64) for _ in range(3)),
        lambda m, hs: per_head(lambda h, q, k, v: softmax_head(q, k, v), *hs),
        lambda pre, hs: pre,  # no attention neuron: real-valued output
        kinds="rrr",
    ),
    *(
        Case(
            "stdp",
            (4, 6),  # enough tokens that s·A·V crosses the threshold (A_ij ≤ 1)
            lambda g, s: (binary(g, s, 0.5), binary(g, s, 0.5), binary(g, s, 0.6)),
            lambda m, hs: per_head(lambda h, q, k, v: [[S * x for x in r] for r in stdp_head(q, k, v)], *hs),
            fire,
            options=dict(impl=impl),
        )
        for impl in ("linear", "dense")
    ),
]
IDS = [c.name + ("-" + "-".join(f"{k}={v}" for k, v in c.options.items()) if c.options else "") for c in CASES]


def build(case: Case) -> nn.Module:
    torch.manual_seed(0)
    mixer = create_attention(case.name, HEADS * D_H, HEADS, neuron=NeuronSpec(), grid=case.grid, **case.options)
    mixer = mixer.double().eval()
    with torch.no_grad():
        # at initialisation Q/K/V would fire ~1 % and the attention neuron never; this makes them fire ~35 %
        mixer.qkv_bn.weight.fill_(6.0)
        mixer.qkv_bn.bias.fill_(1.5)
    return mixer


class Capture:
    """Removable hooks: the heads at ``heads_tap``, the attention neuron's input, the output projection's input."""

    def __init__(self, mixer: nn.Module) -> None:
        self.seen: dict[str, object] = {}
        self.handles = [
            mixer.heads_tap.register_forward_hook(lambda m, a, out: self._keep("heads", out)),
            mixer.proj.register_forward_pre_hook(lambda m, a: self._keep("merged", a[0])),
        ]
        if hasattr(mixer, "attn_lif"):
            self.handles.append(mixer.attn_lif.register_forward_pre_hook(lambda m, a: self._keep("pre", a[0])))

    def _keep(self, key: str, x) -> None:
        self.seen[key] = tuple(h.detach().clone() for h in x) if isinstance(x, tuple) else x.detach().clone()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def assert_spikes_vary(x: torch.Tensor, what: str) -> None:
    values = set(x.unique().tolist())
    assert values == {0.0, 1.0}, f"{what}: expected both 0 and 1 spikes, got values {sorted(values)[:5]}"


def assert_nontrivial(case: Case, heads, mix_out) -> None:
    for h, kind in zip(heads, case.kinds, strict=True):
        values, what = set(h.unique().tolist()), f"{case.name}: a head of kind {kind!r}"
        if kind == "b":
            assert_spikes_vary(h, what)
        elif kind == "t":
            assert values == {-1.0, 0.0, 1.0}, f"{what} takes values {sorted(values)[:5]}"
        else:
            assert len(values) > 3 and (kind == "r" or (min(values) == 0 and h.min() >= 0)), what
    if case.name != "softmax":
        assert_spikes_vary(mix_out, f"{case.name}: attention output")  # the attention neuron fires, not always


def check_pre(case: Case, seen: dict, pre: torch.Tensor) -> None:
    """The attention neuron's captured input equals the reference (every mechanism but softmax has the neuron)."""
    if case.name == "softmax":
        assert "pre" not in seen
        return
    assert "pre" in seen, f"{case.name}: the attention neuron was never called"
    torch.testing.assert_close(seen["pre"], pre, **TOL, msg=lambda m: f"{case.name} before SN: {m}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mix_matches_reference(case):
    mixer = build(case)
    gen = torch.Generator().manual_seed(7)
    heads = case.make_heads(gen, (T, B, HEADS, mixer.grid[0] * mixer.grid[1], D_H))
    cap = Capture(mixer)
    with torch.no_grad():
        out = mixer.mix(*heads)
    cap.remove()
    pre = case.pre(mixer, heads)
    check_pre(case, cap.seen, pre)
    torch.testing.assert_close(out, case.post(pre, heads), **TOL, msg=lambda m: f"{case.name} output: {m}")
    assert_nontrivial(case, heads, out)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_reference_on_captured_heads(case):
    mixer = build(case)
    n = mixer.grid[0] * mixer.grid[1]
    u = torch.randn(T, B, n, HEADS * D_H, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    cap = Capture(mixer)
    with torch.no_grad():
        mixer(u)
    cap.remove()
    heads = cap.seen["heads"]
    pre = case.pre(mixer, heads)
    check_pre(case, cap.seen, pre)
    post = case.post(pre, heads)  # [T, B, H, N, D_H]
    merged = post.permute(0, 1, 3, 2, 4).reshape(T, B, n, HEADS * D_H)  # heads concatenated per token
    torch.testing.assert_close(cap.seen["merged"], merged, **TOL, msg=lambda m: f"{case.name} merged: {m}")
    assert_nontrivial(case, heads, post)


# ----------------------------------------------------------------------------------------------------------------
# STDP attention (paper Eq. 17–22): a literal loop over (i, j) against the dense and the linear-time forms.


def stdp_inputs():
    """q, k ``[B=2, H=2, N=7, D_H=5]`` with zero-count tokens and count ties; v real ``[.., 7, 3]``."""
    gen = torch.Generator().manual_seed(4)
    q, k = binary(gen, (2, 2, 7, 5), 0.5), binary(gen, (2, 2, 7, 5), 0.5)
    q[0, 0, 1] = 0  # zero-count tokens: the latest possible latency t = T_max
    k[0, 0, 2] = 0
    k[1, 1, :2] = 0
    q[1, 0, 3] = 1  # all channels: latency 0
    v = torch.randn(2, 2, 7, 3, generator=gen, dtype=torch.float64)
    r_q, r_k = q.sum(-1), k.sum(-1)
    assert (r_q == 0).any() and (r_k == 0).any()
    pairs = r_q[..., :, None] - r_k[..., None, :]  # Δt has the sign of r_K − r_Q
    assert (pairs == 0).any() and (pairs > 0).any() and (pairs < 0).any()  # ties and both branches of Eq. 21
    return q, k, v


STDP_PARAMS = [
    dict(t_max=4.0, a_stdp=0.5, tau_stdp=1.0, w_offset=0.5),  # the documented defaults
    dict(t_max=3.0, a_stdp=0.3, tau_stdp=0.7, w_offset=0.45),  # distinct values: a swapped constant shows
]


@pytest.mark.parametrize("fn", [stdp_attention, stdp_attention_dense], ids=["linear", "dense"])
@pytest.mark.parametrize("params", STDP_PARAMS, ids=["defaults", "custom"])
def test_stdp_matches_literal_loop(fn, params):
    q, k, v = stdp_inputs()
    p = dict(t_max=params["t_max"], a_stdp=params["a_stdp"], tau=params["tau_stdp"], w_offset=params["w_offset"])
    expected = torch.tensor(
        [
            [stdp_head(qh, kh, vh, **p) for qh, kh, vh in zip(*b, strict=True)]
            for b in zip(*(x.tolist() for x in (q, k, v)), strict=True)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(fn(q, k, v, **params), expected, **TOL)


@pytest.mark.parametrize("fn", [stdp_attention, stdp_attention_dense], ids=["linear", "dense"])
def test_stdp_per_head_parameters_match_literal_loop(fn):
    q, k, v = stdp_inputs()
    per_head_params = [STDP_PARAMS[1], dict(t_max=6.0, a_stdp=0.4, tau_stdp=2.0, w_offset=0.6)]
    tensors = {n: torch.tensor([p[n] for p in per_head_params], dtype=torch.float64) for n in STDP_PARAMS[0]}
    expected = torch.tensor(
        [
            [
                stdp_head(qb[h], kb[h], vb[h], p["t_max"], p["a_stdp"], p["tau_stdp"], p["w_offset"])
                for h, p in enumerate(per_head_params)
            ]
            for qb, kb, vb in zip(q.tolist(), k.tolist(), v.tolist(), strict=True)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(fn(q, k, v, **tensors), expected, **TOL)
