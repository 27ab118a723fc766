"""LIF neuron and surrogate gradient: hand-computed dynamics, closed-form gradients, single- vs multi-step."""

import pytest
import torch

from s2tdpt.snn import LIFNode, LIFParams, sigmoid_surrogate_grad, spike


def test_decay_input_charge_matches_hand_computed_sequence():
    # τ = 2, V_th = 1: H_t = V_{t-1} + (X_t − V_{t-1})/2; hard reset to 0 after a spike.
    x = torch.tensor([1.5, 0.5, 0.8, 2.5, 0.0, 3.0]).view(6, 1)
    # H1 = 0.75; H2 = 0.75 + (0.5 − 0.75)/2 = 0.625; H3 = 0.625 + (0.8 − 0.625)/2 = 0.7125;
    # H4 = 0.7125 + (2.5 − 0.7125)/2 = 1.60625 → spike, V = 0; H5 = 0; H6 = 1.5 → spike.
    expected = torch.tensor([0, 0, 0, 1, 0, 1.0]).view(6, 1)
    assert torch.equal(LIFNode()(x), expected)


def test_paper_charge_matches_hand_computed_sequence():
    # Eq. 7–9 with β = 0.5: U_t = H_{t-1} + X_t; H_t = β·U_t when silent, V_reset = 0 after a spike.
    x = torch.tensor([0.6, 0.6, 0.6, 1.2, 0.3]).view(5, 1)
    # U1 = 0.6 (H1 = 0.3); U2 = 0.9 (H2 = 0.45); U3 = 1.05 spike (H3 = 0); U4 = 1.2 spike; U5 = 0.3.
    expected = torch.tensor([0, 0, 1, 1, 0.0]).view(5, 1)
    assert torch.equal(LIFNode(charge="paper", beta=0.5)(x), expected)
    # without leak (β = 1) the membrane integrates: 0.6, 1.2 → spike at t = 2
    assert torch.equal(LIFNode(charge="paper", beta=1.0)(x[:2]), torch.tensor([[0.0], [1.0]]))


def test_threshold_is_inclusive_and_configurable():
    x = torch.tensor([[1.0]])  # one step: H = 0.5 under decay_input
    assert LIFNode(v_threshold=0.5)(x).item() == 1.0
    assert LIFNode(v_threshold=0.51)(x).item() == 0.0


@pytest.mark.parametrize("alpha", [4.0, 2.0])
def test_surrogate_gradient_matches_closed_form(alpha):
    x = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    s = spike(x, alpha)
    assert torch.equal(s.detach(), (x.detach() >= 0).double())
    (g,) = torch.autograd.grad(s.sum(), x)
    sig = 1 / (1 + torch.exp(-alpha * x.detach()))
    torch.testing.assert_close(g, alpha * sig * (1 - sig))
    torch.testing.assert_close(g, sigmoid_surrogate_grad(x.detach(), alpha))
    assert g[30].item() == pytest.approx(alpha / 4)  # at x = 0: α·σ(0)·(1 − σ(0)) = α/4


def test_bptt_gradient_matches_hand_derivation():
    # Two steps, decay_input τ = 2, no spike at t = 1: H1 = x1/2, V1 = H1, H2 = V1/2 + x2/2.
    # dS2/dx1 = σ'(H2 − 1)·(1/2)·(1/2); dS2/dx2 = σ'(H2 − 1)·(1/2).
    x = torch.tensor([[0.8], [0.6]], dtype=torch.float64, requires_grad=True)
    s = LIFNode()(x)
    gx1, gx2 = torch.autograd.grad(s[1].sum(), x)[0].flatten()
    h2 = 0.8 / 2 / 2 + 0.6 / 2
    sg = sigmoid_surrogate_grad(torch.tensor(h2 - 1.0, dtype=torch.float64)).item()
    assert gx1.item() == pytest.approx(sg / 4)
    assert gx2.item() == pytest.approx(sg / 2)


def test_reset_spike_is_detached():
    # Spike at t = 1 (H1 = 1.5): V1 = H1·(1 − S1). With S1 detached, dV1/dH1 = 1 − S1 = 0, so S2 gets exactly
    # zero gradient from x1. Without detaching, dV1/dH1 = (1 − S1) − H1·dS1/dH1 = −1.5·σ'(0.5) ≠ 0.
    x = torch.tensor([[3.0], [1.0]], dtype=torch.float64, requires_grad=True)
    g_detached = torch.autograd.grad(LIFNode()(x)[1].sum(), x)[0]
    assert g_detached[0].item() == 0.0
    g_attached = torch.autograd.grad(LIFNode(detach_reset=False)(x)[1].sum(), x)[0]
    assert g_attached[0].item() != 0.0


@pytest.mark.parametrize("charge", ["decay_input", "paper"])
def test_multistep_equals_single_steps(charge):
    torch.manual_seed(0)
    x = torch.randn(6, 3, 5, 7, dtype=torch.float64) * 1.5
    node = LIFNode(charge=charge)
    multi = node(x)
    node.reset()
    single = torch.stack([node.step(x_t) for x_t in x])
    assert torch.equal(multi, single)
    assert 0 < multi.mean() < 1  # the sequence really exercises firing and silence
    # gradients agree as well
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn_like(x)
    node.reset()
    ga = torch.autograd.grad((node(xa) * w).sum(), xa)[0]
    node.reset()
    gb = torch.autograd.grad((torch.stack([node.step(x_t) for x_t in xb]) * w).sum(), xb)[0]
    torch.testing.assert_close(ga, gb)


def test_state_starts_at_reset_every_forward():
    # τ = 2, V_th = 1, X = 1.2: H = 0.6, 0.9, 1.05 → spike, reset, H = 0.6. Started from the 0.6 left by a
    # previous call instead, it would fire one step earlier (0.9, 1.05 → spike, 0.6, 0.9).
    node = LIFNode()
    x = torch.full((4, 3), 1.2)
    expected = torch.tensor([0, 0, 1, 0.0]).view(4, 1).expand(4, 3)
    assert torch.equal(node(x), expected)
    assert torch.equal(node(x), expected)  # no carry-over between forward calls


def test_time_is_dim_zero_only():
    # Each sample along dim 1 gives what it gives alone, and swapping samples swaps outputs: no state passes
    # between samples (a loop over a flattened T·B axis would pass it from one sample to the next).
    torch.manual_seed(1)
    x = torch.randn(4, 5, 3) + 1.2  # fires often enough that a leaked membrane changes spikes
    node = LIFNode()
    out = node(x)
    assert 0.1 < out.mean() < 0.9
    perm = torch.tensor([4, 2, 0, 1, 3])
    assert torch.equal(node(x[:, perm]), out[:, perm])
    for b in range(5):
        assert torch.equal(node(x[:, b : b + 1]), out[:, b : b + 1]), f"sample {b}"


def test_bad_params_raise():
    with pytest.raises(ValueError, match="charge"):
        LIFParams(charge="leaky")
    with pytest.raises(ValueError, match="tau"):
        LIFParams(tau=0.0)
    with pytest.raises(ValueError, match="time-first"):
        LIFNode()(torch.zeros(3))


@pytest.mark.parametrize("charge", ["decay_input", "paper"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fused_lif_equals_the_reference_loop(charge, dtype):
    # Identical spikes (same float operations in the forward). Gradients agree to rounding: the fused backward
    # evaluates the surrogate over all steps at once, so tail elements of a step can take the scalar rather than
    # the vectorised code path of the sigmoid kernel (1-ulp differences).
    torch.manual_seed(0)
    x = (torch.randn(5, 7, 33) * 1.5).to(dtype)
    w = torch.randn(5, 7, 33).to(dtype)
    results = []
    for backend in ("torch", "fused"):
        xi = x.clone().requires_grad_()
        s = LIFNode(backend=backend, charge=charge)(xi)
        (s * w).sum().backward()
        results.append((s, xi.grad))
    (s_ref, g_ref), (s_fused, g_fused) = results
    assert s_fused.dtype == dtype
    assert torch.equal(s_fused, s_ref)
    tol = {torch.float32: 1e-6, torch.float64: 1e-14, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(g_fused, g_ref, rtol=tol, atol=tol)
    assert 0 < s_ref.float().mean() < 1 and g_ref.abs().sum() > 0


def test_fused_backend_falls_back_without_detached_reset():
    x = torch.randn(4, 10, requires_grad=True)
    ref = torch.autograd.grad(LIFNode(backend="torch", detach_reset=False)(x * 3).sum(), x)[0]
    fused = torch.autograd.grad(LIFNode(backend="fused", detach_reset=False)(x * 3).sum(), x)[0]
    torch.testing.assert_close(fused, ref)
    with pytest.raises(ValueError, match="backend"):
        LIFNode(backend="cuda")
