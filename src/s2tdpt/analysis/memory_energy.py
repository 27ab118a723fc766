"""Memory-aware energy per image — arithmetic and SRAM traffic — after Lemaire et al., "An Analytical Estimation of
Spiking Neural Networks Energy Efficiency" (ICONIP 2022, arXiv 2210.13107); formulas in ``docs/energy.md``.

Eq. 29 (``energy.py``) counts arithmetic only. Here every layer also pays for the memory it touches, each access
priced by the size of the memory it hits (a line through Horowitz's 45 nm SRAM figures):

* spike-driven layer (Eq. 29's AC lines): per input event its fan-out of accumulates, each reading a weight and
  reading and writing back the target's potential; the input event read from a spike queue; a bias read and add
  per output and step (every conv / linear here is followed by a BatchNorm, which folds into such a bias);
* dense layer (Eq. 29's MAC lines: the image stem, the head, non-spike inputs, every layer of an ANN): a multiply
  and an add per MAC, a weight read per MAC, an input read per MAC (conv) or per input (linear), an output write
  and a bias read per output;
* neuron layer: what the neuron declares (``update_ops``, from its dynamics) per neuron and step, its state read
  and written back, and a spike-queue write per output spike;
* attention: what the mechanism declares (``memory_work``): its own arithmetic and working memory.

The equivalent quantised ANN (same architecture, activations of ⌈log2(T + 1)⌉ bits, one pass) gets the dense
rules everywhere and a real-valued Q·Kᵀ, A·V per block; the SNN's memory-aware energy is affine in a uniform
spike rate, so the rate at which the two are equal (``break_even``) has a closed form. These are estimates of a
model of a chip, not measurements of one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from ..attention.softmax import dense_attention_work
from ..snn.registry import create_neuron, neuron_emits
from .energy import estimate_energy
from .firing import FiringRateMonitor, branch_rates

#: Horowitz (ISSCC 2014), 45 nm: energy of a 64-bit SRAM read by memory size — (bytes, pJ)
SRAM_POINTS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))


def sram_line(points: tuple[tuple[float, float], ...] = SRAM_POINTS) -> tuple[float, float]:
    """Least-squares line ``pJ = base + slope · bytes`` through ``points`` (Lemaire et al.'s fit of Horowitz)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


_BASE, _SLOPE = sram_line()


@dataclass(frozen=True)
class MemoryCosts:
    """Constants of the memory-aware model; every one can be overridden (``s2tdpt energy --mem-cost KEY=VALUE``).

    Arithmetic: 45 nm, 32-bit integer add 0.1 pJ and multiply 3.1 pJ (Horowitz 2014; Lemaire et al.'s defaults).
    SRAM: ``sram_base_pj + sram_pj_per_byte · size`` per access of one word, the least-squares line through
    Horowitz's 10 / 20 / 100 pJ at 8 KB / 32 KB / 1 MB. Widths: weights, state (potentials, partial sums),
    real-valued activations (the image, an ANN's activations) and spike events (an address in a queue of
    ``fifo_words`` entries, as in Lemaire et al.'s hardware).
    """

    e_add_pj: float = 0.1
    e_mul_pj: float = 3.1
    sram_base_pj: float = _BASE
    sram_pj_per_byte: float = _SLOPE
    weight_bits: int = 8
    state_bits: int = 16
    activation_bits: int = 8
    event_bits: int = 32
    fifo_words: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"memory cost {f.name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def from_overrides(cls, pairs: list[str] | None) -> MemoryCosts:
        """``["weight_bits=4", "e_add_pj=0.03"]`` → costs; unknown keys and non-numbers raise ``ValueError``."""
        valid = {f.name: f.type for f in fields(cls)}
        given: dict[str, float] = {}
        for pair in pairs or []:
            key, sep, value = pair.partition("=")
            if not sep or key not in valid:
                raise ValueError(f"--mem-cost takes KEY=VALUE with KEY one of {sorted(valid)}; got {pair!r}")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"--mem-cost {key} needs a number, got {value!r}") from None
            given[key] = int(number) if valid[key] == "int" and number.is_integer() else number
        return cls(**given)

    def sram_pj(self, words: float, bits: float) -> float:
        """Energy of one access to a memory of ``words`` entries of ``bits`` bits."""
        return self.sram_base_pj + self.sram_pj_per_byte * words * bits / 8

    def bits(self, word: int | str) -> int:
        return {"state": self.state_bits, "weight": self.weight_bits}.get(word, word)  # type: ignore[arg-type]


PARTS = ("arithmetic", "weights", "bias", "potentials", "io", "attention")


@dataclass
class WorkLine:
    """One layer's memory-aware energy per image, by part (pJ); ``kind``: synapses, dense, neuron, attention."""

    layer: str
    kind: str
    parts: dict[str, float]

    @property
    def pj(self) -> float:
        return sum(self.parts.values())


# ----------------------------------------------------------------------------------------------------------------
# Rules (one layer each; ``st`` is the layer's RateStats, shapes per image and timestep)


def synaptic_layer(name: str, st, sop: float, rate: float, steps: int, c: MemoryCosts) -> WorkLine:
    """Spike-driven conv / linear: ``sop`` accumulates from ``rate·steps·in`` input events."""
    out = steps * st.out_elems
    return WorkLine(name, "synapses", dict(
        arithmetic=c.e_add_pj * (sop + out),  # accumulates, then the bias once per output and step
        weights=sop * c.sram_pj(st.weights, c.weight_bits),
        potentials=2 * sop * c.sram_pj(st.out_elems, c.state_bits),  # read and write back per accumulate
        bias=out * c.sram_pj(st.bias_words, c.weight_bits),
        io=rate * steps * st.in_elems * c.sram_pj(c.fifo_words, c.event_bits),  # input events read
    ))  # fmt: skip


def dense_layer(name: str, st, steps: int, in_bits: int, out_bits: int, c: MemoryCosts) -> WorkLine:
    """Conv / linear on real values, run ``steps`` times: MACs, and no reuse of weights across outputs."""
    macs, out = steps * st.flops, steps * st.out_elems
    input_reads = macs if st.conv else steps * st.in_elems  # Lemaire et al. Eq. 3 (conv) and Eq. 4 (linear)
    return WorkLine(name, "dense", dict(
        arithmetic=c.e_mul_pj * macs + c.e_add_pj * (macs + out),
        weights=macs * c.sram_pj(st.weights, c.weight_bits),
        bias=out * c.sram_pj(st.bias_words, c.weight_bits),
        io=input_reads * c.sram_pj(st.in_elems, in_bits) + out * c.sram_pj(st.out_elems, out_bits),
    ))  # fmt: skip


def neuron_layer(name: str, ns, steps: int, out_rate: float, c: MemoryCosts, ops=None) -> WorkLine:
    """``ns.neurons`` neurons updated ``steps`` times as declared; a queue write per output spike."""
    ops = ops or ns.ops
    updates = steps * ns.neurons
    spikes = out_rate * updates if ns.emits != "real" else 0.0  # a dense layer writes real activations itself
    return WorkLine(name, "neuron", dict(
        arithmetic=updates * (c.e_mul_pj * ops.mul + c.e_add_pj * ops.add),
        potentials=2 * updates * ops.state * c.sram_pj(ns.neurons, c.state_bits),
        io=spikes * c.sram_pj(c.fifo_words, c.event_bits),
    ))  # fmt: skip


def attention_lines(name: str, work, c: MemoryCosts) -> list[WorkLine]:
    """A mechanism's declared :class:`~s2tdpt.attention.base.AttentionWork`, priced."""
    return [
        WorkLine(
            f"{name} {w.label}",
            "attention",
            dict(
                arithmetic=c.e_add_pj * w.add + c.e_mul_pj * w.mul,
                attention=(w.reads + w.writes) * c.sram_pj(w.words, c.bits(w.word)),
            ),
        )  # fmt: skip
        for w in work
    ]


# ----------------------------------------------------------------------------------------------------------------
# Whole model


@dataclass
class MemoryReport:
    lines: list[WorkLine]
    costs: MemoryCosts
    extra: dict[str, Any]

    @property
    def pj(self) -> float:
        return sum(x.pj for x in self.lines)

    @property
    def mj(self) -> float:
        return self.pj * 1e-9

    def parts_mj(self) -> dict[str, float]:
        return {p: sum(x.parts.get(p, 0.0) for x in self.lines) * 1e-9 for p in PARTS}

    def to_dict(self) -> dict[str, Any]:
        layers = [{"layer": x.layer, "kind": x.kind, "uj": x.pj * 1e-6,
                   "parts_uj": {k: v * 1e-6 for k, v in x.parts.items()}} for x in self.lines]  # fmt: skip
        return dict(mj=self.mj, parts_mj=self.parts_mj(), costs=asdict(self.costs), layers=layers, **self.extra)


def memory_aware_energy(
    model: nn.Module,
    monitor: FiringRateMonitor,
    costs: MemoryCosts | None = None,
    *,
    assume_rate: float | None = None,
    first_conv_times_t: bool = True,
    strict: bool = True,
) -> MemoryReport:
    """Memory-aware energy per image of ``model`` from what ``monitor`` observed (rates, shapes, neurons).

    The layers are classified as in Eq. 29 (computed with the same settings): its AC lines are spike-driven, its
    MAC lines dense. ``assume_rate`` replaces every spike rate (inputs, neuron outputs, attention branches) by
    one value. Integer spike counts are k events for a count k, as in Eq. 29.
    """
    c = costs or MemoryCosts()
    t = model.config.timesteps
    eq29 = estimate_energy(
        model, monitor, first_conv_times_t=first_conv_times_t, strict=strict, assume_rate=assume_rate
    )
    # a dense layer's output feeds a membrane in an SNN, a real activation in an ANN
    out_bits = c.state_bits if neuron_emits(model.config.neuron) != "real" else c.activation_bits
    lines: list[WorkLine] = []
    for op in eq29.lines:
        st = monitor.layers.get(op.layer)
        if st is None:  # an attention line: the mechanism describes its own memory work below
            continue
        if op.kind == "AC":
            lines.append(synaptic_layer(op.layer, st, op.ops, op.rate, t, c))
        else:
            steps = round(op.ops / op.flops) if op.flops else 0
            lines.append(dense_layer(op.layer, st, steps, c.activation_bits, out_bits, c))
    for name, ns in monitor.neurons.items():
        measured = ns.out.mean_abs if ns.emits == "counts" else ns.out.rate  # a count k: k spikes on the wire
        lines.append(neuron_layer(name, ns, ns.steps, measured if assume_rate is None else assume_rate, c))
    extra: dict[str, Any] = {}
    for name in monitor.attention:
        work, info = model.get_submodule(name).memory_work(t, branch_rates(monitor, name, assume_rate))
        lines.extend(attention_lines(name, work, c))
        if "dense_a" in info:  # STDP: the paper's dense A in place of the linear form, for comparison
            dense = sum(x.pj for x in attention_lines(name, info["dense_a"], c))
            extra["stdp_dense_a_mj"] = extra.get("stdp_dense_a_mj", 0.0) + dense * 1e-9
            extra["stdp_linear_form_mj"] = (
                extra.get("stdp_linear_form_mj", 0.0) + sum(x.pj for x in attention_lines(name, work, c)) * 1e-9
            )
    return MemoryReport(_in_model_order(model, lines), c, extra)


def _in_model_order(model: nn.Module, lines: list[WorkLine]) -> list[WorkLine]:
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}

    def key(line: WorkLine) -> int:
        name = line.layer.split(" ")[0]
        return order.get(name, len(order))

    return sorted(lines, key=key)  # stable: a module's own lines keep their order


def qnn_bits(timesteps: int) -> int:
    """Activation bits of the ANN equivalent to a T-step rate-coded SNN: ⌈log2(T + 1)⌉ (Yan et al. 2024)."""
    return max(1, math.ceil(math.log2(timesteps + 1)))


def qnn_energy(model: nn.Module, monitor: FiringRateMonitor, costs: MemoryCosts | None = None) -> MemoryReport:
    """The same architecture as a quantised ANN: one pass, ⌈log2(T + 1)⌉-bit activations, every conv / linear
    dense (the image enters at ``activation_bits``), each neuron a ReLU-like quantiser, and a real-valued Q·Kᵀ,
    A·V per block whose mechanism mixes tokens."""
    c = costs or MemoryCosts()
    bits = qnn_bits(model.config.timesteps)
    relu = create_neuron("relu").update_ops()
    lines = []
    for name, st in monitor.layers.items():
        in_bits = c.activation_bits if (st.image_input or st.event_input) else bits
        lines.append(dense_layer(name, st, 1, in_bits, bits, c))
    for name, ns in monitor.neurons.items():
        lines.append(neuron_layer(name, ns, 1, 0.0, c, ops=relu))
    for name in monitor.attention:
        mech = model.get_submodule(name)
        work, _ = mech.memory_work(model.config.timesteps, branch_rates(monitor, name, 1.0))
        if work:  # the mechanism mixes tokens: the ANN's attention does it with real values
            lines.extend(attention_lines(name, dense_attention_work(1, mech.tokens, mech.dim, mech.num_heads), c))
    return MemoryReport(_in_model_order(model, lines), c, {"activation_bits": bits})


def spike_rate(monitor: FiringRateMonitor) -> float:
    """Mean spikes per input element and step over every spike (or spike-count) input of a conv / linear: the
    nonzero fraction for 0/1 spikes, the mean count for integer counts."""
    stats = [s for s in monitor.layers.values() if (s.spikes or s.counts) and not s.image_input and s.time_major]
    total = sum(s.total for s in stats)
    return sum(s.nonzero if s.spikes else s.abs_sum for s in stats) / total if total else 0.0


def break_even(
    model: nn.Module,
    monitor: FiringRateMonitor,
    costs: MemoryCosts | None = None,
    measured: MemoryReport | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """The uniform spike rate r* at which the SNN's memory-aware energy equals the quantised ANN's.

    E_SNN(r) = E₀ + r·E₁ (every count is affine in the rate), so r* = (E_QNN − E₀) / E₁. With ``measured``, also
    the effective rate: the uniform rate with the same energy as the measured rates, (E_measured − E₀) / E₁.
    """
    c = costs or MemoryCosts()
    if neuron_emits(model.config.neuron) == "real":
        return {"break_even_rate": None, "reason": "the model is an ANN: no spike rate to compare"}
    e0 = memory_aware_energy(model, monitor, c, assume_rate=0.0, **settings).mj
    e1 = memory_aware_energy(model, monitor, c, assume_rate=1.0, **settings).mj - e0
    qnn = qnn_energy(model, monitor, c).mj
    out: dict[str, Any] = dict(
        break_even_rate=None,
        qnn_mj=qnn,
        qnn_activation_bits=qnn_bits(model.config.timesteps),
        snn_mj_at_rate_0=e0,
        snn_mj_per_unit_rate=e1,
    )
    if e1 <= 0:
        out["reason"] = "the model's energy does not grow with the spike rate under these costs"
        return out
    rate = (qnn - e0) / e1
    out["break_even_rate"] = rate
    if rate < 0:
        out["reason"] = "the SNN costs more than the quantised ANN even with no spike at all: it never wins"
    elif rate > 1:
        out["reason"] = "the SNN costs less than the quantised ANN even at a spike in every step: it always wins"
    if measured is not None:
        out["effective_rate"] = (measured.mj - e0) / e1
        out["mean_spike_rate"] = spike_rate(monitor)
    return out
