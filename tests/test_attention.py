"""Every registered token mixer: the shared contract, gradients, spikes, two-path agreement, controls, ANN."""

import pytest
import torch
from firing import assert_late_neurons_fire, warm_batchnorm

import s2tdpt
from s2tdpt.attention import create_attention, list_attentions
from s2tdpt.attention.lrf import DendriticDynamics, LRFDyn
from s2tdpt.attention.ssa import ssa_product
from s2tdpt.snn import LIFNode, NeuronSpec

ALL = list_attentions()
SPIKING_OUTPUT = [a for a in ALL if a != "softmax"]  # mixers whose output (before the projection) is binary
GRID = (8, 8)  # the CIFAR token grid: with fewer tokens s·QKᵀV stays below the attention threshold


def _mixer(name, dim=32, heads=2, grid=GRID, **kw):
    torch.manual_seed(0)
    mixer = create_attention(name, dim, heads, neuron=NeuronSpec(), grid=grid, **kw)
    with torch.no_grad():  # at initialisation BN holds Q/K/V near 3 % firing; ~25 % exercises every path here
        mixer.qkv_bn.weight.fill_(3.0)
    return mixer


def _membrane(t=3, b=2, n=64, d=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, b, n, d, generator=g) * 2.0  # strong enough to make every neuron fire sometimes


def test_registry_lists_every_mechanism():
    expected = {"stdp", "ssa", "sdsa", "qk_token", "a2os2a", "lrf_ssa", "lrf_dyn", "identity", "random_frozen"}
    assert expected | {"softmax"} == set(ALL)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown attention 'nope'; available: a2os2a"):
        _mixer("nope")
    with pytest.raises(ValueError, match=r"does not accept option\(s\) \['depth'\]; valid options: \['order'"):
        _mixer("ssa", depth=3)
    with pytest.raises(ValueError, match="not divisible"):
        _mixer("ssa", dim=15)


@pytest.mark.parametrize("name", ALL)
def test_contract_shapes_and_finite(name):
    mixer = _mixer(name)
    u = _membrane()
    out = mixer(u)
    assert out.shape == u.shape and out.dtype == u.dtype
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="token grid"):
        mixer(_membrane(n=9))


@pytest.mark.parametrize("name", ALL)
def test_backward_reaches_every_parameter(name):
    mixer = _mixer(name)
    u = _membrane().requires_grad_()
    (mixer(u) * torch.randn(u.shape)).sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    for pname, p in mixer.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} got an all-zero gradient"


@pytest.mark.parametrize("name", SPIKING_OUTPUT)
def test_spiking_mechanisms_emit_spikes(name):
    mixer = _mixer(name)
    heads = mixer.project(_membrane())
    for h, branch in zip(heads, mixer.branches, strict=True):
        if not (name == "a2os2a" and branch in ("k", "v")):  # A²OS²A: K is ReLU, V ternary
            assert set(h.unique().tolist()) <= {0.0, 1.0}, f"{name}: branch {branch}"
    y = mixer.mix(*heads)
    assert set(y.unique().tolist()) <= {0.0, 1.0}, name
    assert y.shape == (3, 2, 2, 64, 16)


def test_a2os2a_neurons():
    mixer = _mixer("a2os2a")
    q, k, v = mixer.project(_membrane())
    assert set(q.unique().tolist()) <= {0.0, 1.0}
    assert k.min() >= 0 and len(k.unique()) > 3  # real-valued, non-negative
    assert set(v.unique().tolist()) == {-1.0, 0.0, 1.0}  # ternary


@pytest.mark.parametrize("name", ALL)
def test_state_is_reset_between_forwards(name):
    # BN statistics warmed on membranes like u make the eval-mode mixer fire: at their initial values the attention
    # neuron is silent and the output does not depend on the input. A neuron that carries its membrane from one
    # call to the next fails here.
    mixer = warm_batchnorm(_mixer(name), [_membrane(seed=s) for s in (11, 12, 13)])
    u, other = _membrane(), _membrane(seed=5) * 2
    for inputs in (u, other):  # each call leaves membrane potentials behind that a stateful bug would carry
        assert_late_neurons_fire(mixer, inputs)
    with torch.no_grad():
        first = mixer(u)
        mixer(other)
        assert torch.equal(mixer(u), first)


@pytest.mark.parametrize("name", ALL)
def test_every_mechanism_trains_in_the_model(name):
    model_name = "ann_4_384" if name == "softmax" else "s2tdpt_tiny"
    overrides = dict(embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0) if name == "softmax" else {}
    torch.manual_seed(0)
    m = s2tdpt.create_model(model_name, attention=name, **overrides)
    x = torch.randn(3, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in m.parameters())


def test_ssa_orders_agree_exactly():
    g = torch.Generator().manual_seed(0)
    q, k, v = ((torch.rand(2, 3, 64, 32, generator=g) < 0.3).float() for _ in range(3))
    assert torch.equal(ssa_product(q, k, v, "kv_first"), ssa_product(q, k, v, "qk_first"))
    for name in ("ssa", "lrf_ssa"):
        a, b = _mixer(name, order="kv_first"), _mixer(name, order="qk_first")
        b.load_state_dict(a.state_dict())
        u = _membrane()
        assert torch.equal(a(u), b(u)), name


@pytest.mark.parametrize("n", [64, 196])
def test_lrf_dyn_fft_equals_scan(n):
    torch.manual_seed(0)
    dyn = DendriticDynamics(channels=12, compartments=8)
    with torch.no_grad():
        dyn.d_skip.normal_()
    u = torch.rand(2, 3, n, 12)
    fft, scan = dyn(u, "fft"), dyn(u, "scan")
    # float32 FFT vs complex64 recurrence: agree within 1e-5 of the output's scale (~30–50 here)
    assert (fft - scan).abs().max() <= 1e-5 * scan.abs().max()
    assert scan.abs().max() > 10.0  # the kernel integrates: far from a trivial output


def test_lrf_dyn_mixer_fft_equals_scan():
    a, b = _mixer("lrf_dyn", impl="fft"), _mixer("lrf_dyn", impl="scan")
    b.load_state_dict(a.state_dict())
    heads = a.project(_membrane())
    fft, scan = a.token_dynamics(*heads), b.token_dynamics(*heads)
    assert (fft - scan).abs().max() <= 1e-5 * scan.abs().max() and scan.abs().max() > 0.5


@pytest.mark.parametrize("impl", ["scan", "fft"])
@pytest.mark.parametrize("variant", ["A", "B"])
def test_lrf_dyn_is_causal_before_the_local_field(variant, impl):
    mixer = _mixer("lrf_dyn", variant=variant, impl=impl)
    heads = [h.clone() for h in mixer.project(_membrane())]
    base = mixer.token_dynamics(*heads)
    m = 37
    changed = [h.clone() for h in heads]
    for h in changed:
        h[:, :, :, m:] = 1.0 - h[:, :, :, m:]  # flip every spike of tokens m … N−1
    out = mixer.token_dynamics(*changed)
    before, after = (out - base)[:, :, :m].abs().max(), (out - base)[:, :, m:].abs().max()
    if impl == "scan":
        assert before == 0  # exactly: the recurrence never reads ahead
    else:
        assert before <= 1e-5 * base.abs().max()  # the FFT form mixes rounding noise, nothing more
    assert after > 0.1


def test_lrf_dyn_limit_is_causal_linear_attention():
    # spec §8.3: k = 1, no leak, D_skip = 0 → Y_n = C·B · q_n ⊙ Σ_{j≤n} k_j ⊙ v_j (C·B = 1 at initialisation)
    mixer = _mixer("lrf_dyn", compartments=1)
    with torch.no_grad():
        mixer.dynamics.log_a_re.fill_(-30.0)  # Re λ = −e^{−30}: no leak
        mixer.dynamics.a_im.zero_()
    q, k, v = mixer.project(_membrane())
    y = mixer.token_dynamics(q, k, v)
    merge = lambda x: x.transpose(2, 3).reshape(3, 2, 64, 32)  # noqa: E731
    expected = merge(q) * torch.cumsum(merge(k) * merge(v), dim=2)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)


def test_random_frozen_stays_frozen_under_training():
    torch.manual_seed(0)
    m = s2tdpt.create_model("s2tdpt_tiny", attention="random_frozen")
    frozen = m.blocks[0].attn.weights.clone()
    assert frozen.shape == (2, 64, 64) and frozen.min() >= 0
    assert "blocks.0.attn.weights" in m.state_dict()
    assert not any(p is m.blocks[0].attn.weights for p in m.parameters())
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(m(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(m.blocks[0].attn.weights, frozen)
    copy = s2tdpt.create_model("s2tdpt_tiny", attention="random_frozen")
    copy.load_state_dict(m.state_dict())
    assert torch.equal(copy.blocks[0].attn.weights, frozen)  # checkpoints carry the frozen matrix


def test_ann_baseline_has_no_neurons_and_one_timestep():
    m = s2tdpt.create_model("ann_4_384")
    assert m.config.timesteps == 1 and m.config.attention == "softmax"
    assert sum(p.numel() for p in m.parameters()) == 9_320_122  # the paper's 9.32 M "Transformer-4-384"
    assert not any(isinstance(mod, LIFNode) for mod in m.modules())
    assert any(isinstance(mod, torch.nn.ReLU) for mod in m.modules())
    with torch.no_grad():
        assert m.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_ann_dense_macs_match_the_energy_spec():
    # energy.md: tokenizer 468,467,712; per block Q/K/V/O 37,748,736 and MLP 75,497,472; QKᵀ + AV 3,145,728.
    m = s2tdpt.create_model("ann_4_384", num_classes=100).eval()
    macs = {"conv_linear": 0}

    def count(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            per_out = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            macs["conv_linear"] += out.numel() * per_out
        else:
            macs["conv_linear"] += out.numel() * mod.in_features

    for mod in m.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            mod.register_forward_hook(count)
    with torch.no_grad():
        m(torch.randn(1, 3, 32, 32))
    n, d = 64, 384
    attention = 4 * 2 * n * n * d
    assert macs["conv_linear"] == 921_490_944
    assert macs["conv_linear"] + attention == 934_073_856  # ≈ 0.93 G, TV10: 4.2967 mJ at 4.6 pJ


def test_spiking_only_mechanisms_refuse_the_ann_backbone():
    with pytest.raises(ValueError, match="works on spikes only"):
        s2tdpt.create_model("ann_4_384", attention="stdp")
    with pytest.raises(ValueError, match="works on spikes only"):
        s2tdpt.create_model("ann_4_384", attention="a2os2a")
    assert s2tdpt.create_model("ann_4_384", attention="identity", embed_dim=32, num_heads=2)  # fine on reals


def test_lrf_dyn_parameters_skip_weight_decay():
    m = s2tdpt.create_model("s2tdpt_tiny", attention="lrf_dyn")
    names = m.no_weight_decay()
    assert "blocks.0.attn.dynamics.log_dt" in names and "blocks.0.attn.dynamics.a_im" in names
    assert isinstance(m.blocks[0].attn, LRFDyn)
