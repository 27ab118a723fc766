"""Every registered neuron, driven by the registry: a new neuron is picked up here without editing this file.

Inputs are scaled so that every neuron fires on part of its inputs (asserted), since a silent neuron passes every
equivalence and state check. PLIF and ILIF also get value references written here from their formulas.
"""

import math

import pytest
import torch

from s2tdpt import create_model
from s2tdpt.snn import (
    BACKENDS,
    EMITS,
    IntegerLIFNode,
    NeuronSpec,
    create_neuron,
    get_neuron_class,
    list_neurons,
    neuron_emits,
    neuron_options,
    register_neuron,
    set_expand,
)

NEURONS = list_neurons()
SPIKING = [n for n in NEURONS if neuron_emits(n) != "real"]


def _drive(shape=(6, 3, 40), seed=0, dtype=torch.float64):
    """Input [T, B, C] around the threshold: every neuron fires on some entries and not on others."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=dtype) * 3.0 - 0.5).requires_grad_()


def _assert_fires(out, name):
    nz = (out != 0).double().mean().item()
    assert 0 < nz < 1, f"{name} fired on {nz:.0%} of its inputs, so the check could not fail"


def _check_alphabet(name, out, neuron):
    values = set(out.detach().unique().tolist())
    if neuron.emits == "spikes":
        assert values <= {0.0, 1.0}, values
    elif neuron.emits == "counts":
        assert values <= set(map(float, range(neuron.max_count + 1))) and max(values) > 1, values


def test_registry_lists_the_builtins_and_declares_what_each_emits():
    assert {"lif", "plif", "ilif", "relu"} <= set(NEURONS)
    assert all(neuron_emits(n) in EMITS for n in NEURONS)
    assert (neuron_emits("lif"), neuron_emits("ilif"), neuron_emits("relu")) == ("spikes", "counts", "real")


def test_unknown_names_and_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown neuron 'glif'; available: .*ilif.*lif.*plif"):
        create_neuron("glif")
    with pytest.raises(ValueError, match=r"does not accept option\(s\) \['decay'\]; valid options: \['tau'"):
        create_neuron("plif", decay=0.5)
    with pytest.raises(ValueError, match="backend must be one of"):
        create_neuron("lif", backend="cuda")
    with pytest.raises(ValueError, match="already registered"):
        register_neuron("lif")(type("Again", (torch.nn.Module,), {"emits": "spikes"}))
    with pytest.raises(ValueError, match="must declare emits"):
        register_neuron("undeclared")(type("Undeclared", (torch.nn.Module,), {}))
    with pytest.raises(ValueError, match=r"config field 'neuron' must be one of"):
        create_model("s2tdpt_tiny", neuron="glif")
    with pytest.raises(ValueError, match=r"'lif_beta' \(0.7\) has no meaning for neuron 'plif'"):
        create_model("s2tdpt_tiny", neuron="plif", lif_beta=0.7)
    with pytest.raises(ValueError, match=r"neuron_kwargs.*'ilif' does not accept option\(s\) \['D'\]"):
        create_model("s2tdpt_tiny", neuron="ilif", neuron_kwargs={"D": 2})


@pytest.mark.parametrize("name", NEURONS)
def test_output_shape_dtype_and_alphabet(name):
    neuron = create_neuron(name)
    x = _drive() * 3  # integer neurons reach counts above 1
    out = neuron(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    _assert_fires(out, name)
    _check_alphabet(name, out, neuron)
    assert neuron(x.detach().bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("name", SPIKING)
def test_multistep_equals_single_steps_and_state_starts_at_rest(name):
    neuron = create_neuron(name, backend="torch")
    x = _drive().detach()
    out = neuron(x)
    _assert_fires(out, name)
    steps = torch.stack([neuron.step(x_t) for x_t in x])
    torch.testing.assert_close(steps, out, rtol=0, atol=0)
    neuron.step(x[0] * 5)  # single-step state left behind must not reach the multi-step forward
    torch.testing.assert_close(neuron(x), out, rtol=0, atol=0)
    neuron.reset()
    torch.testing.assert_close(neuron.step(x[0]), out[0], rtol=0, atol=0)
    # time is dim 0 only: each sample's output is that of the sample alone
    alone = torch.cat([neuron(x[:, i : i + 1]) for i in range(x.shape[1])], 1)
    torch.testing.assert_close(alone, out, rtol=0, atol=0)


def _out_and_grads(neuron, x, seed=1):
    out = neuron(x)
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(out.shape, generator=g, dtype=out.dtype)
    params = [p for p in neuron.parameters() if p.requires_grad]
    grads = torch.autograd.grad((out * weight).sum(), [x, *params])
    return out, grads


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
@pytest.mark.parametrize("name", SPIKING)
def test_every_backend_equals_the_reference(name, backend):
    """Outputs identical, gradients (input and parameters) to rounding; float32, as the fast paths run."""
    x = _drive(dtype=torch.float32)
    ref = create_neuron(name, backend="torch")
    fast = create_neuron(name, backend=backend)
    fast.load_state_dict(ref.state_dict())
    out_ref, grads_ref = _out_and_grads(ref, x)
    out_fast, grads_fast = _out_and_grads(fast, x)
    _assert_fires(out_ref, name)
    torch.testing.assert_close(out_fast, out_ref, rtol=0, atol=0)
    assert grads_ref[0].abs().sum() > 0, "no gradient reached the input: the comparison could not fail"
    for a, b in zip(grads_fast, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the inference path (no state kept for backward)
        torch.testing.assert_close(fast(x), out_ref, rtol=0, atol=0)


@pytest.mark.parametrize("name", SPIKING)
def test_binary_member_emits_zero_or_one(name):
    x = _drive() * 3  # strong enough that an integer neuron emits counts above 1
    out = NeuronSpec(name)(binary=True)(x)
    _assert_fires(out, name)
    assert set(out.detach().unique().tolist()) <= {0.0, 1.0}
    if neuron_emits(name) == "counts":  # the same input makes the ordinary member emit more than one spike
        assert NeuronSpec(name)()(x).max() > 1


# --- PLIF (Fang et al. 2021): H = V + sigmoid(w)·(X − (V − V_reset)), hard reset, τ = 1/sigmoid(w) ------------


def _plif_reference(x, tau, v_th=1.0):
    """The PLIF recurrence written out per element (float64), τ fixed: spikes [T, N]."""
    t_steps, n = x.shape
    out = torch.zeros(t_steps, n, dtype=torch.float64)
    for i in range(n):
        v = 0.0
        for t in range(t_steps):
            h = v + (x[t, i].item() - v) / tau
            fired = h >= v_th
            out[t, i] = float(fired)
            v = 0.0 if fired else h
    return out


def test_plif_starts_at_tau_2_and_follows_its_formula():
    neuron = create_neuron("plif")
    assert neuron.tau == pytest.approx(2.0)
    x = _drive((5, 30)).detach()
    out = neuron(x)
    _assert_fires(out, "plif")
    torch.testing.assert_close(out, _plif_reference(x, 2.0), rtol=0, atol=0)
    with torch.no_grad():
        neuron.w.fill_(-math.log(3.0 - 1.0))  # τ = 3
    torch.testing.assert_close(neuron(x), _plif_reference(x, 3.0), rtol=0, atol=0)


def test_plif_tau_gets_the_gradient_of_its_formula_and_stays_above_one():
    # One step from rest (T = 1): S = Θ(k·X − V_th), k = sigmoid(w), so through the sigmoid surrogate (α = 4)
    # dΣS/dw = Σ α·σ(α(kX − 1))·(1 − σ(α(kX − 1)))·X·k(1 − k).
    neuron = create_neuron("plif", backend="torch")
    with torch.no_grad():
        neuron.w.fill_(0.3)
    x = _drive((1, 50))
    out = neuron(x)
    _assert_fires(out, "plif")
    out.sum().backward()
    k = 1 / (1 + math.exp(-0.3))
    sg = torch.sigmoid(4.0 * (k * x.detach() - 1.0))
    expected = (4.0 * sg * (1 - sg) * x.detach() * k * (1 - k)).sum()
    torch.testing.assert_close(neuron.w.grad.double(), expected, rtol=1e-5, atol=1e-6)
    assert neuron.w.grad.abs() > 0
    opt = torch.optim.SGD(neuron.parameters(), lr=1e4)  # a huge step either way keeps τ = 1/sigmoid(w) > 1
    for sign in (1.0, -1.0):
        opt.zero_grad()
        (sign * neuron(x).sum()).backward()
        opt.step()
        assert math.isfinite(neuron.tau) and neuron.tau >= 1.0


# --- ILIF: C = round(clip(H / V_th, 0, D)), soft reset, straight-through gradient -------------------------------


def _ilif_reference(x, tau, v_th, d):
    """The integer LIF written out per element (float64): counts [T, N]."""
    t_steps, n = x.shape
    counts = torch.zeros(t_steps, n, dtype=torch.float64)
    for i in range(n):
        v = 0.0
        for t in range(t_steps):
            h = v + (x[t, i].item() - v) / tau
            q = h / v_th
            c = min(max(math.floor(q + 0.5), 0), d) if q >= 0 else 0
            counts[t, i] = c
            v = h - c * v_th
    return counts


@pytest.mark.parametrize("d", [1, 4])
def test_ilif_counts_follow_the_formula(d):
    neuron = create_neuron("ilif", max_count=d, v_threshold=0.75)
    x = (_drive((6, 60)).detach() * 3.0) - 1.0  # H/V_th reaches past D = 4 and below 0
    out = neuron(x)
    ref = _ilif_reference(x, 2.0, 0.75, d)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert out.min() == 0 and out.max() == d and set(out.unique().tolist()) == set(map(float, range(d + 1)))


def test_ilif_gradient_is_straight_through_inside_the_clip():
    # One step from rest: C = round(clip(X / (τ·V_th), 0, D)), so dC/dX = 1/(τ·V_th) where 0 <= X/(τ·V_th) <= D.
    tau, v_th, d = 2.0, 0.5, 3
    x = torch.linspace(-1.0, 4.0, 41, dtype=torch.float64).view(1, -1).requires_grad_()
    create_neuron("ilif", tau=tau, v_threshold=v_th, max_count=d)(x).sum().backward()
    q = x.detach() / (tau * v_th)
    expected = ((q >= 0) & (q <= d)).double() / (tau * v_th)
    torch.testing.assert_close(x.grad, expected)
    assert 0 < (x.grad > 0).double().mean() < 1


@pytest.mark.parametrize(("v_th", "tau"), [(1.0, 2.0), (0.75, 3.0)])
def test_ilif_fused_path_equals_the_reference_over_the_whole_count_range(v_th, tau):
    """The hand-written backward against autograd through the reference steps, with counts from 0 to D, membranes
    below 0, above D and exactly on both ends of the clip, half-way membranes, and the soft reset carrying gradient
    across steps. τ = 3 makes the input's share 1/τ differ from the state's 1 − 1/τ."""
    d = 4
    x = _drive((6, 4, 50), dtype=torch.float32).detach() * 6.0 - 1.5
    scale = tau * v_th  # the first step's membrane is q = X / (τ·V_th); these products are exact in float32
    x[0, 0, :6] = torch.tensor([0.5, 1.5, 2.5, 3.5, 0.0, float(d)]) * scale  # halves; the clip's two ends
    x.requires_grad_()
    ref = create_neuron("ilif", backend="torch", tau=tau, v_threshold=v_th, max_count=d)
    fused = create_neuron("ilif", backend="fused", tau=tau, v_threshold=v_th, max_count=d)
    out_ref, (g_ref,) = _out_and_grads(ref, x)
    out_fused, (g_fused,) = _out_and_grads(fused, x)
    assert type(out_fused.grad_fn).__name__ == "_FusedILIFBackward"  # the hand-written pair ran, not the reference
    assert set(out_ref.unique().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert out_ref[0, 0, :6].tolist() == [1.0, 2.0, 3.0, 4.0, 0.0, 4.0]  # halves round up
    q0 = x.detach()[0] / scale
    assert (q0 < 0).any() and (q0 > d).any()
    torch.testing.assert_close(out_fused, out_ref, rtol=0, atol=0)
    assert (g_ref == 0).any() and (g_ref != 0).float().mean() > 0.5
    assert (g_ref[0, 0, 4:6] != 0).all()  # q = 0 and q = D are inside the straight-through range
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-6, atol=1e-7)


def test_ilif_expanded_substeps_are_binary_and_give_the_same_counts():
    neuron = create_neuron("ilif", max_count=4)
    x = _drive((5, 4, 30)).detach() * 3
    counts = neuron(x)
    sub = neuron.substeps(x)  # [T, D, ...]
    assert sub.shape == (5, 4, 4, 30) and set(sub.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(sub.sum(1), counts, rtol=0, atol=0)
    assert counts.max() == 4  # some steps emit the full count: the clip is exercised
    assert set_expand(neuron) == 1 and neuron.expand
    torch.testing.assert_close(neuron(x), counts, rtol=0, atol=0)


def test_ilif_expanded_model_gives_the_same_logits():
    from firing import amplify_qkv, assert_late_neurons_fire, warm_batchnorm

    torch.manual_seed(0)
    m = amplify_qkv(create_model("s2tdpt_tiny", depth=2, neuron="ilif"))
    warm_batchnorm(m, [torch.randn(8, 3, 32, 32) for _ in range(3)])
    x = torch.randn(4, 3, 32, 32)
    assert_late_neurons_fire(m, x)
    counts_seen = []
    hook = m.blocks[1].mlp.lif1.register_forward_hook(lambda mod, i, o: counts_seen.append(o.max().item()))
    with torch.no_grad():
        count_form = m(x)
        assert set_expand(m, True) == sum(isinstance(mod, IntegerLIFNode) for mod in m.modules()) > 0
        expanded = m(x)
    hook.remove()
    assert counts_seen[0] > 1, "no neuron emitted more than one spike per step: the expansion was not exercised"
    torch.testing.assert_close(expanded, count_form, rtol=0, atol=0)


@pytest.mark.parametrize("name", NEURONS)
def test_the_neuron_and_its_options_round_trip_through_the_model_config(name):
    from s2tdpt.models.config import S2TDPTConfig

    attention = "softmax" if neuron_emits(name) == "real" else "stdp"
    options = {"tau": 3.0} if "tau" in neuron_options(name) else {}
    m = create_model("s2tdpt_tiny", neuron=name, neuron_kwargs=options, attention=attention)
    d = m.config.to_dict()
    assert (d["neuron"], d["neuron_kwargs"]) == (name, options)
    rebuilt = create_model("s2tdpt_tiny", **{k: d[k] for k in ("neuron", "neuron_kwargs", "attention")})
    assert S2TDPTConfig.from_dict(d) == m.config
    kinds = {type(mod) for mod in rebuilt.blocks[0].mlp.modules()}
    assert get_neuron_class(name) in kinds


def test_auto_backend_is_the_neurons_own_choice():
    from s2tdpt.engine.config import TrainConfig
    from s2tdpt.engine.train import configured_neuron, resolve_lif_backend
    from s2tdpt.snn import compiled

    cpu = torch.device("cpu")
    where_compile_works = "compiled" if compiled.available("cpu") else "fused"
    assert resolve_lif_backend("auto", cpu, "lif") == where_compile_works
    assert resolve_lif_backend("auto", cpu, "plif") == where_compile_works
    assert resolve_lif_backend("auto", cpu, "ilif") == "fused"  # its fused pair beats its derived kernel
    assert resolve_lif_backend("torch", cpu, "ilif") == "torch" and resolve_lif_backend("compiled", cpu) == "compiled"
    # the neuron a run will have: --neuron, else model_kwargs', else the named model's
    assert configured_neuron(TrainConfig(model="s2tdpt_tiny")) == "lif"
    assert configured_neuron(TrainConfig(model="s2tdpt_digits")) == "ilif"
    assert configured_neuron(TrainConfig(model="s2tdpt_digits", model_kwargs={"neuron": "plif"})) == "plif"
    assert configured_neuron(TrainConfig(model="s2tdpt_digits", model_kwargs={"neuron": "plif"}, neuron="lif")) == "lif"
