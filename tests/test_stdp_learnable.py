"""Learnable STDP constants: one time-scale parameter per head, log(T_max/τ), clamped; the fixed path unchanged.

T_max (Eq. 18) and τ_stdp (Eq. 20) enter the attention weights only as T_max/τ, so the learnable form learns
that ratio (in log space) per head. References below are written from the paper's formulas with Python floats.
"""

import math

import pytest
import torch

from s2tdpt import create_model
from s2tdpt.attention.stdp import (
    LOG_RATIO_RANGE,
    STDPAttention,
    stdp_attention,
    stdp_attention_dense,
    stdp_attention_matrix,
)
from s2tdpt.snn import NeuronSpec

IMPLS = [stdp_attention, stdp_attention_dense]


def _attention(heads=2, **kw):
    return STDPAttention(8 * heads, heads, neuron=NeuronSpec(), grid=(2, 2), **kw)


def _spikes(shape, density, gen):
    return (torch.rand(shape, generator=gen, dtype=torch.float64) < density).double()


def _reference(q, k, v, ratio, a, w):
    """Eq. 17–22 for one head with Python floats: ``out_i = Σ_j A_ij·V_j`` and ``∂out_i/∂log(ratio)``.

    ``Δt_ij/τ = (T_max/τ)·(r_K(j) − r_Q(i))/D_H``; ``A_ij = w + f`` if ``Δt < 0`` else ``w − f``,
    ``f = a·exp(−|Δt|/τ)``, so ``∂A_ij/∂log(ratio) = ∓f·|Δt|/τ`` (minus on the potentiation branch).
    """
    d_h = q.shape[1]
    r_q, r_k = q.sum(1).tolist(), k.sum(1).tolist()
    out = torch.zeros(len(r_q), v.shape[1], dtype=torch.float64)
    d_out = torch.zeros_like(out)
    for i, rq in enumerate(r_q):
        for j, rk in enumerate(r_k):
            dt = ratio * (rk - rq) / d_h  # Δt/τ
            f = a * math.exp(-abs(dt))
            weight, d_weight = (w + f, -f * abs(dt)) if dt < 0 else (w - f, f * abs(dt))
            out[i] += weight * v[j]
            d_out[i] += d_weight * v[j]
    return out, d_out


def test_fixed_constants_are_passed_unchanged_and_match_the_formula():
    attn = _attention(learnable=False)
    assert attn.stdp() == dict(t_max=4.0, a_stdp=0.5, tau_stdp=1.0, w_offset=0.5)
    assert not list(attn.stdp.parameters()) and not any(".stdp." in key for key in attn.state_dict())
    other = _attention(learnable=False, t_max=6.0, a_stdp=0.3, tau_stdp=2.0, w_offset=0.6)
    assert other.stdp() == dict(t_max=6.0, a_stdp=0.3, tau_stdp=2.0, w_offset=0.6)  # floats, as given
    gen = torch.Generator().manual_seed(0)
    q, k = _spikes((3, 2, 9, 8), 0.4, gen), _spikes((3, 2, 9, 8), 0.6, gen)
    v = torch.randn(3, 2, 9, 5, generator=gen, dtype=torch.float64)
    for fn in IMPLS:
        out = fn(q, k, v, **attn.stdp())
        assert torch.equal(out, fn(q, k, v, t_max=4.0, a_stdp=0.5, tau_stdp=1.0, w_offset=0.5))
        for b in range(3):
            for h in range(2):
                ref, _ = _reference(q[b, h], k[b, h], v[b, h], ratio=4.0 / 1.0, a=0.5, w=0.5)
                torch.testing.assert_close(out[b, h], ref, rtol=1e-12, atol=1e-12)


def test_t_max_and_tau_act_only_through_their_ratio():
    gen = torch.Generator().manual_seed(1)
    q, k = _spikes((12, 8), 0.4, gen), _spikes((12, 8), 0.6, gen)
    base = stdp_attention_matrix(q, k, t_max=4.0, tau_stdp=1.0)
    torch.testing.assert_close(stdp_attention_matrix(q, k, t_max=10.0, tau_stdp=2.5), base, rtol=1e-12, atol=1e-12)
    assert (stdp_attention_matrix(q, k, t_max=8.0, tau_stdp=1.0) - base).abs().max() > 1e-2


def test_learnable_form_has_one_time_scale_parameter_per_head():
    attn = _attention(heads=3, learnable=True, t_max=6.0, tau_stdp=2.0)
    shapes = {name: tuple(p.shape) for name, p in attn.stdp.named_parameters()}
    assert shapes == {"log_t_max_over_tau": (3,), "a_stdp": (3,), "w_offset": (3,)}
    params = attn.stdp()
    assert params["tau_stdp"] == 2.0  # τ stays at its configured value; T_max carries the learned ratio
    torch.testing.assert_close(params["t_max"], torch.full((3,), 6.0))


def test_learnable_values_and_ratio_gradient_match_the_formula():
    heads, ratios = 2, [4.0, 0.7]
    attn = _attention(heads=heads, learnable=True).double()
    with torch.no_grad():
        attn.stdp.log_t_max_over_tau.copy_(torch.tensor(ratios, dtype=torch.float64).log())
        attn.stdp.a_stdp.copy_(torch.tensor([0.5, 0.3], dtype=torch.float64))
        attn.stdp.w_offset.copy_(torch.tensor([0.5, 0.6], dtype=torch.float64))
    gen = torch.Generator().manual_seed(2)
    q, k = _spikes((heads, 10, 6), 0.4, gen), _spikes((heads, 10, 6), 0.6, gen)
    v = torch.randn(heads, 10, 4, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(heads, 10, 4, generator=gen, dtype=torch.float64)
    for fn in IMPLS:
        attn.zero_grad()
        out = fn(q, k, v, **attn.stdp())
        out.backward(grad_out)
        grad = attn.stdp.log_t_max_over_tau.grad
        for h in range(heads):
            ref, d_ref = _reference(q[h], k[h], v[h], ratios[h], [0.5, 0.3][h], [0.5, 0.6][h])
            torch.testing.assert_close(out[h], ref, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad[h], (d_ref * grad_out[h]).sum(), rtol=1e-10, atol=1e-12)
        assert grad.abs().min() > 1e-3, fn.__name__  # both heads receive a gradient


@pytest.mark.parametrize("fn", IMPLS)
def test_extreme_ratios_stay_finite_and_saturate(fn):
    attn = _attention(heads=4, learnable=True)
    with torch.no_grad():
        attn.stdp.log_t_max_over_tau.copy_(torch.tensor([1e4, 50.0, -50.0, -1e4]))
    gen = torch.Generator().manual_seed(3)
    q, k = _spikes((4, 12, 8), 0.4, gen).float(), _spikes((4, 12, 8), 0.6, gen).float()
    v = torch.randn(4, 12, 3, generator=gen)
    out = fn(q, k, v, **attn.stdp())
    out.sum().backward()
    assert torch.isfinite(out).all(), "non-finite attention output"
    for p in attn.stdp.parameters():
        assert torch.isfinite(p.grad).all()
    assert torch.equal(attn.stdp.log_t_max_over_tau.grad, torch.zeros(4))  # clamped: no push further out
    lo, hi = LOG_RATIO_RANGE
    r_q, r_k = q.sum(-1), k.sum(-1)
    dc = r_k[:, None, :] - r_q[:, :, None]  # [head, i, j]
    # Upper end: a point kernel, w − a at equal counts and w elsewhere. Lower end: flat, w + a or w − a by sign.
    point = torch.where(dc == 0, 0.0, 0.5)
    flat = torch.where(dc < 0, 1.0, 0.0)
    torch.testing.assert_close(out[:2], (point @ v)[:2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[2:], (flat @ v)[2:], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(attn.stdp()["t_max"].log(), torch.tensor([hi, hi, lo, lo]))  # τ = 1


def test_checkpoints_with_the_former_t_max_and_tau_keys_load():
    torch.manual_seed(0)
    model = create_model("s2tdpt_tiny", depth=2, attn_kwargs={"learnable": True})
    state = model.state_dict()
    t_max, tau = torch.tensor([6.0, 3.0]), torch.tensor([2.0, 0.5])  # as an older version stored them
    for b in range(2):
        prefix = f"blocks.{b}.attn.stdp."
        del state[prefix + "log_t_max_over_tau"]
        state[prefix + "log_t_max"], state[prefix + "log_tau"] = t_max.log(), tau.log()
    fresh = create_model("s2tdpt_tiny", depth=2, attn_kwargs={"learnable": True})
    fresh.load_state_dict(state)  # strict
    gen = torch.Generator().manual_seed(4)
    q, k = _spikes((2, 10, 16), 0.4, gen).float(), _spikes((2, 10, 16), 0.6, gen).float()
    old = stdp_attention_matrix(q, k, t_max=t_max, a_stdp=0.5, tau_stdp=tau, w_offset=0.5)
    for b in range(2):
        params = fresh.blocks[b].attn.stdp
        torch.testing.assert_close(params.log_t_max_over_tau.detach(), torch.tensor([3.0, 6.0]).log())
        torch.testing.assert_close(stdp_attention_matrix(q, k, **params()), old, rtol=1e-5, atol=1e-6)
    half = dict(state)
    del half["blocks.0.attn.stdp.log_tau"]  # only one of the two former keys: not guessable
    with pytest.raises(RuntimeError, match="log_t_max_over_tau"):
        create_model("s2tdpt_tiny", depth=2, attn_kwargs={"learnable": True}).load_state_dict(half)


def test_learnable_ratio_outside_the_range_is_refused():
    with pytest.raises(ValueError, match="t_max/tau_stdp"):
        _attention(learnable=True, t_max=4.0, tau_stdp=1e-6)
