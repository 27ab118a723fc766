"""Memristive synapses for the STDP attention (``specs/synapses.md``): what a real device does to the weights A.

Each STDP weight ``A_ij ∈ [0, 1]`` is a conductance ``G = G_min + A·(G_max − G_min)``, written from the resting
weight ``w0 = w_offset`` by programming pulses. Everything here works in weight units ``w ∈ [0, 1]``.

* ``levels`` L: a nominal step ``δ = 1/(L − 1)``. The resting weight is first placed on its nearest level (a
  device holds only its levels); reaching a target takes ``n = round(|A − w0|/δ)`` pulses up or down. With no
  nonlinearity this is rounding A to the nearest of the L levels.
* ``nonlinearity_up`` β_up, ``nonlinearity_down`` β_down (soft bounds): one up pulse moves
  ``w ← w + δ·[(1 − β) + β·(1 − w)/(1 − w0)]``, one down pulse ``w ← w − δ·[(1 − β) + β·w/w0]``. The recurrence is
  affine, so n pulses give the closed form ``w0 ± δ·(1 − (1 − e)^n)/e`` with ``e = δβ/(1 − w0)`` (up) or
  ``δβ/w0`` (down) (:func:`programmed`). β = 0 is a linear device, β = 1 full soft bounds.
* ``write_noise`` (cycle to cycle, fresh at every forward): the weight reached is off by ``N(0, s²)``, with
  ``s = write_noise·δ·√max(n, 1)`` (the noise of each pulse adds up), or ``s = write_noise`` without levels. The
  noisy weight is not clipped to [0, 1]: clipping would make the noise depend on the weight and break the exact
  Gaussian form the linear path samples from.
* ``d2d`` (device to device, fixed per crossbar position): each device's step is ``δ·exp(d2d·z)``, z ~ N(0, 1)
  (a log-normal factor, median 1). The controller still counts pulses with the nominal δ (open-loop writing).
* ``stuck``: a fraction of devices never move, held at G_min or G_max (``stuck_at="bounds"``, half each) or at
  their resting weight (``stuck_at="rest"``).

Levels, nonlinearity and the noise's size depend on a pair only through its two spike counts, so they keep the
STDP attention's linear form exact (a table per count pair; the noise through :func:`sample_count_noise`).
``d2d`` and ``stuck`` depend on the position (i, j): they need the dense N × N form (:class:`Crossbar`).

Gradients: the device's weights are piecewise constant in the ideal ones, so training through them uses the
straight-through rule — the forward pass sees the device's weights, the backward pass the ideal STDP's
derivatives (``A + (A_device − A).detach()``). Explicit noise draws (dense form) pass ``ε·V``'s gradient to V;
the linear form's sampled noise carries none (:func:`sample_count_noise`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

STUCK_AT = ("bounds", "rest")


@dataclass(frozen=True)
class SynapseModel:
    """A device model for the STDP attention's weights; the defaults are the ideal synapse (today's attention)."""

    levels: int | None = None
    nonlinearity_up: float = 0.0
    nonlinearity_down: float = 0.0
    write_noise: float = 0.0
    d2d: float = 0.0
    stuck: float = 0.0
    stuck_at: str = "bounds"
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.levels is not None and (isinstance(self.levels, bool) or int(self.levels) != self.levels):
            raise ValueError(f"synapse levels must be a whole number of conductance levels >= 2, got {self.levels!r}")
        if self.levels is not None and self.levels < 2:
            raise ValueError(f"synapse levels must be >= 2 (or None for a continuous device), got {self.levels}")
        for key in ("nonlinearity_up", "nonlinearity_down", "stuck"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"synapse {key} must lie in [0, 1], got {value}")
        for key in ("write_noise", "d2d"):
            if getattr(self, key) < 0:
                raise ValueError(f"synapse {key} must be >= 0, got {getattr(self, key)}")
        if self.levels is None and (self.nonlinearity_up or self.nonlinearity_down or self.d2d):
            raise ValueError(
                "synapse nonlinearity and d2d act on programming pulses, which need a step: give 'levels' too "
                f"(got levels=None with nonlinearity_up={self.nonlinearity_up}, "
                f"nonlinearity_down={self.nonlinearity_down}, d2d={self.d2d})"
            )
        if self.stuck_at not in STUCK_AT:
            raise ValueError(f"synapse stuck_at must be one of {STUCK_AT}, got {self.stuck_at!r}")

    @property
    def step(self) -> float | None:
        """Nominal step δ in weight units (``None``: a continuous device)."""
        return None if self.levels is None else 1.0 / (self.levels - 1)

    @property
    def is_ideal(self) -> bool:
        return self.levels is None and not (self.write_noise or self.stuck)

    @property
    def per_position(self) -> bool:
        """Device-to-device variation or stuck devices: fixed per crossbar position, so the dense form is needed."""
        return bool(self.d2d or self.stuck)

    def options(self) -> dict:
        """The options as a plain dict (what ``config.yaml`` would need to rebuild it)."""
        return {k: v for k, v in asdict(self).items() if k != "name"}


# Presets from IBM aihwkit's device presets (src/aihwkit/simulator/presets/devices.py), fitted there to published
# measurements. aihwkit's weight range is [-1, 1] (width 2) with the symmetry point at 0, so a step ``dw_min``
# is dw_min/2 of our [0, 1] range: L − 1 = round(2/dw_min) steps. ``dw_min_std`` (cycle-to-cycle spread of one
# step, in steps) maps to write_noise, ``dw_min_dtod`` to d2d, ``corrupt_devices_prob`` to stuck (aihwkit holds
# corrupt devices within ±0.01 of the symmetry point, so stuck_at="rest"); SoftBounds devices are β = 1 on both
# sides, LinearStep devices have β = gamma (the step shrinks by the factor 1 − γ·w/w_max, as ours does).
# Not modelled: aihwkit's extra write_noise_std (a read-out error of the written weight), up_down asymmetry and
# the spread of the bounds.
PRESETS: dict[str, SynapseModel] = {
    "ideal": SynapseModel(name="ideal"),
    # ReRamArrayOMPresetDevice — Gong & Rasch et al., "Deep learning acceleration in 14nm CMOS compatible ReRAM array
    # device", IEDM 2022 ("optimised material" array): dw_min 0.0949 (21 steps), dw_min_std 0.4158,
    # dw_min_dtod 0.7829 (log-normal), corrupt devices 13.48 % of the measured array; soft bounds.
    "reram_om": SynapseModel(
        levels=22,
        nonlinearity_up=1.0,
        nonlinearity_down=1.0,
        write_noise=0.4158,
        d2d=0.7829,
        stuck=0.1348,
        stuck_at="rest",
        name="reram_om",
    ),  # fmt: skip
    # ReRamArrayHfO2PresetDevice — same study, "baseline HfO2" array: dw_min 0.4622 (4.3 steps → 4), dw_min_std
    # 0.2174, dw_min_dtod 0.7125 (log-normal), corrupt devices 9.77 %; soft bounds.
    "hfo2": SynapseModel(
        levels=5,
        nonlinearity_up=1.0,
        nonlinearity_down=1.0,
        write_noise=0.2174,
        d2d=0.7125,
        stuck=0.0977,
        stuck_at="rest",
        name="hfo2",
    ),  # fmt: skip
    # EcRamPresetDevice — Tang et al., "ECRAM as scalable synaptic cell for high-speed, low-power neuromorphic
    # computing", IEDM 2018: dw_min 0.002 over a range of 2.0 (1,000 steps), gamma_up 0.1153, gamma_down 0.5085,
    # dw_min_std 0.3, dw_min_dtod 0.1; no corrupt devices.
    "ecram": SynapseModel(
        levels=1001,
        nonlinearity_up=0.1153,
        nonlinearity_down=0.5085,
        write_noise=0.3,
        d2d=0.1,
        name="ecram",
    ),  # fmt: skip
}


def resolve_synapse(spec: str | dict | SynapseModel | None) -> SynapseModel:
    """A synapse from a preset name, a dict of options (``{"preset": NAME, ...}`` starts from a preset), or ``None``
    (ideal). Unknown names or options raise ``ValueError`` listing the valid ones."""
    if spec is None:
        return PRESETS["ideal"]
    if isinstance(spec, SynapseModel):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(
                f"unknown synapse {spec!r}; presets: {', '.join(PRESETS)}, or a dict of options "
                f"{sorted(SynapseModel().options())}"
            )
        return PRESETS[spec]
    if not isinstance(spec, dict):
        raise ValueError(f"synapse must be a preset name or a dict of options, got {type(spec).__name__} {spec!r}")
    options = dict(spec)
    base = resolve_synapse(options.pop("preset", "ideal"))
    valid = set(SynapseModel().options())
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"synapse option(s) {unknown} do not exist; valid options: {sorted(valid)} and 'preset'")
    types = {f.name: f.type for f in fields(SynapseModel)}
    for key, value in options.items():
        if key == "stuck_at" or (key == "levels" and value is None):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"synapse option {key} must be a finite number ({types[key]}), got {value!r}")
    name = base.name if not options else "custom" if base.name in ("ideal", "custom") else f"{base.name}, modified"
    return replace(base, **options, name=name)


# ----------------------------------------------------------------------------------------------------------------
# Programming: the weight a device reaches, and the spread of its write noise


def resting_weight(w0: torch.Tensor | float, synapse: SynapseModel) -> torch.Tensor | float:
    """The resting weight on the device: ``w0`` itself, or its nearest level."""
    if synapse.levels is None:
        return w0
    steps = synapse.levels - 1  # w0·(L−1) + 1/2, floored: ties go up, the same for floats and tensors
    if isinstance(w0, torch.Tensor):
        return (torch.floor(w0.double() * steps + 0.5) / steps).to(w0.dtype)
    return math.floor(w0 * steps + 0.5) / steps


def _geometric(n: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``(1 − (1 − e)^n)/e`` — the distance n soft-bounded pulses travel, in steps; n where e = 0."""
    safe = torch.where(e > 0, e, torch.ones_like(e)).clamp(max=1.0)
    travelled = -torch.expm1(n * torch.log1p(-safe).clamp(min=-1e30)) / safe  # log1p(−1) = −inf: one pulse ends it
    return torch.where(e > 0, travelled, n)


def programmed(
    target: torch.Tensor, w0: torch.Tensor | float, synapse: SynapseModel, step_scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight a device reaches when written towards ``target`` from rest, and the number of pulses.

    Args:
        target: ideal weights in [0, 1], any shape.
        w0: resting weight (float, or a tensor broadcastable to ``target``, e.g. per head).
        synapse: the device model (levels must be set; otherwise the target is returned with 0 pulses).
        step_scale: per-device factor on the step (device-to-device variation), broadcastable to ``target``.

    Returns:
        ``(weight, pulses)``, both shaped like ``target``; weights clipped to [0, 1].
    """
    step = synapse.step
    if step is None:
        return target, torch.zeros_like(target)
    rest = resting_weight(w0, synapse)
    rest_t = torch.as_tensor(rest, dtype=target.dtype, device=target.device)
    pulses = torch.round((target - rest_t).abs() / step)
    up = target > rest_t
    delta = step if step_scale is None else step * step_scale
    # soft-bound contraction per pulse; a device at a bound has nowhere to go, and its e is irrelevant (n = 0)
    room_up, room_down = (1.0 - rest_t).clamp(min=1e-12), rest_t.clamp(min=1e-12)
    e_up = delta * synapse.nonlinearity_up / room_up
    e_down = delta * synapse.nonlinearity_down / room_down
    dev = dict(dtype=target.dtype, device=target.device)
    e = torch.where(up, torch.as_tensor(e_up, **dev), torch.as_tensor(e_down, **dev))
    moved = delta * _geometric(pulses, e)
    weight = torch.where(up, rest_t + moved, rest_t - moved).clamp(0.0, 1.0)
    return weight, pulses


def noise_std(pulses: torch.Tensor, synapse: SynapseModel, step_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Spread of the cycle-to-cycle write noise of each weight: ``write_noise·δ·√max(n, 1)`` (``write_noise``
    without levels)."""
    if synapse.step is None:
        return torch.full_like(pulses, synapse.write_noise)
    delta = synapse.step if step_scale is None else synapse.step * step_scale
    return synapse.write_noise * delta * pulses.clamp(min=1.0).sqrt()


# ----------------------------------------------------------------------------------------------------------------
# Write noise through the linear form


def sample_count_noise(
    r_q: torch.Tensor, r_k: torch.Tensor, v: torch.Tensor, s: torch.Tensor, max_elements: int = 1 << 23
) -> torch.Tensor:
    """A draw of ``e_i = Σ_j ε_ij V_j`` with independent ``ε_ij ~ N(0, s[r_Q(i), r_K(j)]²)``, without N × N arrays.

    Given V, ``e_i`` is Gaussian with covariance ``C_q = Σ_c s[q, c]²·S2_c`` (q = r_Q(i)), where
    ``S2_c = Σ_{j: r_K(j) = c} V_j V_jᵀ``, and independent across i. So ``e_i = L_q ξ_i`` with ``L_q L_qᵀ = C_q``
    (Cholesky, a 1e-9·(1 + max diag) jitter) and ξ ~ N(0, I): exact in distribution, not pathwise.

    Args:
        r_q, r_k: spike counts ``[..., N]`` (integer-valued floats).
        v: values ``[..., N, D_V]``.
        s: noise spread per count pair ``[P..., C, C]`` (C = D_H + 1), broadcastable against ``r_q.shape[:-1]``.
        max_elements: work in chunks of the leading dims so that no intermediate exceeds about this many elements.

    Returns:
        ``[..., N, D_V]`` in ``v``'s dtype, without gradient: the Cholesky factor's derivative is unstable for the
        near-singular covariances of sparse spikes (the dense form's explicit draws do carry ``ε·V``'s gradient).
    """
    v, s = v.detach(), s.detach()
    lead, (n, d_v), c = v.shape[:-2], v.shape[-2:], s.shape[-1]
    compute = torch.float64 if v.dtype == torch.float64 else torch.float32
    var = s.to(compute).square().expand(*lead, c, c).reshape(-1, c, c)  # [G, C, C]
    vf = v.to(compute).reshape(-1, n, d_v)
    q_idx, k_idx = r_q.reshape(-1, n).long(), r_k.reshape(-1, n).long()
    groups = vf.shape[0]
    per_group = n * c * d_v + 2 * c * d_v * d_v + n * d_v * d_v  # the largest intermediates of one group
    chunk = max(1, max_elements // per_group)
    out = []
    for g0 in range(0, groups, chunk):
        sl = slice(g0, g0 + chunk)
        onehot = torch.nn.functional.one_hot(k_idx[sl], c).to(compute)  # [g, N, C]
        weighted = onehot[..., :, None] * vf[sl][..., None, :]  # [g, N, C, D_V]: V_j in bucket r_K(j)
        s2 = torch.einsum("gncd,gne->gcde", weighted, vf[sl])  # S2_c, [g, C, D_V, D_V]
        cov = torch.einsum("gqc,gcde->gqde", var[sl], s2)  # C_q, [g, C, D_V, D_V]
        jitter = 1e-9 * (1.0 + cov.diagonal(dim1=-2, dim2=-1).amax(-1))  # [g, C]
        eye = torch.eye(d_v, dtype=compute, device=v.device)
        chol, _ = torch.linalg.cholesky_ex(cov.double() + jitter.double()[..., None, None] * eye.double())
        chol = chol.to(compute)
        rows = chol.gather(1, q_idx[sl][..., None, None].expand(-1, -1, d_v, d_v))  # L_{r_Q(i)}, [g, N, D_V, D_V]
        xi = torch.randn(rows.shape[:-1], dtype=compute, device=v.device)  # [g, N, D_V]
        out.append((rows @ xi[..., None]).squeeze(-1))
    return torch.cat(out).view(*lead, n, d_v).to(v.dtype)


def device_weights(
    ideal: torch.Tensor, w0: torch.Tensor | float, synapse: SynapseModel, crossbar: Crossbar | None = None
) -> torch.Tensor:
    """Dense weights ``[..., N, N]`` as the devices hold them in this forward pass: programmed (per position with
    a crossbar), plus fresh write noise; differentiable straight through to ``ideal``."""
    if synapse.per_position and crossbar is None:
        raise ValueError("a synapse with d2d or stuck devices needs its crossbar (the per-position draws)")
    if ideal.dtype in (torch.float16, torch.bfloat16):  # levels and pulse counts need float32 (1,001 levels)
        ideal = ideal.float()
    with torch.no_grad():
        scale = crossbar.step_scale if crossbar is not None and synapse.d2d else None
        device, pulses = programmed(ideal, w0, synapse, scale)
        std = noise_std(pulses, synapse, scale)
        if crossbar is not None:
            device, std = crossbar.hold_stuck(device, std, w0)
    weights = device + (ideal - ideal.detach())  # the device's values; the ideal weights' gradients
    if synapse.write_noise:
        weights = weights + std * torch.randn(weights.shape, dtype=weights.dtype, device=weights.device)
    return weights


# ----------------------------------------------------------------------------------------------------------------
# Per-position devices (dense form)


class Crossbar(nn.Module):
    """The fixed per-device draws of one attention layer: ``[H, N, N]`` step factors and stuck codes (buffers,
    so they travel with checkpoints). Drawn from the global generator when built (seed it for a fixed crossbar);
    a checkpoint written without them keeps the fresh draws (see ``STDPAttention``)."""

    def __init__(self, heads: int, tokens: int, synapse: SynapseModel) -> None:
        super().__init__()
        self.synapse = synapse
        shape = (heads, tokens, tokens)
        self.register_buffer("step_scale", torch.exp(synapse.d2d * torch.randn(shape)))
        stuck = torch.rand(shape) < synapse.stuck
        high = (torch.rand(shape) < 0.5) & (synapse.stuck_at == "bounds")  # half the stuck devices sit at G_max
        code = torch.where(stuck, torch.where(high, 2, 1), 0)  # 0: works, 1: stuck at G_min / at rest, 2: at G_max
        self.register_buffer("stuck", code.to(torch.int8))
        self.register_buffer("spec", self.spec_of(synapse))  # which options drew them (checked when loading)

    @staticmethod
    def spec_of(synapse: SynapseModel) -> torch.Tensor:
        return torch.tensor([synapse.d2d, synapse.stuck, float(synapse.stuck_at == "bounds")], dtype=torch.float64)

    def hold_stuck(
        self, weight: torch.Tensor, std: torch.Tensor, w0: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Programmed weights ``[..., H, N, N]`` and their noise spread with the stuck devices held in place: at
        G_min / G_max (``bounds``) or at rest, and without write noise."""
        synapse = self.synapse
        rest = torch.as_tensor(resting_weight(w0, synapse), dtype=weight.dtype, device=weight.device).expand_as(weight)
        low = torch.zeros_like(weight) if synapse.stuck_at == "bounds" else rest
        weight = torch.where(self.stuck == 1, low, torch.where(self.stuck == 2, torch.ones_like(weight), weight))
        return weight, torch.where(self.stuck > 0, torch.zeros_like(std), std)

    def extra_repr(self) -> str:
        stuck = float((self.stuck > 0).float().mean())
        return f"{tuple(self.stuck.shape)}, d2d={self.synapse.d2d}, stuck {stuck:.1%} ({self.synapse.stuck_at})"


class OnSynapses:
    """Mixin for a mechanism whose weights sit on memristive devices: sets ``synapse`` and ``crossbar`` and lets a
    checkpoint written for another synapse load. A checkpoint without crossbar draws (e.g. trained on ideal
    synapses, evaluated on devices), or with draws made for other d2d / stuck options, keeps this model's draws;
    one with draws, loaded for a synapse without per-position devices, drops them."""

    def init_synapse(self, synapse: str | dict | SynapseModel | None, heads: int, tokens: int) -> None:
        self.synapse = resolve_synapse(synapse)
        self.crossbar = Crossbar(heads, tokens, self.synapse) if self.synapse.per_position else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        names = ("step_scale", "stuck", "spec")
        keys = [prefix + "crossbar." + name for name in names]
        if self.crossbar is not None:
            saved = state_dict.get(keys[2])
            other = saved is not None and not torch.equal(saved.to(self.crossbar.spec), self.crossbar.spec)
            for key, name in zip(keys, names, strict=True):  # drawn for other options: this model's draws stay
                if other or key not in state_dict:
                    state_dict[key] = getattr(self.crossbar, name)
        else:
            for key in keys:
                state_dict.pop(key, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def describe(synapse: SynapseModel) -> str:
    """One line for logs: the preset's name and the options that are on."""
    on = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in synapse.options().items() if v]
    return synapse.name if synapse.is_ideal else f"{synapse.name} ({', '.join(on)})"
