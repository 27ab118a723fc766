"""The S²TDPT model: parameter counts, shapes, gradients, batch independence, config errors."""

import pytest
import torch
from firing import amplify_qkv, assert_late_neurons_fire, warm_batchnorm

import s2tdpt
from s2tdpt import create_model, list_models
from s2tdpt.attention.stdp import STDPAttention


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_parameter_counts():
    assert _count(create_model("s2tdpt_4_384")) == 9_320_122
    assert _count(create_model("s2tdpt_4_384", num_classes=100, num_heads=8)) == 9_354_772
    assert _count(create_model("s2tdpt_4_384", num_classes=100)) == 9_354_772  # heads do not change the count
    assert _count(create_model("s2tdpt_digits", num_classes=10)) == 214_462  # the quick start's, as README says


def test_paper_model_configuration():
    m = create_model("s2tdpt_4_384")
    c = m.config
    assert (c.depth, c.embed_dim, c.num_heads, c.num_classes, c.timesteps, c.img_size, c.in_chans) == (
        4,
        384,
        12,
        10,
        4,
        32,
        3,
    )
    assert c.num_tokens == 64
    assert all(isinstance(b.attn, STDPAttention) and b.attn.impl == "linear" for b in m.blocks)


def test_registry_lists():
    assert {"s2tdpt_4_384", "s2tdpt_tiny", "s2tdpt_2_128"} <= set(list_models())
    assert "stdp" in s2tdpt.list_attentions()


@pytest.mark.parametrize("name", ["s2tdpt_tiny", "s2tdpt_2_128"])
def test_forward_shapes(name):
    m = create_model(name)
    x = torch.randn(3, 3, 32, 32)
    assert m(x).shape == (3, 10)
    u = m.forward_features(x)
    c = m.config
    assert u.shape == (c.timesteps, 3, 64, c.embed_dim)
    assert m.forward_head(u).shape == (3, 10)


def test_paper_model_forward():
    m = create_model("s2tdpt_4_384").eval()
    with torch.no_grad():
        out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "overrides,shape,tokens",
    [
        (dict(num_classes=7), (2, 3, 32, 32), 64),
        (dict(in_chans=1, img_size=28), (2, 1, 28, 28), 49),
        (dict(img_size=16, timesteps=3, num_heads=4), (2, 3, 16, 16), 16),
        (dict(img_size=8, in_chans=1, num_pools=1), (2, 1, 8, 8), 16),
        (dict(img_size=8, num_pools=0), (2, 3, 8, 8), 64),
    ],
)
def test_overrides(overrides, shape, tokens):
    m = create_model("s2tdpt_tiny", **overrides)
    assert m.config.num_tokens == tokens
    out = m(torch.randn(shape))
    assert out.shape == (2, overrides.get("num_classes", 10))
    assert m.forward_features(torch.randn(shape)).shape[:3] == (m.config.timesteps, 2, tokens)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        dict(attn_kwargs={"impl": "dense"}),
        dict(attn_kwargs={"learnable": True}),
        dict(lif_charge="paper"),
        dict(mlp_layernorm=True),
        *[dict(neuron=n) for n in s2tdpt.snn.list_neurons() if n not in ("lif", "relu")],
    ],
)
def test_every_parameter_receives_a_gradient(overrides):
    torch.manual_seed(0)
    m = create_model("s2tdpt_tiny", depth=2, **overrides)
    loss = torch.nn.functional.cross_entropy(m(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_linear_and_dense_models_agree():
    torch.manual_seed(0)
    lin = create_model("s2tdpt_tiny", depth=2, attn_kwargs={"learnable": True}).double()
    dense = create_model("s2tdpt_tiny", depth=2, attn_kwargs={"learnable": True, "impl": "dense"}).double()
    dense.load_state_dict(lin.state_dict())
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    outs = []
    for m in (lin, dense):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        outs.append((loss.detach(), {n: p.grad for n, p in m.named_parameters()}))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-10, atol=1e-10)
    for n in outs[0][1]:
        torch.testing.assert_close(outs[0][1][n], outs[1][1][n], rtol=1e-8, atol=1e-10, msg=n)


SPIKING = [n for n in s2tdpt.snn.list_neurons() if s2tdpt.snn.neuron_emits(n) != "real"]


@pytest.mark.parametrize("neuron", SPIKING)
def test_eval_logits_do_not_depend_on_the_rest_of_the_batch(neuron):
    # Warmed BN statistics (and Q/K/V gain for the attention neuron) make the eval-mode network fire: at
    # initialisation it is silent past the first stage, and a silent network's logits are the same for every input.
    # A neuron that runs over a flattened T·B axis, or that carries its membrane from one call to the next, mixes
    # samples and fails here.
    torch.manual_seed(0)
    m = amplify_qkv(create_model("s2tdpt_tiny", depth=2, neuron=neuron).double())
    warm_batchnorm(m, [torch.randn(8, 3, 32, 32, dtype=torch.float64) for _ in range(3)])
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    assert_late_neurons_fire(m, x)
    with torch.no_grad():
        full = m(x)
        alone = torch.cat([m(x[i : i + 1]) for i in range(6)])
        others = m(torch.cat([x[:1], torch.randn(9, 3, 32, 32, dtype=torch.float64)]))[:1]
    torch.testing.assert_close(alone, full, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(others, full[:1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("neuron", SPIKING)
def test_state_is_reset_between_forwards(neuron):
    torch.manual_seed(0)
    m = amplify_qkv(create_model("s2tdpt_tiny", neuron=neuron))
    warm_batchnorm(m, [torch.randn(8, 3, 32, 32) for _ in range(3)])
    x, other = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32) * 3
    for inputs in (x, other):  # both forwards leave membrane potentials behind that a stateful bug would carry
        assert_late_neurons_fire(m, inputs)
    with torch.no_grad():
        first = m(x)
        m(other)
        assert torch.equal(m(x), first)


@pytest.mark.parametrize("neuron", SPIKING)
def test_qkv_and_attention_neurons_emit_binary_spikes(neuron):
    # At initialisation (BN-normalised inputs) the neurons fire at a few percent; the attention neuron, whose
    # input s·A·V is small, at ~0.1–1 %. Wider models give it enough events to check both values occur. The
    # mechanisms' Q/K/V and attention neurons stay binary whatever the backbone neuron emits (integer counts too).
    torch.manual_seed(0)
    m = create_model("s2tdpt_2_128", neuron=neuron)
    seen = {}
    attn = m.blocks[0].attn
    for name in ("qkv_lif", "attn_lif", "in_lif"):
        getattr(attn, name).register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, o))
    m(torch.randn(4, 3, 32, 32))
    for name in ("qkv_lif", "attn_lif"):
        assert set(seen[name].unique().tolist()) <= {0.0, 1.0}, name
        assert 0 < seen[name].mean() < 1, f"{name} fires never or always"
    values = set(seen["in_lif"].unique().tolist())  # the backbone neuron: its own alphabet
    if s2tdpt.snn.neuron_emits(neuron) == "counts":
        assert values <= set(map(float, range(attn.in_lif.max_count + 1))) and max(values) > 1, values
    else:
        assert values == {0.0, 1.0}, values


def test_frames_that_repeat_an_image_give_the_image_logits():
    # event encoding with every frame equal to the image is direct encoding: the same stem output at every step
    # (eval mode; the stem BN's statistics are the running ones in both)
    torch.manual_seed(0)
    m = amplify_qkv(create_model("s2tdpt_tiny", depth=2).double())
    warm_batchnorm(m, [torch.randn(8, 3, 32, 32, dtype=torch.float64) for _ in range(3)])
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    assert_late_neurons_fire(m, x)
    frames = x.unsqueeze(0).expand(m.config.timesteps, *x.shape)
    with torch.no_grad():
        torch.testing.assert_close(m(frames), m(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("neuron", SPIKING)
def test_frame_logits_do_not_depend_on_the_rest_of_the_batch_or_frame_order_elsewhere(neuron):
    # frames [T, B, C, H, W]: batch is dim 1. A model that folded T and B the wrong way round (or read dim 0 as
    # the batch) would mix samples here; one that ignored later frames would not see a changed last frame.
    torch.manual_seed(0)
    m = amplify_qkv(create_model("s2tdpt_tiny", depth=2, neuron=neuron).double())
    t = m.config.timesteps
    warm_batchnorm(m, [torch.rand(t, 8, 3, 32, 32, dtype=torch.float64) * 3 for _ in range(3)])
    x = torch.rand(t, 5, 3, 32, 32, dtype=torch.float64) * 3
    assert_late_neurons_fire(m, x)
    with torch.no_grad():
        full = m(x)
        alone = torch.cat([m(x[:, i : i + 1]) for i in range(5)])
        changed = x.clone()
        changed[-1] = torch.rand(5, 3, 32, 32, dtype=torch.float64) * 3
        later = m(changed)
    torch.testing.assert_close(alone, full, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(later, full)  # the last frame counts


def test_wrong_input_shape_is_a_clear_error():
    m = create_model("s2tdpt_tiny")
    with pytest.raises(ValueError, match=r"runs T = 2 time steps but got 3 frames.*timesteps=3"):
        m(torch.randn(3, 2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expects images \[B, 3, 32, 32\] or frames \[T=2, B, 3, 32, 32\]"):
        m(torch.randn(2, 2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"expects images \[B, 3, 32, 32\].*got \(2, 1, 32, 32\)"):
        m(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(2, 3, 28, 28\)"):
        m(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got \(3, 32, 32\)"):
        m(torch.randn(3, 32, 32))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['depht'\]"):
        create_model("s2tdpt_tiny", depht=3)
    with pytest.raises(ValueError, match="'num_heads'"):
        create_model("s2tdpt_tiny", num_heads=3)
    with pytest.raises(ValueError, match="'img_size'"):
        create_model("s2tdpt_tiny", img_size=30)
    with pytest.raises(ValueError, match="'attention'"):
        create_model("s2tdpt_tiny", attention="magic")
    with pytest.raises(ValueError, match=r"'attn_kwargs'.*\['tmax'\]"):
        create_model("s2tdpt_tiny", attn_kwargs={"tmax": 3.0})
    with pytest.raises(ValueError, match="'lif_charge'"):
        create_model("s2tdpt_tiny", lif_charge="leaky")
    with pytest.raises(ValueError, match="impl"):
        create_model("s2tdpt_tiny", attn_kwargs={"impl": "sparse"})


def test_config_round_trips_through_a_dict():
    m = create_model("s2tdpt_tiny", num_classes=5, attn_kwargs={"impl": "dense"})
    cfg = s2tdpt.S2TDPTConfig.from_dict(m.config.to_dict())
    assert cfg == m.config
    with pytest.raises(ValueError, match="unknown model config key"):
        s2tdpt.S2TDPTConfig.from_dict({**m.config.to_dict(), "extra": 1})


def test_layernorm_switch_adds_two_d_parameters_per_block():
    base = _count(create_model("s2tdpt_tiny", depth=2))
    assert _count(create_model("s2tdpt_tiny", depth=2, mlp_layernorm=True)) == base + 2 * 2 * 32
