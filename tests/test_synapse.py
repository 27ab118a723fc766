"""Memristive synapses for the STDP attention (specs/synapses.md): references written out here from the spec."""

import math
import shutil

import pytest
import torch

from s2tdpt.attention import create_attention, stdp_attention, stdp_attention_dense
from s2tdpt.attention.synapse import PRESETS, Crossbar, SynapseModel, programmed, resolve_synapse
from s2tdpt.snn import NeuronSpec

GRID = (8, 8)  # with fewer tokens s·A·V stays below the attention threshold


def _pulse_reference(target: float, w0: float, levels: int, beta_up: float, beta_down: float, scale: float = 1.0):
    """Spec §1 by iteration: rest on the nearest level, n = round(|target − rest|/δ) pulses, one step at a time."""
    delta = 1.0 / (levels - 1)
    rest = math.floor(w0 * (levels - 1) + 0.5) / (levels - 1)  # nearest level, ties up
    n = round(abs(target - rest) / delta)
    w, step = rest, delta * scale
    for _ in range(n):
        if target > rest:
            w = w + step * ((1 - beta_up) + beta_up * (1 - w) / (1 - rest))
        else:
            w = w - step * ((1 - beta_down) + beta_down * w / rest)
    return min(max(w, 0.0), 1.0), n


@pytest.mark.parametrize(
    "levels,beta_up,beta_down,w0",
    [(5, 0.0, 0.0, 0.5), (16, 0.0, 0.0, 0.5), (22, 1.0, 1.0, 0.5), (33, 0.115, 0.509, 0.5), (9, 0.7, 0.2, 0.3)],
)
def test_programming_follows_the_pulse_recurrence(levels, beta_up, beta_down, w0):
    g = torch.Generator().manual_seed(levels)  # random targets: no exact ties between two levels
    targets = torch.cat([torch.tensor([0.0, 1.0]), torch.rand(40, generator=g)]).double()
    synapse = SynapseModel(levels=levels, nonlinearity_up=beta_up, nonlinearity_down=beta_down)
    got, pulses = programmed(targets, w0, synapse)
    for t, g, n in zip(targets.tolist(), got.tolist(), pulses.tolist(), strict=True):
        ref, ref_n = _pulse_reference(t, w0, levels, beta_up, beta_down)
        assert n == ref_n and g == pytest.approx(ref, abs=1e-12), (t, g, ref)
    if beta_up == beta_down == 0:  # a linear device is plain quantisation to the L levels
        grid = torch.arange(levels, dtype=torch.float64) / (levels - 1)
        nearest = grid[(targets[:, None] - grid).abs().argmin(1)]
        assert torch.allclose(got, nearest, atol=1e-12)


def test_device_to_device_steps_follow_the_recurrence():
    synapse = SynapseModel(levels=9, nonlinearity_up=0.5, nonlinearity_down=0.8)
    targets = torch.tensor([0.05, 0.3, 0.52, 0.8, 0.97], dtype=torch.float64)
    scale = torch.tensor([0.5, 1.7, 1.0, 2.5, 0.9], dtype=torch.float64)
    got, _ = programmed(targets, 0.5, synapse, scale)
    for t, s, g in zip(targets.tolist(), scale.tolist(), got.tolist(), strict=True):
        assert g == pytest.approx(_pulse_reference(t, 0.5, 9, 0.5, 0.8, s)[0], abs=1e-12)


def _spikes(shape, p, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) < p).double()


def _qkv(lead=(2, 3), n=12, d=8, seed=0):
    q, k = _spikes((*lead, n, d), 0.5, seed), _spikes((*lead, n, d), 0.4, seed + 1)
    v = _spikes((*lead, n, d), 0.3, seed + 2)
    return q, k, v


@pytest.mark.parametrize(
    "synapse", [{"levels": 4}, {"levels": 16, "nonlinearity_up": 0.3, "nonlinearity_down": 0.9}, "ecram"]
)
def test_levels_and_nonlinearity_keep_the_linear_form_exact(synapse):
    synapse = resolve_synapse(synapse)
    if synapse.per_position:
        synapse = SynapseModel(**{**synapse.options(), "d2d": 0.0, "stuck": 0.0, "write_noise": 0.0})
    else:
        synapse = SynapseModel(**{**synapse.options(), "write_noise": 0.0})
    q, k, v = _qkv()
    params = dict(a_stdp=torch.tensor([0.5, 0.4, 0.45], dtype=torch.float64, requires_grad=True), w_offset=0.5)
    outs, grads = [], []
    for fn in (stdp_attention, stdp_attention_dense):
        qq, kk, vv = (x.clone().requires_grad_() for x in (q, k, v))
        out = fn(qq, kk, vv, validate=False, synapse=synapse, t_max=4.0, tau_stdp=1.0, **params)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out))
        outs.append(out.detach())
        grads.append([qq.grad, kk.grad, vv.grad, params["a_stdp"].grad.clone()])
        params["a_stdp"].grad = None
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # independent reference: the paper's A, written out, each weight programmed by the pulse recurrence
    d_h = q.shape[-1]
    a_stdp = params["a_stdp"].detach()[:, None, None]
    dt = 4.0 * (k.sum(-1)[..., None, :] - q.sum(-1)[..., :, None]) / d_h  # Δt_ij = T_max (r_K − r_Q)/D_H
    f = a_stdp * torch.exp(-dt.abs())
    ideal = torch.where(dt < 0, f, -f) + 0.5
    ref = ideal.clone()
    for idx in range(ref.numel()):
        ref.view(-1)[idx] = _pulse_reference(
            ideal.view(-1)[idx].item(), 0.5, synapse.levels, synapse.nonlinearity_up, synapse.nonlinearity_down
        )[0]
    torch.testing.assert_close(outs[0], ref @ v, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(ref, ideal)  # the device changed the weights


def test_count_noise_sampler_matches_the_dense_noise_in_distribution():
    # one (q, k, v) repeated over M independent draws along a leading dim; the linear form's e_i against the
    # dense form's Σ_j ε_ij V_j and against the covariance written out from the spec
    torch.manual_seed(0)
    m, n, d = 6000, 6, 4
    q, k, v = _qkv(lead=(1,), n=n, d=d, seed=3)
    v = v + _spikes(v.shape, 0.5, 9)  # values 0..2, so that the covariances are not all alike
    q, k, v = (x.expand(m, n, d) for x in (q, k, v))
    synapse = SynapseModel(levels=5, write_noise=0.8)
    quiet = SynapseModel(levels=5)
    draws = {}
    for name, fn in (("linear", stdp_attention), ("dense", stdp_attention_dense)):
        draws[name] = fn(q, k, v, validate=False, synapse=synapse) - fn(q, k, v, validate=False, synapse=quiet)
    # the spec's covariance: C_i = Σ_j s_ij² V_j V_jᵀ, with s_ij = write_noise·δ·√max(n_ij, 1)
    r_q, r_k, v0 = q[0].sum(-1), k[0].sum(-1), v[0]
    dt = 4.0 * (r_k[None, :] - r_q[:, None]) / d
    f = 0.5 * torch.exp(-dt.abs())
    ideal = torch.where(dt < 0, f, -f) + 0.5
    delta = 1 / 4  # 5 levels; the rest 0.5 is one of them
    pulses = torch.round((ideal - 0.5).abs() / delta)
    s = 0.8 * delta * pulses.clamp(min=1).sqrt()
    cov = torch.einsum("ij,jd,je->ide", s**2, v0, v0)  # [N, D, D]
    for name, e in draws.items():
        assert e.abs().sum() > 0, name
        mean = e.mean(0)  # [N, D]
        se = (cov.diagonal(dim1=-2, dim2=-1) / m).sqrt()
        assert (mean.abs() <= 4.5 * se + 1e-12).all(), (name, mean, se)
        centred = e - mean
        emp = torch.einsum("mid,mie->ide", centred, centred) / (m - 1)
        # sd of a sample covariance: sqrt((σ_dd σ_ee + σ_de²)/M)
        var = cov.diagonal(dim1=-2, dim2=-1)
        bound = 4.5 * ((var[..., :, None] * var[..., None, :] + cov**2) / m).sqrt() + 1e-12
        assert ((emp - cov).abs() <= bound).all(), (name, (emp - cov).abs().max())
        cross = torch.einsum("md,me->de", centred[:, 0], centred[:, 1]) / (m - 1)  # tokens 0 and 1: independent
        cross_bound = 4.5 * (var[0][:, None] * var[1][None, :] / m).sqrt() + 1e-12
        assert (cross.abs() <= cross_bound).all(), name


def _mixer(synapse, seed=0, **kw):
    torch.manual_seed(seed)
    mixer = create_attention("stdp", 32, 2, neuron=NeuronSpec(), grid=GRID, synapse=synapse, **kw)
    with torch.no_grad():
        mixer.qkv_bn.weight.fill_(3.0)  # ~25 % firing on Q/K/V
    return mixer


def _membrane(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 2, GRID[0] * GRID[1], 32, generator=g) * 2.0


def _fires(mixer, u):
    """The attention neuron's output spikes for ``u`` (asserting that it fires)."""
    heads = mixer.project(u)
    spikes = mixer.mix(*heads)
    assert spikes.sum() > 0
    return spikes


def test_ideal_synapse_is_todays_attention_bit_for_bit():
    u = _membrane()
    base = _mixer(None)
    with torch.no_grad():
        ref = base(u)
        assert _fires(base, u).sum() > 0
        q, k, v = base.project(u)
    # the paper's A·V written out (Eq. 17–22, defaults T_max 4, A_stdp 0.5, τ 1, w_offset 0.5), in float64
    qd, kd, vd = q.double(), k.double(), v.double()
    dt = 4.0 * (kd.sum(-1)[..., None, :] - qd.sum(-1)[..., :, None]) / q.shape[-1]
    f = 0.5 * torch.exp(-dt.abs())
    paper = ((torch.where(dt < 0, f, -f) + 0.5) @ vd).float()
    for spec in (None, "ideal", {}, {"preset": "ideal"}):
        m = _mixer(spec)
        assert m.crossbar is None
        with torch.no_grad():
            assert torch.equal(m(u), ref)
            m.fire = lambda x: x  # the mechanism's A·V itself, before scale and neuron
            torch.testing.assert_close(m.mix(q, k, v), paper, rtol=0, atol=1e-5)


def test_device_synapses_change_the_output():
    u = _membrane()
    with torch.no_grad():
        ref = _mixer(None)(u)
        for spec in ({"levels": 2}, "hfo2"):
            assert not torch.equal(_mixer(spec)(u), ref), spec


def test_write_noise_is_fresh_every_forward_and_devices_are_fixed():
    u = _membrane()
    noisy = _mixer({"levels": 8, "write_noise": 2.0})
    with torch.no_grad():
        assert not torch.equal(noisy.mix(*noisy.project(u)), noisy.mix(*noisy.project(u)))
    fixed = _mixer({"levels": 8, "d2d": 0.6, "stuck": 0.2, "stuck_at": "bounds"})
    with torch.no_grad():
        assert _fires(fixed, u).sum() > 0  # the attention neuron fires, so fixed devices show in the output
        a, b = fixed(u), fixed(u)
    assert torch.equal(a, b)
    stuck = fixed.crossbar.stuck
    assert stuck.shape == (2, 64, 64) and 0.15 < (stuck > 0).float().mean() < 0.25 and (stuck == 2).any()
    # stuck devices hold their bound whatever STDP asks for; working ones follow their programmed weight
    ideal = torch.rand(2, 64, 64)
    programmed_weights, _ = programmed(ideal, 0.5, fixed.synapse)
    weights, std = fixed.crossbar.hold_stuck(programmed_weights, torch.ones_like(ideal), 0.5)
    assert (weights[stuck == 1] == 0).all() and (weights[stuck == 2] == 1).all()
    assert torch.equal(weights[stuck == 0], programmed_weights[stuck == 0])
    assert (std[stuck > 0] == 0).all() and (std[stuck == 0] == 1).all()  # stuck devices are not written: no noise
    at_rest = Crossbar(2, 64, SynapseModel(levels=5, stuck=0.5, stuck_at="rest"))
    w, _ = at_rest.hold_stuck(ideal, torch.zeros_like(ideal), 0.5)
    assert (w[at_rest.stuck == 1] == 0.5).all() and not (at_rest.stuck == 2).any()


def test_crossbar_draws_travel_with_the_state_dict():
    u = _membrane()
    spec = {"levels": 8, "d2d": 0.6, "stuck": 0.2}
    trained = _mixer(spec, seed=0)
    other = _mixer(spec, seed=5)  # other draws
    with torch.no_grad():
        assert not torch.equal(trained(u), other(u))
        other.load_state_dict(trained.state_dict())
        assert torch.equal(trained(u), other(u))
    assert {"crossbar.step_scale", "crossbar.stuck"} <= set(trained.state_dict())
    # an ideal checkpoint keeps the device model's own draws; a device checkpoint loads into an ideal model
    fresh = _mixer(spec, seed=7)
    draws = fresh.crossbar.stuck.clone()
    fresh.load_state_dict(_mixer(None).state_dict())
    assert torch.equal(fresh.crossbar.stuck, draws)
    _mixer(None).load_state_dict(trained.state_dict())


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_runs(name):
    m = _mixer(name)
    u = _membrane().requires_grad_()
    out = m(u)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0


def test_presets_match_their_sources():
    # aihwkit (src/aihwkit/simulator/presets/devices.py): dw_min on a [-1, 1] range → round(2/dw_min) steps
    assert PRESETS["reram_om"].levels - 1 == round(2 / 0.0949)
    assert PRESETS["hfo2"].levels - 1 == round(2 / 0.4622)
    assert PRESETS["ecram"].levels - 1 == round(2.0 / 0.002)
    assert (PRESETS["ecram"].nonlinearity_up, PRESETS["ecram"].nonlinearity_down) == (0.1153, 0.5085)
    assert PRESETS["ideal"].is_ideal and all(not p.is_ideal for n, p in PRESETS.items() if n != "ideal")


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope", "unknown synapse 'nope'; presets: ideal, reram_om, hfo2, ecram"),
        ({"level": 4}, r"synapse option\(s\) \['level'\] do not exist; valid options"),
        ({"levels": 1}, "levels must be >= 2"),
        ({"levels": 4.5}, "whole number"),
        ({"nonlinearity_up": 0.5}, "need a step: give 'levels' too"),
        ({"levels": 4, "stuck": 1.5}, r"stuck must lie in \[0, 1\]"),
        ({"levels": 4, "stuck_at": "top"}, "stuck_at must be one of"),
        ({"write_noise": "lots"}, "write_noise must be a finite number"),
        ({"write_noise": None}, "write_noise must be a finite number"),
        ({"levels": 4, "stuck": float("nan")}, "stuck must be a finite number"),
        ({"levels": float("inf")}, "levels must be a finite number"),
        (3, "must be a preset name or a dict"),
    ],
)
def test_bad_synapse_options_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        _mixer(spec)


def test_linear_form_refuses_per_position_devices():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="linear form cannot represent"):
        stdp_attention(q, k, v, synapse={"levels": 4, "stuck": 0.1})
    with pytest.raises(ValueError, match="needs its crossbar"):
        stdp_attention_dense(q, k, v, synapse={"levels": 4, "stuck": 0.1})


def test_noise_without_levels_is_write_noise_itself():
    q, k, _ = _qkv(lead=(1,), n=3, d=2, seed=4)
    v = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]], dtype=torch.float64)  # every channel has spikes
    q, k, v = (x.expand(4000, 3, 2) for x in (q, k, v))
    e = stdp_attention_dense(q, k, v, synapse={"write_noise": 0.1}) - stdp_attention_dense(q, k, v)
    expected = 0.1 * v[0].pow(2).sum(0).sqrt()  # sd of Σ_j ε_ij V_jd with ε ~ N(0, 0.1²)
    assert (expected > 0).any()  # at least one channel is checked
    for d in range(2):
        if expected[d] > 0:
            assert e[:, 0, d].std().item() == pytest.approx(expected[d].item(), rel=0.1)
    assert math.isfinite(e.sum().item())


def test_cli_trains_evaluates_and_fine_tunes_on_synapses(tiny_run, image_folder, tmp_path, capsys):
    from conftest import tiny_args

    from s2tdpt.cli import main
    from s2tdpt.engine.checkpoint import load_checkpoint

    ideal = tmp_path / "ideal" / "last.pt"  # a copy: the shared run stays read-only
    ideal.parent.mkdir()
    shutil.copy(tiny_run.path / "last.pt", ideal)
    # eval of an ideal checkpoint on devices: the crossbar is drawn from --seed; the same seed gives the same result
    for seed, folder in ((0, "a"), (0, "b"), (1, "c")):
        args = ["eval", str(ideal), "--synapse", "{levels: 3, d2d: 0.5, stuck: 0.3}", "--seed", str(seed)]
        assert main([*args, "--out", str(tmp_path / folder)]) == 0
    reports = {f: json_of(tmp_path / f / "eval.json") for f in "abc"}
    assert reports["a"]["synapse"] == {"levels": 3, "d2d": 0.5, "stuck": 0.3} and reports["a"]["seed"] == 0
    assert reports["a"]["loss"] == reports["b"]["loss"] != reports["c"]["loss"]
    assert main(["eval", str(ideal), "--synapse", "hfo2"]) == 0
    assert len(list(ideal.parent.glob("eval-imagefolder-*-hfo2/eval.json"))) == 1
    assert main(["eval", str(ideal), "--synapse", "{levels: 1}"]) == 1
    err = capsys.readouterr().err
    assert "--synapse: config key 'synapse' is not a synapse model: synapse levels must be >= 2" in err

    # hardware-aware fine-tuning: a new run from the ideal weights, on the device model, saved in its config
    out = tmp_path / "ft"
    assert main([*tiny_args(image_folder, out, "--synapse", "hfo2", "--init", str(ideal)), "--epochs", "1"]) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["model_config"]["attn_kwargs"]["synapse"] == "hfo2"
    assert ckpt["train_config"]["synapse"] == "hfo2"
    assert {k for k in ckpt["model"] if "crossbar" in k}  # the device draws travel with the checkpoint
    assert main(["eval", str(out / "last.pt"), "--out", str(tmp_path / "ft-eval")]) == 0

    # errors before any run folder: a mechanism without synapses, a model of other shapes for --init
    bad = tmp_path / "bad"
    assert main([*tiny_args(image_folder, bad, "--attention", "ssa", "--synapse", "hfo2")]) == 1
    assert "does not have; use it with attention 'random_frozen' or 'stdp'" in capsys.readouterr().err
    assert main([*tiny_args(image_folder, bad, "--init", str(ideal), "--model-kwargs", "{embed_dim: 64}")]) == 1
    assert "--init" in capsys.readouterr().err and not bad.exists()


def json_of(path):
    import json

    return json.loads(path.read_text())


def test_write_noise_takes_the_form_that_draws_fewer_numbers():
    m = _mixer({"levels": 8, "write_noise": 0.5})
    assert m._noise_cheaper_dense(64, 32)  # N² = 4,096 draws per head vs (D_H+1)·D_H² = 33,792
    assert not m._noise_cheaper_dense(4096, 32)
    assert not _mixer({"levels": 8})._noise_cheaper_dense(64, 32)  # no noise: the exact linear form stays


def test_resting_level_is_the_same_for_fixed_and_learnable_parameters():
    from s2tdpt.attention.synapse import resting_weight

    for levels in (6, 8, 16):  # w0 = 0.5 is a tie between two levels: it goes up, whatever the type
        synapse = SynapseModel(levels=levels)
        fixed = resting_weight(0.5, synapse)
        assert fixed == math.floor(0.5 * (levels - 1) + 0.5) / (levels - 1)
        for dtype in (torch.float32, torch.float64):
            assert resting_weight(torch.tensor([0.5], dtype=dtype), synapse).item() == pytest.approx(fixed, abs=1e-7)


def test_crossbar_drawn_for_other_options_is_not_reused():
    trained = _mixer({"levels": 8, "d2d": 0.6, "stuck": 0.2}, seed=0)
    asked = _mixer({"levels": 8, "d2d": 0.05, "stuck": 0.01, "stuck_at": "rest"}, seed=3)
    own = asked.crossbar.stuck.clone(), asked.crossbar.step_scale.clone()
    asked.load_state_dict(trained.state_dict())
    assert torch.equal(asked.crossbar.stuck, own[0]) and torch.equal(asked.crossbar.step_scale, own[1])
    same = _mixer({"levels": 8, "d2d": 0.6, "stuck": 0.2}, seed=3)
    same.load_state_dict(trained.state_dict())
    assert torch.equal(same.crossbar.stuck, trained.crossbar.stuck)


def test_attention_neuron_stays_the_last_submodule():
    # parameters keep the order of checkpoints (and optimiser states) written before SpikingAttention existed
    from s2tdpt.attention import list_attentions

    for name in list_attentions():
        kw = {"learnable": True} if name == "stdp" else {}
        m = create_attention(name, 32, 2, neuron=NeuronSpec("plif"), grid=(4, 4), **kw)
        if "attn_lif" in m._modules:
            assert list(m._modules)[-1] == "attn_lif", name
