"""LRF-SSA and LRF-Dyn — Zhang et al., "Neural Dynamics Self-Attention for Spiking Transformers", ICLR 2026,
arXiv 2603.19290. No public code exists; this follows ``specs/lrf_dyn.md`` (its [REC] readings) with the choices
below.

``lrf_ssa`` (Eq. 8/14): ``SN_{0.5}(s · (Q Kᵀ V + Σ_d DWConv_d(V)))`` — SSA plus a localized receptive field: one
depthwise 3×3 convolution per dilation d ∈ ``dilations`` (default {3, 5}) over V laid out on the token grid, heads
concatenated as channels, no bias, inside the scale and before the attention neuron (ambiguity A4), no extra BN.

``lrf_dyn`` (Eq. 11–15, variant A of spec §4.3): per channel, a linear dendritic system of k = 8 compartments
runs causally along the raster token order (separately at every timestep):

    U = K ⊙ V                                   input current (variant A; ``variant="B"``: U = V, no Q gating)
    x_n = Ā ⊙ x_{n−1} + B̄·U_n,  Y_n = Re(C·x_n) + D_skip·U_n        (complex diagonal form, x ∈ C^k)
    Y = Q ⊙ Y                                   query read-out (variant A)
    Y ← Y + Σ_d DWConv_d(Y)                     local field on the dynamics output (ambiguity A5)
    A = SN_{0.5}(s·Y)

Training uses the equivalent causal convolution with kernel ``K[l] = Re Σ_m C_m B̄_m Ā_m^l`` evaluated by FFT
(zero-padded to 2N, so it is causal and not circular), ``impl="fft"``; ``impl="scan"`` runs the recurrence token by
token with O(k·D) state — the inference form. The two agree to float rounding (tested).

Choices where the spec leaves room:
* Initialisation (PMSN reading, A6): the k × k chain ``S = −0.5·I + 5·(E_super − E_sub)`` (leak on the diagonal,
  antisymmetric nearest-neighbour coupling) is diagonalised once: λ = eigenvalues (Re λ = −0.5, Im λ spread over
  ±10), B = eigenbasis image of ones, C = the soma row (last compartment); per-channel step Δ log-uniform in
  [1e-3, 1e-1]; D_skip = 0. λ is trained as ``−exp(log_a_re) + i·a_im`` so Re λ < 0 (stable) throughout.
* Discretisation: zero-order hold with the input scaled by 1/Δ, ``Ā = exp(λΔ)``, ``B̄ = (Ā − 1)/(λΔ)·B``, so the
  kernel's first tap ``K[0] = Re(C·B̄)`` tends to ``Re(C·B) = 1`` as Δ → 0 and is of order 1 at init: it falls
  with Δ, from 0.997 at Δ = 1e-3 to 0.74 at Δ = 1e-1 (not exactly 1). With PMSN's unscaled ``(Ā − 1)/λ·B`` the
  dynamics term would start 10–1000× smaller than the spikes it integrates and the attention neuron would never
  see it.
* Scale: ``s = 1``. The diagonal state keeps one value per channel instead of SSA's D_H × D_H product, so its
  magnitude lacks SSA's sum over D_H channels; s = 0.125 would keep the attention neuron silent.
* The dendritic parameters are excluded from weight decay (``no_weight_decay``); PMSN's 10× learning rate for
  them is not applied.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import AttentionOp, AttentionWork, SpikingAttention, accumulate, dense_product
from .registry import register_attention
from .ssa import SSA, ssa_product


class LocalField(nn.Module):
    """Σ_d depthwise 3×3 convolution with dilation d over tokens on their grid: ``[T, B, N, D] → [T, B, N, D]``."""

    def __init__(self, dim: int, grid: tuple[int, int], dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.convs = nn.ModuleList(
            nn.Conv2d(dim, dim, 3, padding=d, dilation=d, groups=dim, bias=False) for d in dilations
        )
        self.taps = 9 * len(self.convs)  # weights per channel and token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, n, d = x.shape
        img = x.permute(0, 1, 3, 2).reshape(t * b, d, *self.grid)  # tokens in raster order → [T·B, D, H', W']
        out = sum(conv(img) for conv in self.convs)
        return out.reshape(t, b, d, n).permute(0, 1, 3, 2)  # [T, B, N, D]


def _merge(x: torch.Tensor) -> torch.Tensor:
    """[T, B, H, N, D_H] → [T, B, N, D]."""
    t, b, h, n, dh = x.shape
    return x.transpose(2, 3).reshape(t, b, n, h * dh)


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[T, B, N, D] → [T, B, H, N, D_H] (a view)."""
    t, b, n, d = x.shape
    return x.view(t, b, n, heads, d // heads).transpose(2, 3)


@register_attention("lrf_ssa")
class LRFSSA(SSA):
    """SSA plus the local field. Options: ``dilations`` ((3, 5)) and SSA's (order, scale, attn_v_threshold)."""

    def __init__(
        self, dim: int, num_heads: int, *, grid: tuple[int, int], dilations: tuple[int, ...] = (3, 5), **kwargs
    ) -> None:
        super().__init__(dim, num_heads, grid=grid, **kwargs)
        self.local = LocalField(dim, grid, tuple(dilations))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        local = _split(self.local(_merge(v)), self.num_heads)
        return self.fire(ssa_product(q, k, v, self.order) + local)

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        """SSA's rule plus the depthwise 3×3 taps on binary V: T·fr_V·N·D·9·|dilations| adds."""
        lines, info = super().energy_ops(timesteps, rates)
        flops, rate = self.tokens * self.dim * self.local.taps, rates["v"]
        return [*lines, AttentionOp("local field on V", "AC", flops, rate, timesteps * rate * flops)], info

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """SSA's plus the local field: each V spike adds its taps into N·D accumulators."""
        lines, info = super().memory_work(timesteps, rates)
        ops = timesteps * rates["v"] * self.tokens * self.dim * self.local.taps
        return [*lines, accumulate("local field on V", ops, self.tokens * self.dim)], info


def _phi1(z: torch.Tensor) -> torch.Tensor:
    """(e^z − 1)/z for complex z, by its Taylor series where |z| is tiny (the quotient loses all digits there)."""
    small = z.abs() < 1e-4
    safe = torch.where(small, torch.ones_like(z), z)
    return torch.where(small, 1 + z / 2 + z * z / 6, (torch.exp(safe) - 1) / safe)


class DendriticDynamics(nn.Module):
    """Per-channel k-compartment linear system along tokens (diagonal complex form); see the module docstring.

    Input and output ``[T, B, N, D]``; the recurrence runs over N separately for every (t, b, channel).
    """

    def __init__(self, channels: int, compartments: int = 8, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        k = self.compartments = compartments
        chain = -0.5 * torch.eye(k, dtype=torch.float64)
        coupling = torch.diag(torch.ones(k - 1, dtype=torch.float64), 1)
        chain += 5.0 * (coupling - coupling.t())  # antisymmetric nearest-neighbour coupling
        lam, vecs = torch.linalg.eig(chain)  # chain = V diag(λ) V⁻¹
        b = torch.linalg.solve(vecs, torch.ones(k, dtype=torch.complex128))  # B = ones, in the eigenbasis
        c = vecs[k - 1]  # C = e_k (the soma), in the eigenbasis
        self.log_a_re = nn.Parameter(torch.log(-lam.real).float().repeat(channels, 1))  # [D, k]
        self.a_im = nn.Parameter(lam.imag.float().repeat(channels, 1))
        self.b = nn.Parameter(torch.view_as_real(b).float().repeat(channels, 1, 1))  # [D, k, 2]
        self.c = nn.Parameter(torch.view_as_real(c).float().repeat(channels, 1, 1))
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.d_skip = nn.Parameter(torch.zeros(channels))

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ā, B̄ and C as complex128 ``[D, k]`` (computed in double precision: cheap, and exact near λΔ → 0)."""
        lam = torch.complex(-self.log_a_re.double().exp(), self.a_im.double())
        z = lam * self.log_dt.double().exp()[:, None]  # λΔ
        a_bar = torch.exp(z)
        b_bar = _phi1(z) * torch.view_as_complex(self.b.double().contiguous())  # (Ā − 1)/(λΔ)·B
        return a_bar, b_bar, torch.view_as_complex(self.c.double().contiguous())

    def kernel(self, length: int) -> torch.Tensor:
        """``K[d, l] = Re Σ_m C_m B̄_m Ā_m^l`` for l < length: ``[D, length]`` float32."""
        a_bar, b_bar, c = self.discrete()
        steps = torch.arange(length, device=a_bar.device, dtype=torch.float64)
        powers = torch.exp(torch.log(a_bar)[..., None] * steps)  # Ā^l, [D, k, L]
        return torch.einsum("dk,dkl->dl", c * b_bar, powers).real.float()

    def forward(self, u: torch.Tensor, impl: str = "fft") -> torch.Tensor:
        if impl == "fft":
            return self.forward_fft(u)
        if impl == "scan":
            return self.forward_scan(u)
        raise ValueError(f"LRF-Dyn impl must be 'fft' or 'scan', got {impl!r}")

    def forward_fft(self, u: torch.Tensor) -> torch.Tensor:
        """Causal convolution along tokens by FFT, zero-padded to 2N (training form)."""
        n = u.shape[2]
        k = self.kernel(n).to(u.device)  # [D, N]
        spec = torch.fft.rfft(u.float(), n=2 * n, dim=2) * torch.fft.rfft(k.t(), n=2 * n, dim=0)  # [T, B, N+1, D]
        y = torch.fft.irfft(spec, n=2 * n, dim=2)[:, :, :n]
        return (y + self.d_skip * u.float()).to(u.dtype)

    def forward_scan(self, u: torch.Tensor) -> torch.Tensor:
        """Token-by-token recurrence with O(k·D) state per (t, b) (inference form)."""
        a_bar, b_bar, c = (x.to(torch.complex64) for x in self.discrete())
        t, b, n, d = u.shape
        x = torch.zeros(t, b, d, a_bar.shape[-1], dtype=torch.complex64, device=u.device)  # [T, B, D, k]
        out = []
        for i in range(n):
            u_i = u[:, :, i].float()  # [T, B, D]
            x = a_bar * x + b_bar * u_i[..., None]
            out.append((x * c).sum(-1).real + self.d_skip * u_i)
        return torch.stack(out, dim=2).to(u.dtype)


@register_attention("lrf_dyn")
class LRFDyn(SpikingAttention):
    """Options: ``variant`` ("A" or "B"), ``impl`` ("fft" or "scan"), ``compartments`` (8), ``dilations`` ((3, 5)),
    ``scale`` (1), ``attn_v_threshold`` (0.5)."""

    default_scale = 1.0

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        grid: tuple[int, int],
        variant: str = "A",
        impl: str = "fft",
        compartments: int = 8,
        dilations: tuple[int, ...] = (3, 5),
        **kwargs,
    ) -> None:
        if variant not in ("A", "B"):
            raise ValueError(f"LRF-Dyn variant must be 'A' (U = K⊙V, Q gating) or 'B' (U = V), got {variant!r}")
        if impl not in ("fft", "scan"):
            raise ValueError(f"LRF-Dyn impl must be 'fft' or 'scan', got {impl!r}")
        self.branches = ("q", "k", "v") if variant == "A" else ("v",)
        super().__init__(dim, num_heads, grid=grid, **kwargs)
        self.variant, self.impl = variant, impl
        self.dynamics = DendriticDynamics(dim, compartments)
        self.local = LocalField(dim, grid, tuple(dilations))

    def no_weight_decay(self) -> set[str]:
        return {f"dynamics.{name}" for name, _ in self.dynamics.named_parameters()}

    def token_dynamics(self, *heads: torch.Tensor) -> torch.Tensor:
        """The causal part, before the local field: ``[T, B, N, D]`` (Y_n depends on tokens ≤ n only)."""
        if self.variant == "A":
            q, k, v = (_merge(h) for h in heads)
            return q * self.dynamics(k * v, self.impl)
        return self.dynamics(_merge(heads[0]), self.impl)

    def mix(self, *heads: torch.Tensor) -> torch.Tensor:
        y = self.token_dynamics(*heads)
        y = y + self.local(y)
        return _split(self.fire(y), self.num_heads)

    def energy_ops(self, timesteps: int, rates: dict[str, float], **_) -> tuple[list[AttentionOp], dict]:
        """Dendritic recurrence per (t, token, channel, compartment): Ā·x (complex, 4 MAC) and Re(C·x) (2 MAC), plus
        B̄·U as 2 adds per input spike; the local field on the real-valued state: 9·|dilations| MACs per element."""
        t, n, d = timesteps, self.tokens, self.dim
        k = self.dynamics.compartments
        fr_u = min(rates["k"], rates["v"]) if self.variant == "A" else rates["v"]
        taps = self.local.taps
        return [
            AttentionOp("dendritic state", "MAC", n * d * 6 * k, None, t * n * d * 6 * k),
            AttentionOp("dendritic input", "AC", n * d * 2 * k, fr_u, t * fr_u * n * d * 2 * k),
            AttentionOp("local field on state", "MAC", n * d * taps, None, t * n * d * taps),
        ], {}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """The complex state (2 words per compartment) of every (token, channel) updated by 6k MACs per step, the
        input spikes added into it, the local field as MACs on the real-valued output (N·D words)."""
        t, n, d = timesteps, self.tokens, self.dim
        k, taps = self.dynamics.compartments, self.local.taps
        fr_u = min(rates["k"], rates["v"]) if self.variant == "A" else rates["v"]
        state = 2 * k * n * d  # words of the whole state (the recurrence runs along tokens, every channel)
        return [
            dense_product("dendritic state", t * n * d * 6 * k, t * n * d * 2 * k, state),
            accumulate("dendritic input", t * fr_u * n * d * 2 * k, state),
            dense_product("local field on state", t * n * d * taps, t * n * d, n * d),
        ], {}

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        n = heads[self.branches[0]].shape[-2]
        return {"dendritic kernel K[d, l]": self.dynamics.kernel(n)}  # [D, N]
