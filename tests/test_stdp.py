"""STDP attention: the dense reference vs the exact linear-time form, in values and gradients."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from s2tdpt.attention.stdp import (
    A_STDP,
    T_MAX,
    TAU_STDP,
    W_OFFSET,
    stdp_attention,
    stdp_attention_dense,
    stdp_attention_matrix,
    stdp_tables,
)

PARAMS = dict(t_max=T_MAX, a_stdp=A_STDP, tau_stdp=TAU_STDP, w_offset=W_OFFSET)


def _spikes(shape, density, gen, dtype=torch.float64):
    return (torch.rand(shape, generator=gen) < density).to(dtype)


def _values_and_grads(fn, q, k, v, params, grad_out):
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    params = {n: p.detach().clone().requires_grad_() if isinstance(p, torch.Tensor) else p for n, p in params.items()}
    tensor_params = {n: p for n, p in params.items() if isinstance(p, torch.Tensor)}
    out = fn(q, k, v, **params)
    grads = torch.autograd.grad(out, [q, k, v, *tensor_params.values()], grad_out)
    return [out.detach(), *grads]


def _assert_equivalent(q, k, v, params=PARAMS, rtol=1e-9, atol=1e-9):
    gen = torch.Generator().manual_seed(123)
    grad_out = torch.randn(v.shape, generator=gen, dtype=v.dtype)
    ref = _values_and_grads(stdp_attention_dense, q, k, v, params, grad_out)
    lin = _values_and_grads(stdp_attention, q, k, v, params, grad_out)
    names = ["out", "dq", "dk", "dv", *[n for n, p in params.items() if isinstance(p, torch.Tensor)]]
    for name, a, b in zip(names, ref, lin, strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
    return ref


@settings(max_examples=60, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n=st.integers(1, 40),
    d_h=st.integers(1, 16),
    d_v=st.integers(1, 9),
    q_density=st.floats(0.0, 1.0),
    k_density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_linear_equals_dense_float64(lead, n, d_h, d_v, q_density, k_density, seed):
    gen = torch.Generator().manual_seed(seed)
    q = _spikes((*lead, n, d_h), q_density, gen)
    k = _spikes((*lead, n, d_h), k_density, gen)
    v = torch.randn((*lead, n, d_v), generator=gen, dtype=torch.float64)
    _assert_equivalent(q, k, v)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 64), d_h=st.sampled_from([8, 16, 32, 48]), seed=st.integers(0, 2**16))
def test_linear_equals_dense_float32_binary_v(n, d_h, seed):
    # The model's setting: float32, binary V. Tolerances are far below any sign or branch error (A ~ 0.1..1).
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (_spikes((2, 3, n, d_h), p, gen, torch.float32) for p in (0.2, 0.3, 0.25))
    _assert_equivalent(q, k, v, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "case",
    ["q_all_zero", "q_all_one", "k_all_zero", "k_all_one", "all_ties", "mixed_extremes", "single_token", "d_h_1"],
)
def test_edge_cases(case):
    gen = torch.Generator().manual_seed(7)
    n, d_h = 12, 6
    q = _spikes((2, n, d_h), 0.5, gen)
    k = _spikes((2, n, d_h), 0.5, gen)
    if case == "q_all_zero":
        q[:, ::2] = 0
    elif case == "q_all_one":
        q[:, 1::3] = 1
    elif case == "k_all_zero":
        k.zero_()
    elif case == "k_all_one":
        k.fill_(1)
    elif case == "all_ties":  # every query and key has the same count: Δt = 0 everywhere
        q.zero_()
        k.zero_()
        q[..., :3] = 1
        k[..., 2:5] = 1
    elif case == "mixed_extremes":
        q[:, 0], q[:, 1], k[:, 0], k[:, 1] = 0, 1, 1, 0
    elif case == "single_token":
        q, k = q[:, :1], k[:, :1]
    elif case == "d_h_1":
        q, k = q[..., :1], k[..., :1]
    v = torch.randn(q.shape[:-1] + (5,), generator=gen, dtype=torch.float64)
    _assert_equivalent(q, k, v)


def test_gradients_are_nontrivial_on_both_branches():
    # Guard against a vacuous comparison: the reference gradients w.r.t. q and k are nonzero, and they carry
    # contributions from both branches of Eq. 21 (queries with more and with fewer spikes than the keys).
    gen = torch.Generator().manual_seed(3)
    q = _spikes((20, 16), 0.5, gen)
    k = _spikes((20, 16), 0.5, gen)
    v = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    r_q, r_k = q.sum(-1), k.sum(-1)
    assert (r_q[:, None] < r_k[None, :]).any() and (r_q[:, None] > r_k[None, :]).any()
    _, dq, dk, dv = _assert_equivalent(q, k, v)
    assert dq.abs().sum() > 0 and dk.abs().sum() > 0 and dv.abs().sum() > 0


def _with_counts(counts, d_h):
    """Binary rows [len(counts), d_h] whose row i has its first counts[i] entries set."""
    return (torch.arange(d_h) < torch.tensor(counts)[:, None]).double()


def test_both_forms_follow_eq_21_branch_by_branch():
    # Eq. 17–22 written out here: t(r) = T_max·(1 − r/D_H), Δt = t_Q − t_K, f = A·exp(−|Δt|/τ),
    # A_ij = w_offset + f if Δt < 0 (the query fires more: potentiation) else w_offset − f (Δt = 0 included).
    # With V the identity, A·V = A, so a swap of the two branches (or a sign error in Δt) fails entry by entry.
    d_h = 8
    q_counts, k_counts = [2, 5, 0, 8, 3], [0, 2, 3, 5, 8]
    q, k, v = _with_counts(q_counts, d_h), _with_counts(k_counts, d_h), torch.eye(5, dtype=torch.float64)
    expected = torch.empty(5, 5, dtype=torch.float64)
    for i, rq in enumerate(q_counts):
        for j, rk in enumerate(k_counts):
            dt = T_MAX * (1 - rq / d_h) - T_MAX * (1 - rk / d_h)
            f = A_STDP * math.exp(-abs(dt) / TAU_STDP)
            expected[i, j] = W_OFFSET + (f if dt < 0 else -f)
    assert (expected > W_OFFSET).any() and (expected < W_OFFSET).any()  # both branches occur
    assert expected[0, 1] == W_OFFSET - A_STDP  # Δt = 0 is depression
    torch.testing.assert_close(stdp_attention(q, k, v), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stdp_attention_dense(q, k, v), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_learnable_per_head_parameters(dtype, tol):
    gen = torch.Generator().manual_seed(11)
    heads = 3
    q, k = _spikes((2, heads, 10, 8), 0.4, gen, dtype), _spikes((2, heads, 10, 8), 0.5, gen, dtype)
    v = torch.randn(2, heads, 10, 8, generator=gen, dtype=dtype)
    params = dict(
        t_max=torch.tensor([4.0, 2.0, 6.0], dtype=dtype),
        a_stdp=torch.tensor([0.5, 0.3, 0.4], dtype=dtype),
        tau_stdp=torch.tensor([1.0, 0.5, 2.0], dtype=dtype),
        w_offset=torch.tensor([0.5, 0.6, 0.4], dtype=dtype),
    )
    ref = _assert_equivalent(q, k, v, params, rtol=tol, atol=tol)
    assert all(g.abs().sum() > 0 for g in ref[4:])  # every STDP parameter receives a gradient


def test_hand_computed_attention_matrix():
    # D_H = 4, T_max = 4 → latency t(r) = 4 − r. Query with 2 spikes (t = 2) against keys with 3, 1, 2 spikes
    # (t = 1, 3, 2): Δt = +1 (depression), −1 (potentiation), 0 (depression with f = A).
    q = torch.tensor([[1.0, 1, 0, 0]])
    k = torch.tensor([[1.0, 1, 1, 0], [0, 0, 0, 1], [0, 1, 1, 0]])
    a = stdp_attention_matrix(torch.cat([q, torch.zeros(2, 4)]), k, **PARAMS)[0]
    e = math.exp(-1)
    torch.testing.assert_close(a, torch.tensor([0.5 - 0.5 * e, 0.5 + 0.5 * e, 0.0]))


@pytest.mark.parametrize("d_h", [1, 2, 8, 32, 48, 64, 128])
def test_default_weights_lie_in_unit_interval(d_h):
    h, dh = stdp_tables(d_h, **PARAMS)
    assert h.shape == (d_h + 1, d_h + 1)
    assert h.min() >= 0 and h.max() <= 1
    assert torch.all(dh >= 0)
    assert torch.all(h.diagonal() == 0)  # equal counts: Δt = 0 → depression by A_stdp, offset by w_offset


def test_outputs_depend_on_query_count_only():
    gen = torch.Generator().manual_seed(2)
    q = torch.zeros(6, 8)
    q[0, :3] = 1
    q[1, 5:] = 1  # same count as token 0, different pattern
    k = _spikes((6, 8), 0.5, gen)
    v = torch.randn(6, 4, generator=gen)
    out = stdp_attention(q, k, v)
    torch.testing.assert_close(out[0], out[1])


def test_non_binary_and_bad_shapes_raise():
    q = torch.zeros(4, 8)
    v = torch.zeros(4, 8)
    for fn in (stdp_attention, stdp_attention_dense):
        with pytest.raises(ValueError, match="binary spikes in q"):
            fn(q + 0.5, q, v)
        with pytest.raises(ValueError, match="binary spikes in k"):
            fn(q, q - 1, v)
        with pytest.raises(ValueError, match="same shape"):
            fn(q, q[:, :4], v)
        with pytest.raises(ValueError, match="v must have shape"):
            fn(q, q, v[:3])
        with pytest.raises(ValueError, match="float tensor"):
            fn(q.long(), q, v)


class _MaxNumel(TorchDispatchMode):
    """Records the largest tensor produced by any ATen op (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


@pytest.mark.parametrize("fn", [stdp_attention, stdp_attention_dense])
def test_linear_form_never_allocates_n_by_n(fn):
    n, d_h = 2048, 16
    gen = torch.Generator().manual_seed(0)
    q, k, v = (_spikes((1, n, d_h), 0.3, gen, torch.float32).requires_grad_() for _ in range(3))
    with _MaxNumel() as mode:
        out = fn(q, k, v)
        out.backward(torch.ones_like(out))
    if fn is stdp_attention:
        assert mode.max_numel <= n * d_h  # nothing larger than the inputs themselves, forward or backward
    else:
        assert mode.max_numel >= n * n  # the reference does build the N×N matrix: the check can fail


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_linear_form_memory_at_65536_tokens():
    # One head, D_H = 48, N = 65,536: an N×N float32 matrix alone would be 16 GiB. Measured in a fresh process.
    # Peak from /proc VmHWM (per address space): ru_maxrss would carry over pytest's size through fork + exec.
    code = """
import torch
from s2tdpt.attention.stdp import stdp_attention
def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
n, d = 65536, 48
g = torch.Generator().manual_seed(0)
q, k, v = ((torch.rand(n, d, generator=g) < 0.25).float().requires_grad_() for _ in range(3))
before = peak_mb()
out = stdp_attention(q, k, v)
out.backward(torch.ones_like(out))
after = peak_mb()
print(after - before, after)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    growth_mb, peak_mb = map(float, res.stdout.split())
    assert growth_mb < 256, f"fwd+bwd grew the process by {growth_mb:.0f} MB"
    assert peak_mb < 1024, f"process peak {peak_mb:.0f} MB"
