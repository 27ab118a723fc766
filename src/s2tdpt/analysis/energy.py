"""Theoretical compute energy of a spiking transformer (S²TDPT Eq. 29), by the rules of ``specs/energy.md`` §4.

    E = E_MAC · (multiply-accumulates) + E_AC · (synaptic accumulates),   E_MAC = 4.6 pJ, E_AC = 0.9 pJ (45 nm)

* first conv (real image input): MAC, T·FLOPs₁ (``first_conv_times_t=False``: FLOPs₁, the paper's literal formula)
* head (real input, the mean over T and tokens): MAC, FLOPs once
* every other conv / linear with spike input: AC, SOP = rate · T · FLOPs (rate = nonzero fraction of its input);
  with integer spike counts (a neuron that emits counts, e.g. ``ilif``) a count k costs k accumulates, so the
  rate is the mean count per input and time step (it can exceed 1)
* a conv / linear whose input is not spikes: MAC, T·FLOPs (``strict``, default) or AC with rate = mean |input|;
  an assumed rate (``assume_rate``) applies to spike inputs only
* attention: per mechanism (:data:`ATTENTION_RULES`); BN, pooling, neurons, residual adds, scale, means: 0

FLOPs are dense multiply-accumulates of one image at one timestep. Memory access is not counted, as in every
paper cited: the figures are "theoretical compute energy (45 nm)".
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..snn.registry import neuron_emits
from .firing import FiringRateMonitor

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
log = logging.getLogger("s2tdpt")


def energy_mj(mac_ops: float, ac_ops: float, e_mac_pj: float = E_MAC_PJ, e_ac_pj: float = E_AC_PJ) -> float:
    """Energy in mJ of ``mac_ops`` multiply-accumulates and ``ac_ops`` accumulates."""
    return (e_mac_pj * mac_ops + e_ac_pj * ac_ops) * 1e-9


def conv_flops(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, groups: int = 1) -> int:
    """Dense MACs of a conv for one image at one timestep: H_out·W_out·k·k·(C_in/groups)·C_out."""
    return h_out * w_out * kernel * kernel * (c_in // groups) * c_out


def linear_flops(tokens: int, d_in: int, d_out: int) -> int:
    return tokens * d_in * d_out


def sop(rate: float, timesteps: int, flops: float) -> float:
    """Synaptic operations of a spike-driven layer: rate · T · FLOPs."""
    return rate * timesteps * flops


@dataclass
class OpCount:
    """One charged line of the energy table."""

    layer: str
    kind: str  # "MAC" or "AC"
    flops: float  # dense MACs per image per timestep (or the mechanism's own unit)
    rate: float | None
    ops: float

    def energy_uj(self, e_mac_pj: float, e_ac_pj: float) -> float:
        e = e_mac_pj if self.kind == "MAC" else e_ac_pj
        return self.ops * e * 1e-6


# ----------------------------------------------------------------------------------------------------------------
# Attention rules (per block, per image). r: branch rates {"q", "k", "v"}; returns charged lines and extra info.


@dataclass(frozen=True)
class AttentionShape:
    timesteps: int
    tokens: int
    dim: int
    heads: int
    options: dict = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


def stdp_ops(s: AttentionShape, r: dict[str, float], charge_kernel: bool = False, paper_literal: bool = False):
    """(a) spike counts T·(fr_Q + fr_K)·N·D, (b) W·V with binary V: T·fr_V·N²·D, (c) kernel lookups T·H·N²
    (reported, charged only with ``charge_kernel``). ``paper_literal``: (b) only. Beside it, the exact linear
    form's own count: the same counting adds, T·fr_V·N·D bucket adds, and a (D_H+1)² × D_H table product per
    (timestep, head) as MACs."""
    t, n, d, h, dh = s.timesteps, s.tokens, s.dim, s.heads, s.head_dim
    counts = t * (r["q"] + r["k"]) * n * d
    wv = t * r["v"] * n * n * d
    kernel = t * h * n * n
    lines = [] if paper_literal else [("spike counts", "AC", (r["q"] + r["k"]) * n * d, None, counts)]
    lines.append(("W·V", "AC", n * n * d, r["v"], wv))
    if charge_kernel:
        lines.append(("STDP kernel lookups", "AC", h * n * n, None, kernel))
    linear = dict(ac_ops=counts + t * r["v"] * n * d, mac_ops=t * h * (dh + 1) ** 2 * dh, kernel_lookups=kernel)
    return lines, {"kernel_lookups": kernel, "linear_form": linear}


def ssa_ops(s: AttentionShape, r: dict[str, float], **_):
    """Spikingformer's rule, K^T V first: T·N·D·D_H·(fr_Q + min(fr_K, fr_V)); with ``order="qk_first"``:
    T·N²·D·(fr_Q + fr_V)."""
    t, n, d, dh = s.timesteps, s.tokens, s.dim, s.head_dim
    if s.options.get("order", "kv_first") == "qk_first":
        return [("Q·Kᵀ, ·V", "AC", n * n * d, None, t * n * n * d * (r["q"] + r["v"]))], {}
    return [("Kᵀ·V, Q·", "AC", n * d * dh, None, t * n * d * dh * (r["q"] + min(r["k"], r["v"])))], {}


def lrf_ssa_ops(s: AttentionShape, r: dict[str, float], **kw):
    lines, info = ssa_ops(s, r)
    taps = 9 * len(s.options.get("dilations", (3, 5)))
    lines.append(
        ("local field on V", "AC", s.tokens * s.dim * taps, r["v"], s.timesteps * r["v"] * s.tokens * s.dim * taps)
    )
    return lines, info


def sdsa_ops(s: AttentionShape, r: dict[str, float], **_):
    """Column sum of K ⊙ V: one add per coincident K and V spike, at most T·min(fr_K, fr_V)·N·D."""
    n, d = s.tokens, s.dim
    return [("Σₙ K⊙V", "AC", n * d, min(r["k"], r["v"]), s.timesteps * min(r["k"], r["v"]) * n * d)], {}


def qk_token_ops(s: AttentionShape, r: dict[str, float], **_):
    """Row sum of Q: one add per Q spike, T·fr_Q·N·D; the mask multiplies nothing."""
    n, d = s.tokens, s.dim
    return [("Σ_c Q", "AC", n * d, r["q"], s.timesteps * r["q"] * n * d)], {}


def a2os2a_ops(s: AttentionShape, r: dict[str, float], **_):
    """Kᵀ·V with ternary V (±adds of K rows) and Q·(KᵀV) with binary Q: T·N·D·D_H·(fr_V + fr_Q), all adds."""
    t, n, d, dh = s.timesteps, s.tokens, s.dim, s.head_dim
    return [("Kᵀ·V, Q·", "AC", n * d * dh, None, t * n * d * dh * (r["q"] + r["v"]))], {}


def lrf_dyn_ops(s: AttentionShape, r: dict[str, float], **_):
    """Dendritic recurrence per (t, token, channel, compartment): Ā·x (complex, 4 MAC) and Re(C·x) (2 MAC), plus
    B̄·U as 2 adds per input spike; the local field on the real-valued state: 9·|dilations| MACs per element."""
    t, n, d = s.timesteps, s.tokens, s.dim
    k = s.options.get("compartments", 8)
    taps = 9 * len(s.options.get("dilations", (3, 5)))
    fr_u = min(r["k"], r["v"]) if s.options.get("variant", "A") == "A" else r["v"]
    return [
        ("dendritic state", "MAC", n * d * 6 * k, None, t * n * d * 6 * k),
        ("dendritic input", "AC", n * d * 2 * k, fr_u, t * fr_u * n * d * 2 * k),
        ("local field on state", "MAC", n * d * taps, None, t * n * d * taps),
    ], {}


def random_frozen_ops(s: AttentionShape, r: dict[str, float], **_):
    n, d = s.tokens, s.dim
    return [("R·V", "AC", n * n * d, r["v"], s.timesteps * r["v"] * n * n * d)], {}


def softmax_ops(s: AttentionShape, r: dict[str, float], **_):
    """Q·Kᵀ and A·V on real values: 2·N²·D MACs per timestep (softmax itself uncharged, as in the spec)."""
    n, d = s.tokens, s.dim
    return [("Q·Kᵀ, A·V", "MAC", 2 * n * n * d, None, s.timesteps * 2 * n * n * d)], {}


def identity_ops(s: AttentionShape, r: dict[str, float], **_):
    return [], {}


ATTENTION_RULES: dict[str, Callable] = {
    "stdp": stdp_ops,
    "ssa": ssa_ops,
    "lrf_ssa": lrf_ssa_ops,
    "sdsa": sdsa_ops,
    "qk_token": qk_token_ops,
    "a2os2a": a2os2a_ops,
    "lrf_dyn": lrf_dyn_ops,
    "random_frozen": random_frozen_ops,
    "softmax": softmax_ops,
    "identity": identity_ops,
}


# ----------------------------------------------------------------------------------------------------------------
# Whole model


@dataclass
class EnergyReport:
    lines: list[OpCount]
    e_mac_pj: float
    e_ac_pj: float
    timesteps: int
    images: int
    settings: dict[str, Any]
    firing_rates: dict[str, Any]
    extra: dict[str, Any]

    @property
    def mac_ops(self) -> float:
        return sum(x.ops for x in self.lines if x.kind == "MAC")

    @property
    def ac_ops(self) -> float:
        return sum(x.ops for x in self.lines if x.kind == "AC")

    @property
    def energy_mj(self) -> float:
        return energy_mj(self.mac_ops, self.ac_ops, self.e_mac_pj, self.e_ac_pj)

    def to_dict(self) -> dict[str, Any]:
        layers = [{**asdict(x), "energy_uj": x.energy_uj(self.e_mac_pj, self.e_ac_pj)} for x in self.lines]
        return dict(
            energy_mj=self.energy_mj,
            mac_ops=self.mac_ops,
            ac_ops=self.ac_ops,
            e_mac_pj=self.e_mac_pj,
            e_ac_pj=self.e_ac_pj,
            timesteps=self.timesteps,
            images=self.images,
            settings=self.settings,
            layers=layers,
            firing_rates=self.firing_rates,
            **self.extra,
        )


def estimate_energy(
    model: nn.Module,
    monitor: FiringRateMonitor,
    *,
    e_mac_pj: float = E_MAC_PJ,
    e_ac_pj: float = E_AC_PJ,
    first_conv_times_t: bool = True,
    strict: bool = True,
    charge_kernel: bool = False,
    paper_literal: bool = False,
    assume_rate: float | None = None,
) -> EnergyReport:
    """Energy per image from the layers and rates a :class:`FiringRateMonitor` observed on ``model``.

    ``assume_rate`` replaces every measured spike rate (and every attention branch rate) by one value — the
    spec's test vectors TV12/TV13 and quick what-ifs; shapes still come from the monitored forward pass. Layers
    whose input is not spikes keep their own rule (MAC × T, or the lenient mean value): no rate applies to them.

    Warns (``UserWarning``) when ``e_mac_pj`` is 46, the paper's misprint of 4.6 pJ.
    """
    if math.isclose(e_mac_pj, 46.0):
        warnings.warn(
            "E_MAC = 46 pJ is a typo in the S²TDPT paper; the 45 nm figure (Horowitz 2014) is 4.6 pJ",
            UserWarning,
            stacklevel=2,
        )
    cfg = model.config
    t = cfg.timesteps
    emits = neuron_emits(cfg.neuron)
    spiking = emits != "real"  # a ReLU backbone (the ANN) feeds real values to every layer: all MACs
    # the mechanism says whether its output (the input of its ``proj``) is spikes
    real_inputs = {f"{name}.proj" for name, m in model.named_modules() if getattr(m, "emits_spikes", True) is False}
    lines: list[OpCount] = []
    head = "head"
    for name, st in monitor.layers.items():
        integer_counts = emits == "counts" and st.counts and not st.spikes
        measured = st.mean_abs if integer_counts else st.rate  # mean count: a count k is k accumulates
        rate = measured if assume_rate is None else assume_rate
        spike_input = (st.spikes or integer_counts) and name not in real_inputs
        if st.image_input:  # the real-valued image enters the first conv
            lines.append(OpCount(name, "MAC", st.flops, None, (t if first_conv_times_t else 1) * st.flops))
        elif st.event_input and st.counts:  # event frames of counts: one accumulate per event (k events: k ACs)
            rate = st.mean_abs if assume_rate is None else assume_rate
            lines.append(OpCount(name, "AC", st.flops, rate, sop(rate, t, st.flops)))
        elif st.event_input:  # frames resized by area averaging are real values: multiplies, every step
            lines.append(OpCount(name, "MAC", st.flops, None, t * st.flops))
        elif name == head:
            lines.append(OpCount(name, "MAC", st.flops, None, st.flops))
        elif not spiking:
            lines.append(OpCount(name, "MAC", st.flops, None, t * st.flops))
        elif spike_input:
            lines.append(OpCount(name, "AC", st.flops, rate, sop(rate, t, st.flops)))
        elif strict:
            log.info(f"{name}: input is not spikes; charged as MAC × T (strict rule)")
            lines.append(OpCount(name, "MAC", st.flops, None, t * st.flops))
        else:
            lines.append(OpCount(name, "AC", st.flops, st.mean_abs, sop(st.mean_abs, t, st.flops)))

    extra: dict[str, Any] = {}
    linear_mac = linear_ac = 0.0
    has_linear = False
    n_tokens = cfg.num_tokens
    for name, branches in monitor.attention.items():
        rates = {b: (s.rate if assume_rate is None else assume_rate) for b, s in branches.items()}
        shape = AttentionShape(t, n_tokens, cfg.embed_dim, cfg.num_heads, dict(cfg.attn_kwargs))
        rule = ATTENTION_RULES[cfg.attention]
        kw = dict(charge_kernel=charge_kernel, paper_literal=paper_literal) if cfg.attention == "stdp" else {}
        charged, info = rule(shape, rates, **kw)
        for label, kind, flops, rate, ops in charged:
            lines.append(OpCount(f"{name} {label}", kind, flops, rate, ops))
        if "linear_form" in info:
            has_linear = True
            linear_mac += info["linear_form"]["mac_ops"]
            linear_ac += info["linear_form"]["ac_ops"]
            extra.setdefault("stdp_kernel_lookups", 0.0)
            extra["stdp_kernel_lookups"] += info["kernel_lookups"]
    report = EnergyReport(
        lines=lines,
        e_mac_pj=e_mac_pj,
        e_ac_pj=e_ac_pj,
        timesteps=t,
        images=monitor.images,
        settings=dict(
            first_conv_times_t=first_conv_times_t,
            strict=strict,
            charge_kernel=charge_kernel,
            paper_literal=paper_literal,
            assume_rate=assume_rate,
            attention=cfg.attention,
        ),
        firing_rates={
            "layers": {
                n: {"rate": s.rate, "per_step": s.per_step, "spikes": s.spikes} for n, s in monitor.layers.items()
            },
            "attention": {n: {b: s.rate for b, s in br.items()} for n, br in monitor.attention.items()},
        },
        extra=extra,
    )
    if has_linear:  # the linear form's own operations in place of the paper-comparable attention lines
        attn_lines = [x for x in lines if " " in x.layer and x.layer.split(" ")[0].endswith(".attn")]
        mac = report.mac_ops - sum(x.ops for x in attn_lines if x.kind == "MAC") + linear_mac
        ac = report.ac_ops - sum(x.ops for x in attn_lines if x.kind == "AC") + linear_ac
        report.extra["stdp_linear_form"] = dict(
            mac_ops=mac, ac_ops=ac, energy_mj=energy_mj(mac, ac, e_mac_pj, e_ac_pj), attention_mac_ops=linear_mac,
            attention_ac_ops=linear_ac,
        )  # fmt: skip
    return report
