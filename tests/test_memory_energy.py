"""Memory-aware energy (docs/energy.md): each rule against numbers worked out by hand in the test, totals equal the
sum of their layers, the break-even rate plugs back to equal energies, and the CLI reports both estimates."""

import json

import pytest
import torch
from firing import warm_batchnorm
from torch import nn

import s2tdpt
from s2tdpt.analysis.energy import estimate_energy
from s2tdpt.analysis.firing import FiringRateMonitor, measure_rates
from s2tdpt.analysis.memory_energy import (
    PARTS,
    MemoryCosts,
    break_even,
    dense_layer,
    memory_aware_energy,
    neuron_layer,
    qnn_bits,
    qnn_energy,
    synaptic_layer,
)
from s2tdpt.attention import create_attention
from s2tdpt.cli import main
from s2tdpt.snn import LIFNode, NeuronSpec, list_neurons, register_neuron
from s2tdpt.snn.registry import neuron_emits

# Round constants, so every expected value below is hand arithmetic: an access to a memory of B bytes costs
# 5 + 0.01·B pJ, an add 1 pJ, a multiply 10 pJ; weights 8 bits, state 16, events 32 bits in a 64-entry queue.
COSTS = MemoryCosts(e_add_pj=1.0, e_mul_pj=10.0, sram_base_pj=5.0, sram_pj_per_byte=0.01, weight_bits=8,
                    state_bits=16, activation_bits=8, event_bits=32, fifo_words=64)  # fmt: skip


def approx(x):
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def test_sram_line_is_the_least_squares_fit_of_horowitz():
    # (bytes, pJ): 8 KB → 10, 32 KB → 20, 1 MB → 100. Means 363178.67 B and 43.333 pJ; slope Sxy/Sxx by hand:
    sxy = (8192 - 363178.6667) * (10 - 43.3333) + (32768 - 363178.6667) * (20 - 43.3333) + (
        1048576 - 363178.6667) * (100 - 43.3333)  # fmt: skip
    sxx = (8192 - 363178.6667) ** 2 + (32768 - 363178.6667) ** 2 + (1048576 - 363178.6667) ** 2
    slope = sxy / sxx
    c = MemoryCosts()
    assert c.sram_pj_per_byte == pytest.approx(slope, rel=1e-4) == pytest.approx(8.2816e-5, rel=1e-4)
    assert c.sram_base_pj == pytest.approx(43.3333 - slope * 363178.6667, rel=1e-4)
    assert c.sram_base_pj == pytest.approx(13.256, abs=1e-3)
    assert c.sram_pj(1024, 64) == pytest.approx(13.256 + 8.2816e-5 * 8192, rel=1e-4)  # 8 KB of 64-bit words


class _Folded(nn.Module):
    """A conv on time-major input folded to [T·B, ...], as the model runs its convs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x.flatten(0, 1).clone())


def _conv_stats(rate: float):
    """Monitor a 2→3 channel 3×3 conv (padding 1) on 4×4 maps, T = 2, batch 5, fed binary inputs of a known rate."""
    x = torch.zeros(2, 5, 2, 4, 4)  # [T, B, C, H, W]
    x.view(-1)[: int(rate * x.numel())] = 1.0
    model = _Folded()
    mon = FiringRateMonitor(model, timesteps=2, time_major_input=True)
    with mon, torch.no_grad():
        model(x)
    return mon.layers["conv"]


def test_the_monitor_records_the_shapes_a_layer_is_priced_by():
    st = _conv_stats(0.25)
    assert (st.in_elems, st.out_elems, st.weights, st.bias_words, st.conv) == (32, 48, 54, 3, True)
    assert st.flops == 4 * 4 * 9 * 2 * 3 == 864 and st.rate == approx(0.25)
    lin = nn.Linear(4, 3)
    mon = FiringRateMonitor(lin, timesteps=1)
    with mon, torch.no_grad():
        lin(torch.ones(2, 5, 4))  # [B, N, D]: 2 images of 5 tokens
    st = mon.layers[""]
    assert (st.in_elems, st.out_elems, st.weights, st.bias_words, st.conv, st.flops) == (20, 15, 12, 3, False, 60)


def test_a_spike_driven_layer_by_hand():
    st = _conv_stats(0.25)
    t, r = 2, 0.25
    sop = r * t * 864  # 432 synaptic events
    line = synaptic_layer("conv", st, sop, r, t, COSTS)
    assert line.parts == approx(dict(
        arithmetic=1.0 * (432 + 2 * 48),  # an add per event, a bias add per output and step
        weights=432 * (5 + 0.01 * 54),  # 54 one-byte weights
        potentials=2 * 432 * (5 + 0.01 * 96),  # 48 potentials of 2 bytes, read and written back
        bias=2 * 48 * (5 + 0.01 * 3),
        io=0.25 * 2 * 32 * (5 + 0.01 * 256),  # input events read from a queue of 64 × 4 bytes
    ))  # fmt: skip
    assert line.pj == approx(528 + 2393.28 + 5149.44 + 482.88 + 120.96)


def test_dense_layers_by_hand():
    conv = _conv_stats(0.25)
    line = dense_layer("conv", conv, 2, 8, 16, COSTS)
    macs = 2 * 864
    assert line.parts == approx(dict(
        arithmetic=10 * macs + 1 * (macs + 2 * 48),
        weights=macs * (5 + 0.01 * 54),
        bias=2 * 48 * (5 + 0.01 * 3),
        io=macs * (5 + 0.01 * 32) + 2 * 48 * (5 + 0.01 * 96),  # conv: an input read per MAC (Lemaire Eq. 3)
    ))  # fmt: skip
    lin = nn.Linear(4, 3)
    mon = FiringRateMonitor(lin, timesteps=1)
    with mon, torch.no_grad():
        lin(torch.ones(1, 5, 4))
    line = dense_layer("fc", mon.layers[""], 1, 3, 3, COSTS)
    assert line.parts == approx(dict(
        arithmetic=10 * 60 + 1 * (60 + 15),
        weights=60 * (5 + 0.01 * 12),
        bias=15 * (5 + 0.01 * 3),
        io=20 * (5 + 0.01 * 20 * 3 / 8) + 15 * (5 + 0.01 * 15 * 3 / 8),  # linear: each input read once (Eq. 4)
    ))  # fmt: skip


def test_a_neuron_layer_by_hand_from_its_declared_update():
    lif = LIFNode()
    mon = FiringRateMonitor(nn.Sequential(lif), timesteps=3, time_major_input=True)
    x = torch.zeros(3, 2, 10)
    x[0, :, :4] = 5.0  # 4 of 10 neurons fire at t = 0, nothing after: rate 8 / 60
    with mon, torch.no_grad():
        mon.model(x)
    ns = mon.neurons["0"]
    assert (ns.neurons, ns.steps, ns.ops) == (10, 3, lif.update_ops())
    assert ns.out.rate == approx(8 / 60)
    # LIF (decay_input, V_reset = 0): V + (x − V)·(1/τ) is 1 mul + 2 adds, the threshold compare 1 add
    assert (lif.update_ops().mul, lif.update_ops().add, lif.update_ops().state) == (1, 3, 1)
    line = neuron_layer("lif", ns, 3, ns.out.rate, COSTS)
    assert line.parts == approx(dict(
        arithmetic=3 * 10 * (10 * 1 + 1 * 3),
        potentials=2 * 3 * 10 * (5 + 0.01 * 20),  # 10 states of 2 bytes, read and written each step
        io=(8 / 60) * 3 * 10 * (5 + 0.01 * 256),  # one queue write per spike
    ))  # fmt: skip


def test_integer_counts_are_k_events_each():
    from s2tdpt.snn.ilif import IntegerLIFNode

    ilif = IntegerLIFNode(max_count=4)
    mon = FiringRateMonitor(nn.Sequential(ilif), timesteps=2, time_major_input=True)
    x = torch.zeros(2, 1, 4)
    x[0, 0, 0], x[0, 0, 1] = 6.0, 2.0  # H = x/τ = 3 and 1: counts 3 and 1 at t = 0; nothing at t = 1
    with mon, torch.no_grad():
        mon.model(x)
    ns = mon.neurons["0"]
    assert ns.emits == "counts" and ns.out.mean_abs == approx(4 / 8)
    line = neuron_layer("ilif", ns, 2, ns.out.mean_abs, COSTS)
    assert line.parts["io"] == approx(4 * (5 + 0.01 * 256))  # four spikes on the wire, one queue write each
    assert line.parts["arithmetic"] == approx(2 * 4 * (10 * 3 + 1 * 6))  # ILIF: 3 mul, 6 add per neuron and step


def test_every_registered_neuron_declares_its_update():
    for name in list_neurons():
        ops = s2tdpt.snn.create_neuron(name).update_ops()
        assert min(ops.mul, ops.add, ops.state) >= 0 and ops.add >= 1  # each at least compares
        assert (ops.state == 0) == (neuron_emits(name) == "real")  # only the ANN's ReLU keeps no state

    class Silent(nn.Module):
        emits = "spikes"

    with pytest.raises(ValueError, match="must define update_ops"):
        register_neuron("silent_no_cost")(Silent)


def test_stdp_memory_work_by_hand():
    # N = 16 tokens (4 × 4), D = 32, H = 2 (D_H = 16), T = 4; rates q 0.2, k 0.1, v 0.15
    stdp = create_attention("stdp", 32, 2, neuron=NeuronSpec(), grid=(4, 4))
    work, info = stdp.memory_work(4, dict(q=0.2, k=0.1, v=0.15))
    got = {w.label: w for w in work}
    counts = got["spike counts r_Q, r_K"]
    assert (counts.add, counts.reads, counts.writes) == approx((614.4, 2 * 614.4, 614.4))  # 4 · 0.3 · 16 · 32 events
    assert (counts.words, counts.word) == (2 * 2 * 16, 5)  # counts 0..16 need 5 bits
    buckets = got["buckets S (V by key count)"]
    assert (buckets.add, buckets.words) == approx((4 * 0.15 * 16 * 32, 2 * 17 * 16))
    product = got["R = h·S"]
    macs = 4 * 2 * 17 * 17 * 16  # (D_H+1)² · D_H per timestep and head
    assert (product.mul, product.add, product.reads, product.writes) == approx((macs, macs, macs, 4 * 2 * 17 * 16))
    table = got["table h, read by h·S"]
    assert (table.reads, table.words, table.word) == (macs, 2 * 17 * 17, "weight")  # stored like weights
    gather = got["gather R[r_Q(i)]"]
    assert (gather.reads, gather.writes) == approx((4 * (16 * 32 + 2 * 16), 4 * 16 * 32))
    dense = {w.label: w for w in info["dense_a"]}
    assert dense["table h, looked up for A"].reads == dense["A written"].writes == 4 * 2 * 16 * 16
    assert dense["A·V"].add == approx(4 * 0.15 * 16 * 16 * 32) and dense["A·V"].words == 2 * 16 * 16


@pytest.fixture(scope="module")
def firing_tiny():
    torch.manual_seed(0)
    model = s2tdpt.create_model("s2tdpt_tiny")
    x = torch.randn(8, 3, 32, 32)
    warm_batchnorm(model, [x])
    mon = measure_rates(model, [(x,)])
    late = [ns.out.rate for name, ns in mon.neurons.items() if name.startswith(f"blocks.{model.config.depth - 1}.")]
    assert late and all(r > 0 for r in late)  # the last block's neurons fire
    return model, mon


def _hand_total_pj(model, mon, c: MemoryCosts) -> float:
    """The whole model's memory-aware energy, every rule written out here from docs/energy.md (Eq. 29's layer
    classification decides which rule a conv / linear gets)."""
    t = model.config.timesteps

    def sram(words, bits):
        return c.sram_base_pj + c.sram_pj_per_byte * words * bits / 8

    total = 0.0
    for op in estimate_energy(model, mon).lines:
        st = mon.layers.get(op.layer)
        if st is None:
            continue
        out = st.out_elems
        if op.kind == "AC":  # events in, an add + weight read + potential read and write each
            sop = op.rate * t * st.flops
            total += (c.e_add_pj * (sop + t * out) + sop * sram(st.weights, 8) + 2 * sop * sram(out, 16)
                      + t * out * sram(st.bias_words, 8) + op.rate * t * st.in_elems * sram(64, 32))  # fmt: skip
        else:
            s = round(op.ops / st.flops)
            reads = s * st.flops if st.conv else s * st.in_elems
            total += (c.e_mul_pj * s * st.flops + c.e_add_pj * (s * st.flops + s * out) + s * st.flops
                      * sram(st.weights, 8) + s * out * sram(st.bias_words, 8) + reads * sram(st.in_elems, 8)
                      + s * out * sram(out, 16))  # fmt: skip
    for ns in mon.neurons.values():
        ops, n = ns.ops, ns.neurons
        total += t * n * (c.e_mul_pj * ops.mul + c.e_add_pj * ops.add) + 2 * t * n * ops.state * sram(n, 16)
        spikes = ns.out.mean_abs if ns.emits == "counts" else ns.out.rate  # a count k: k spikes
        total += spikes * t * n * sram(64, 32)
    for name, branches in mon.attention.items():
        work, _ = model.get_submodule(name).memory_work(t, {b: s.rate for b, s in branches.items()})
        for w in work:
            bits = {"state": 16, "weight": 8}.get(w.word, w.word)
            total += c.e_add_pj * w.add + c.e_mul_pj * w.mul + (w.reads + w.writes) * sram(w.words, bits)
    return total


@pytest.mark.parametrize("neuron", ["lif", "ilif"])
def test_the_total_is_the_sum_of_every_layer_by_hand(firing_tiny, neuron):
    model, mon = firing_tiny
    if neuron != "lif":  # integer counts: a count k is k events everywhere
        torch.manual_seed(0)
        model = s2tdpt.create_model("s2tdpt_tiny", neuron=neuron)
        x = torch.randn(8, 3, 32, 32)
        warm_batchnorm(model, [x])
        mon = measure_rates(model, [(x,)])
        assert any(ns.out.mean_abs > ns.out.rate for ns in mon.neurons.values())  # some counts exceed 1
    rep = memory_aware_energy(model, mon, COSTS)
    assert rep.pj == pytest.approx(_hand_total_pj(model, mon, COSTS), rel=1e-9)
    assert sum(rep.parts_mj().values()) == approx(rep.mj)
    assert all(rep.parts_mj()[p] > 0 for p in PARTS)
    kinds = {x.layer: x.kind for x in rep.lines}
    assert sum(k == "neuron" for k in kinds.values()) == len(mon.neurons) > 0
    assert kinds["patch_embed.stem_conv"] == "dense" and kinds["blocks.0.mlp.fc1"] == "synapses"
    out = rep.to_dict()
    assert out["mj"] == approx(sum(x["uj"] for x in out["layers"]) * 1e-3)


def test_the_break_even_rate_makes_the_two_estimates_equal(firing_tiny):
    model, mon = firing_tiny
    measured = memory_aware_energy(model, mon, COSTS)
    even = break_even(model, mon, COSTS, measured)
    r = even["break_even_rate"]
    assert 0 < r < 1
    at_r = memory_aware_energy(model, mon, COSTS, assume_rate=r).mj
    assert at_r == pytest.approx(qnn_energy(model, mon, COSTS).mj, rel=1e-9) == pytest.approx(even["qnn_mj"])
    # affine in the rate, so the measured rates amount to one uniform rate with the same energy
    e0, e1 = even["snn_mj_at_rate_0"], even["snn_mj_per_unit_rate"]
    assert memory_aware_energy(model, mon, COSTS, assume_rate=0.3).mj == pytest.approx(e0 + 0.3 * e1, rel=1e-9)
    # the measured rates amount to one uniform rate: a weighted mean of them, so it lies within their range
    rates = [s.rate for s in mon.layers.values() if s.spikes and s.time_major and not s.image_input]
    rates += [ns.out.rate for ns in mon.neurons.values()] + [s.rate for b in mon.attention.values() for s in b.values()]
    assert min(rates) < even["effective_rate"] < max(rates)
    # the assumed rate reaches every spike: at rate 0 no layer reads an input event and no neuron writes a spike
    silent = memory_aware_energy(model, mon, COSTS, assume_rate=0.0)
    assert all(x.parts["io"] == 0 for x in silent.lines if x.kind in ("synapses", "neuron"))
    assert 0 < even["mean_spike_rate"] < 1


def test_the_quantised_ann_by_hand_on_a_block():
    assert [qnn_bits(t) for t in (1, 2, 3, 4, 5, 7, 8)] == [1, 2, 2, 3, 3, 3, 4]
    torch.manual_seed(0)
    model = s2tdpt.create_model("s2tdpt_tiny")
    mon = measure_rates(model, [(torch.randn(1, 3, 32, 32),)])
    rep = qnn_energy(model, mon, COSTS)
    st = mon.layers["blocks.0.mlp.fc1"]
    fc1 = next(x for x in rep.lines if x.layer == "blocks.0.mlp.fc1")
    bits = qnn_bits(model.config.timesteps)
    macs, out = st.flops, st.out_elems  # one pass
    assert fc1.pj == approx(10 * macs + (macs + out) + macs * (5 + 0.01 * st.weights) + out * (5 + 0.01 * st.bias_words)
                            + st.in_elems * (5 + 0.01 * st.in_elems * bits / 8)
                            + out * (5 + 0.01 * out * bits / 8))  # fmt: skip
    attn = [x for x in rep.lines if x.layer.startswith("blocks.0.attn ")]
    n, d, h = model.config.num_tokens, model.config.embed_dim, model.config.num_heads
    words = 5 + 0.01 * h * n * n * 2  # the H·N² map of 16-bit words
    qk = n * n * d
    assert sum(x.pj for x in attn) == approx(2 * (11 * qk + 2 * qk * words) + (h * n * n + n * d) * words)


def test_energy_cli_reports_both_estimates(capsys):
    args = ["energy", "--model", "s2tdpt_tiny", "--assume-rate", "0.2", "--mem-cost", "weight_bits=4"]
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["memory_aware_mj"] > r["energy_mj"] > 0
    assert r["memory_aware"]["costs"]["weight_bits"] == 4
    assert sum(r["memory_aware"]["parts_mj"].values()) == pytest.approx(r["memory_aware_mj"])
    assert 0 < r["break_even_rate"] < 1 and r["break_even"]["qnn_activation_bits"] == 2  # T = 2
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "memory µJ" in table and "memory-aware total" in table and "break-even spike rate" in table
    assert main(["energy", "--model", "ann_4_384", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["break_even_rate"] is None and r["memory_aware_mj"] > r["energy_mj"]


@pytest.mark.parametrize("bad, message", [
    ("weight_bit=4", r"KEY=VALUE with KEY one of \[.*'weight_bits'"),
    ("weight_bits=four", "weight_bits needs a number, got 'four'"),
    ("e_add_pj=-1", "e_add_pj must be a finite number >= 0"),
])  # fmt: skip
def test_a_bad_memory_cost_is_a_clear_error(bad, message, capsys):
    assert main(["energy", "--model", "s2tdpt_tiny", "--assume-rate", "0.2", "--mem-cost", bad]) != 0
    assert __import__("re").search(message, capsys.readouterr().err)


def test_a_model_whose_energy_does_not_grow_with_the_rate_has_no_break_even(firing_tiny, capsys):
    model, mon = firing_tiny
    flat = MemoryCosts(e_add_pj=0.0, sram_base_pj=0.0, sram_pj_per_byte=0.0)  # only multiplies cost anything
    even = break_even(model, mon, flat)
    assert even["break_even_rate"] is None and "does not grow with the spike rate" in even["reason"]
    args = ["energy", "--model", "s2tdpt_tiny", "--assume-rate", "0.2"]
    assert main([*args, *sum((["--mem-cost", kv] for kv in ("e_add_pj=0", "sram_base_pj=0", "sram_pj_per_byte=0")),
                             [])]) == 0  # fmt: skip
    assert "break-even spike rate: none (the model's energy does not grow" in capsys.readouterr().out


def test_eq29_is_unchanged_beside_it(firing_tiny):
    model, mon = firing_tiny
    before = estimate_energy(model, mon).energy_mj
    memory_aware_energy(model, mon)
    assert estimate_energy(model, mon).energy_mj == before
