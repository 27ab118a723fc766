"""STDP attention of S²TDPT — Mondal & Kumar, "Attention via Synaptic Plasticity is All You Need: A Biologically
Inspired Spiking Neuromorphic Transformer", arXiv 2511.14691, Eq. 17–23.

For one timestep, sample and head, with binary ``Q, K ∈ {0,1}^{N×D_H}``:

* spike counts ``r_Q(i) = Σ_d Q(i,d)``, ``r_K(j) = Σ_d K(j,d)``                       (Eq. 17)
* first-spike latencies ``t(r) = T_max·(1 − r/D_H)``                                 (Eq. 18)
* ``Δt_ij = t_Q(i) − t_K(j)``                                                         (Eq. 19)
* ``f(Δt) = A_stdp·exp(−|Δt|/τ_stdp)``; ``Δw = +f if Δt < 0 else −f``                 (Eq. 20–21)
* ``A_ij = Δw_ij + w_offset``; the mechanism returns ``A·V``                           (Eq. 22)

``stdp_attention_dense`` materialises A exactly as written (the readable reference). ``stdp_attention`` is
this project's exact linear-time form: ``Δt_ij = T_max·(r_K(j) − r_Q(i))/D_H`` depends on the pair only through
two integer counts, so ``A_ij = h[r_Q(i), r_K(j)]`` for a (D_H+1)×(D_H+1) table h, and

    S_c = Σ_{j: r_K(j)=c} V_j      (scatter-add of value rows into D_H+1 buckets)
    R   = h · S                    (tiny table times buckets)
    out_i = R[r_Q(i)]              (gather)

costs O(N·D_H + D_H³) time and O(N·D_H + D_H²) memory — no N×N array exists, in forward or backward. Its
hand-written backward reproduces autograd through the dense form exactly, including ``d|x|/dx = 0`` at
``Δt = 0`` and both branches of Eq. 21 (tested against the dense form).

Defaults (the paper gives no values): ``A_stdp = w_offset = 0.5`` keep every ``A_ij`` in ``[0, 1]``
(potentiation gives ``(0.5, 1]``, depression ``[0, 0.5)``); ``T_max = 4`` reads the maximal latency as the
T = 4 simulation window, and ``τ_stdp = 1`` then makes the kernel decay by ``e`` every ``D_H/4`` spikes of
count difference (8 spikes at D_H = 32), so it neither saturates nor flattens over typical count spreads.
Scale ``s = 0.125`` (Eq. 23, as in Spikformer).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import AttentionOp, AttentionWork, SpikingAttention, accumulate
from .registry import register_attention
from .synapse import (
    Crossbar,
    OnSynapses,
    SynapseModel,
    describe,
    device_weights,
    noise_std,
    programmed,
    resolve_synapse,
    sample_count_noise,
)

T_MAX = 4.0
A_STDP = 0.5
TAU_STDP = 1.0
W_OFFSET = 0.5
SCALE = 0.125

ParamLike = float | torch.Tensor
SynapseSpec = str | dict | SynapseModel | None


# ----------------------------------------------------------------------------------------------------------------
# Shared formulas: the dense form and the linear form's table use the very same float operations.


def first_spike_latency(count: torch.Tensor, d_h: int, t_max: ParamLike) -> torch.Tensor:
    """Eq. 18: more spikes → earlier first spike. ``count`` in [0, D_H]."""
    return t_max * (1.0 - count / d_h)


def stdp_kernel(delta_t: torch.Tensor, a_stdp: ParamLike, tau_stdp: ParamLike) -> torch.Tensor:
    """Eq. 20–21: potentiation ``+f`` for ``Δt < 0``, depression ``−f`` for ``Δt >= 0``."""
    f = a_stdp * torch.exp(-delta_t.abs() / tau_stdp)
    return torch.where(delta_t < 0, f, -f)


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, validate: bool) -> None:
    if q.dim() < 2 or q.shape != k.shape:
        raise ValueError(
            f"q and k must have the same shape [..., N, D_H]; got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if v.dim() != q.dim() or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(
            f"v must have shape [..., N, D_V] with the same leading dims and N as q {tuple(q.shape)}; "
            f"got {tuple(v.shape)}"
        )
    if not validate:
        return
    for name, x in (("q", q), ("k", k)):
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of 0/1 spikes, got dtype {x.dtype}")
        bad = (x != 0) & (x != 1)
        if bool(bad.any()):
            example = x[bad].flatten()[0].item()
            raise ValueError(
                f"STDP attention needs binary spikes in {name} (values 0 or 1), but {int(bad.sum())} entries are "
                f"not, e.g. {example!r}. Pass the output of a spiking neuron, or threshold the tensor first."
            )


def _as_leading(p: ParamLike, extra_dims: int) -> ParamLike:
    """A per-head parameter tensor broadcasts against ``q.shape[:-2]``; append dims for ``[..., N(, N)]``."""
    if isinstance(p, torch.Tensor):
        return p.reshape(p.shape + (1,) * extra_dims)
    return p


# ----------------------------------------------------------------------------------------------------------------
# Dense reference: materialises the N×N matrix exactly as the paper writes it.


def stdp_attention_matrix(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    t_max: ParamLike = T_MAX,
    a_stdp: ParamLike = A_STDP,
    tau_stdp: ParamLike = TAU_STDP,
    w_offset: ParamLike = W_OFFSET,
    validate: bool = True,
) -> torch.Tensor:
    """The attention matrix ``A`` ``[..., N, N]`` exactly as the paper writes it (Eq. 17–22).

    Args:
        q, k: binary spikes ``[..., N, D_H]`` (float).
        t_max, a_stdp, tau_stdp, w_offset: floats, or tensors broadcastable to ``q.shape[:-2]`` (e.g. per head).
        validate: check that q and k are binary (raises ``ValueError`` otherwise).
    """
    _check_inputs(q, k, q, validate)
    d_h = q.shape[-1]
    r_q, r_k = q.sum(-1), k.sum(-1)  # Eq. 17, [..., N]
    t_q = first_spike_latency(r_q, d_h, _as_leading(t_max, 1))  # Eq. 18
    t_k = first_spike_latency(r_k, d_h, _as_leading(t_max, 1))
    delta_t = t_q[..., :, None] - t_k[..., None, :]  # Eq. 19, [..., N, N]
    dw = stdp_kernel(delta_t, _as_leading(a_stdp, 2), _as_leading(tau_stdp, 2))  # Eq. 20–21
    return dw + _as_leading(w_offset, 2)  # Eq. 22


def stdp_attention_dense(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    t_max: ParamLike = T_MAX,
    a_stdp: ParamLike = A_STDP,
    tau_stdp: ParamLike = TAU_STDP,
    w_offset: ParamLike = W_OFFSET,
    validate: bool = True,
    synapse: SynapseSpec = None,
    crossbar: Crossbar | None = None,
) -> torch.Tensor:
    """``A·V`` with ``A`` materialised as ``[..., N, N]`` (:func:`stdp_attention_matrix`). Readable reference.

    Args:
        q, k: binary spikes ``[..., N, D_H]`` (float).
        v: values ``[..., N, D_V]`` (binary in the model, any float here).
        t_max, a_stdp, tau_stdp, w_offset: floats, or tensors broadcastable to ``q.shape[:-2]`` (e.g. per head).
        validate: check that q and k are binary (raises ``ValueError`` otherwise).
        synapse: device model of the weights (:mod:`.synapse`; ``None``: ideal). Write noise is drawn here
            explicitly, one ``ε_ij`` per weight.
        crossbar: the per-position devices, needed when the synapse has ``d2d`` or ``stuck``.

    Returns:
        ``[..., N, D_V]``, before the scale ``s`` and the attention neuron.
    """
    _check_inputs(q, k, v, validate)
    attn = stdp_attention_matrix(q, k, t_max=t_max, a_stdp=a_stdp, tau_stdp=tau_stdp, w_offset=w_offset, validate=False)
    synapse = resolve_synapse(synapse)
    if synapse.is_ideal:
        return attn @ v
    return device_weights(attn, _as_leading(w_offset, 2), synapse, crossbar) @ v  # ε_ij drawn explicitly


# ----------------------------------------------------------------------------------------------------------------
# Exact linear-time form.


def stdp_tables(
    d_h: int,
    *,
    t_max: ParamLike,
    a_stdp: ParamLike,
    tau_stdp: ParamLike,
    w_offset: ParamLike,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention weight as a function of the two spike counts, and its derivative.

    Returns ``(h, dh)``, each ``[P..., D_H+1, D_H+1]`` with ``P`` the parameters' broadcast shape:
    ``h[q, c] = A_ij`` for any pair with ``r_Q(i) = q``, ``r_K(j) = c`` (differentiable in the parameters), and
    ``dh[q, c] = ∂A_ij/∂r_K(j) = −∂A_ij/∂r_Q(i)`` — what autograd gives through the dense form:
    ``(T_max/D_H)·f(Δt)/τ`` on both branches of Eq. 21 and 0 at ``Δt = 0`` (where ``d|x|/dx = 0``).
    """
    params = [p for p in (t_max, a_stdp, tau_stdp, w_offset) if isinstance(p, torch.Tensor)]
    if params:
        device = params[0].device
        dtype = torch.promote_types(params[0].dtype, dtype)
    counts = torch.arange(d_h + 1, device=device, dtype=dtype)
    t = first_spike_latency(counts, d_h, _as_leading(t_max, 1))  # [P..., D_H+1]
    delta_t = t[..., :, None] - t[..., None, :]  # [P..., q, c] = t(q) − t(c), as in the dense form
    h = stdp_kernel(delta_t, _as_leading(a_stdp, 2), _as_leading(tau_stdp, 2)) + _as_leading(w_offset, 2)
    with torch.no_grad():
        f = _as_leading(a_stdp, 2) * torch.exp(-delta_t.abs() / _as_leading(tau_stdp, 2))
        dh = torch.where(delta_t != 0, f / _as_leading(tau_stdp, 2), torch.zeros_like(f))
        dh = dh * (_as_leading(t_max, 2) / d_h)
    return h, dh


def _rows(counts: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """Flat row index into a ``[G·(D_H+1), D_V]`` table for each token's count: ``g·(D_H+1) + count``."""
    flat = counts.reshape(-1, counts.shape[-1]).long()  # [G, N]
    offsets = torch.arange(flat.shape[0], device=flat.device).unsqueeze(1) * n_buckets
    return (flat + offsets).reshape(-1)  # [G·N]


def _bucket(rows_: torch.Tensor, values: torch.Tensor, lead: torch.Size, n_buckets: int) -> torch.Tensor:
    """``out[..., c, :] = Σ_{j: count_j = c} values[..., j, :]`` — additions only. ``values``: [G·N, D_V]."""
    out = values.new_zeros(lead.numel() * n_buckets, values.shape[-1])
    return out.index_add_(0, rows_, values).view(*lead, n_buckets, values.shape[-1])


def _pick(table: torch.Tensor, rows_: torch.Tensor) -> torch.Tensor:
    """``out[g·N + i, :] = table[g, count_i, :]`` as ``[G·N, D_V]`` (whole-row copies)."""
    return table.reshape(-1, table.shape[-1]).index_select(0, rows_)


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two ``[M, D]`` tensors (einsum avoids materialising ``a * b``)."""
    return torch.einsum("md,md->m", a, b)


def _sum_to(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Undo broadcasting: sum ``x`` down to ``shape``."""
    lead = x.dim() - len(shape)
    x = x.sum(dim=tuple(range(lead))) if lead > 0 else x
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and x.shape[i] != 1)
    return x.sum(dim=dims, keepdim=True) if dims else x


class _CountAttention(torch.autograd.Function):
    """``out_i = Σ_j h[r_Q(i), r_K(j)]·V_j`` through buckets; exact gradients without any N×N tensor.

    Works on the leading dims flattened into G groups: values ``[G·N, D_V]``, tables ``[G, D_H+1, D_V]``. Saves
    the counts as small integers (uint8 when D_H < 256), ``v`` in its own dtype and the two small tables; the
    buckets are recomputed in backward (one scatter-add) rather than kept.
    """

    @staticmethod
    def forward(ctx, r_q, r_k, v, h, dh):
        lead, (n, d_v), n_buckets = v.shape[:-2], v.shape[-2:], h.shape[-1]
        count_dtype = torch.uint8 if n_buckets <= 256 else torch.int32
        q_cnt, k_cnt = r_q.to(count_dtype), r_k.to(count_dtype)  # exact: counts are integers held in float
        v2 = v.to(h.dtype).reshape(-1, d_v)  # [G·N, D_V]: one copy (a permuted view becomes contiguous)
        s = _bucket(_rows(k_cnt, n_buckets), v2, lead, n_buckets)  # S_c, [..., D_H+1, D_V]
        out = _pick(h @ s, _rows(q_cnt, n_buckets))  # R[r_Q(i)], [G·N, D_V]
        ctx.v_dtype = v.dtype
        ctx.save_for_backward(q_cnt, k_cnt, v, h, dh)  # v as given: in the model a view of the QKV spikes
        return out.view(*lead, n, d_v)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        q_cnt, k_cnt, v, h, dh = ctx.saved_tensors
        n_buckets, d_v = h.shape[-1], v.shape[-1]
        lead = q_cnt.shape[:-1]
        v2 = v.to(h.dtype).reshape(-1, d_v)
        q_rows, k_rows = _rows(q_cnt, n_buckets), _rows(k_cnt, n_buckets)
        g2 = g.reshape(-1, d_v).to(h.dtype)
        g_q = _bucket(q_rows, g2, lead, n_buckets)  # G_q = Σ_{i: r_Q(i)=q} ∂L/∂out_i
        grad_rq = grad_rk = grad_v = grad_h = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[3]:
            s = _bucket(k_rows, v2, lead, n_buckets)  # recomputed S_c
        if ctx.needs_input_grad[0]:  # ∂L/∂r_Q(i) = −g_i · Σ_c dh[r_Q(i), c]·S_c
            grad_rq = -_rowdot(g2, _pick(dh @ s, q_rows)).view(q_cnt.shape)
        if ctx.needs_input_grad[1]:  # ∂L/∂r_K(j) = V_j · Σ_q dh[q, r_K(j)]·G_q
            grad_rk = _rowdot(v2, _pick(dh.mT @ g_q, k_rows)).view(k_cnt.shape)
        if ctx.needs_input_grad[2]:  # ∂L/∂V_j = Σ_q h[q, r_K(j)]·G_q
            grad_v = _pick(h.mT @ g_q, k_rows).view(*lead, -1, d_v).to(ctx.v_dtype)
        if ctx.needs_input_grad[3]:  # ∂L/∂h[q, c] = G_q · S_c
            grad_h = _sum_to(g_q @ s.mT, h.shape)
        return grad_rq, grad_rk, grad_v, grad_h, None


def stdp_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    t_max: ParamLike = T_MAX,
    a_stdp: ParamLike = A_STDP,
    tau_stdp: ParamLike = TAU_STDP,
    w_offset: ParamLike = W_OFFSET,
    validate: bool = True,
    synapse: SynapseSpec = None,
) -> torch.Tensor:
    """Exact linear-time STDP attention: equals :func:`stdp_attention_dense` in values and gradients.

    Same arguments and result as the dense form. Never allocates anything with N×N elements: time
    O(N·D_H + D_H³), memory O(N·D_H + D_H²) per (leading index). Arithmetic runs in float32 (float64 if the
    inputs are float64) also under autocast; the result has ``v``'s dtype.

    A ``synapse`` with levels and nonlinearity changes the count table (still exact); its write noise is drawn
    through :func:`~.synapse.sample_count_noise` (exact in distribution). Per-position devices (``d2d``,
    ``stuck``) need the dense form and raise ``ValueError`` here.
    """
    _check_inputs(q, k, v, validate)
    synapse = resolve_synapse(synapse)
    if synapse.per_position:
        raise ValueError(
            "a synapse with d2d or stuck devices depends on each crossbar position, which the linear form cannot "
            "represent; use stdp_attention_dense with a Crossbar"
        )
    d_h = q.shape[-1]
    compute = torch.float64 if v.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=v.device.type, enabled=False):
        r_q = q.sum(-1, dtype=compute)  # Eq. 17; float32 sums stay exact integers (bf16 would not past 256)
        r_k = k.sum(-1, dtype=compute)
        h, dh = stdp_tables(
            d_h, t_max=t_max, a_stdp=a_stdp, tau_stdp=tau_stdp, w_offset=w_offset, device=v.device, dtype=compute
        )
        if not synapse.is_ideal:  # the device's table, the ideal derivative table dh (straight through)
            with torch.no_grad():
                device, pulses = programmed(h, _as_leading(w_offset, 2), synapse)
            h = device + (h - h.detach())
        out = _CountAttention.apply(r_q, r_k, v, h.to(compute), dh.to(compute))
        if synapse.write_noise:
            out = out + sample_count_noise(r_q, r_k, v.to(compute), noise_std(pulses, synapse))
    return out.to(v.dtype)


# ----------------------------------------------------------------------------------------------------------------
# The token mixer used by the encoder block.


#: range of the learnable ``log(T_max/τ_stdp)``: the ratio stays in [4.5e-5, 2.2e4]. At the lower end the kernel
#: varies by less than 0.005 % over the whole count range (flat); at the upper end a pair whose counts differ
#: gets ``A_stdp·exp(−2.2e4/D_H)``, below 1e-30 for D_H ≤ 300 (the kernel is a point at Δt = 0). Beyond the range
#: no weight changes noticeably, and the clamp keeps T_max finite: no inf·0 = NaN in the latencies.
LOG_RATIO_RANGE = (-10.0, 10.0)


class _STDPParams(nn.Module):
    """The STDP constants: fixed (plain floats) or learnable per head.

    T_max (Eq. 18) and τ_stdp (Eq. 20) enter A only as their ratio: ``|Δt|/τ = (T_max/τ)·|r_K − r_Q|/D_H``,
    and the sign of Δt does not depend on T_max > 0. Learning both would add a redundant parameter per head
    (their log-gradients are exactly opposite), so the learnable form learns ``log(T_max/τ)`` per head, clamped
    to :data:`LOG_RATIO_RANGE`, keeps τ_stdp at its configured value and reports ``T_max = τ·exp(log ratio)``;
    ``A_stdp`` and ``w_offset`` are learned as they are. Checkpoints written with the former per-head
    ``log_t_max`` and ``log_tau`` load as their difference (the same attention weights).
    """

    def __init__(self, num_heads: int, t_max: float, a_stdp: float, tau_stdp: float, w_offset: float, learnable: bool):
        super().__init__()
        self.learnable = learnable
        if t_max <= 0 or tau_stdp <= 0:
            raise ValueError(f"t_max and tau_stdp must be > 0, got t_max={t_max}, tau_stdp={tau_stdp}")
        if learnable:
            log_ratio = math.log(t_max) - math.log(tau_stdp)
            lo, hi = LOG_RATIO_RANGE
            if not lo <= log_ratio <= hi:
                raise ValueError(
                    f"learnable STDP needs t_max/tau_stdp in [e^{lo:g}, e^{hi:g}] (beyond it the kernel is flat or a "
                    f"point); got t_max={t_max}, tau_stdp={tau_stdp} (ratio {t_max / tau_stdp:g})"
                )
            self.tau_stdp = float(tau_stdp)
            self.log_t_max_over_tau = nn.Parameter(torch.full((num_heads,), log_ratio))
            self.a_stdp = nn.Parameter(torch.full((num_heads,), a_stdp))
            self.w_offset = nn.Parameter(torch.full((num_heads,), w_offset))
        else:
            self.values = dict(t_max=t_max, a_stdp=a_stdp, tau_stdp=tau_stdp, w_offset=w_offset)

    def forward(self) -> dict[str, ParamLike]:
        if not self.learnable:
            return self.values
        # per head: broadcasts against the leading dims [T, B, H] of [T, B, H, N, D_H]
        ratio = self.log_t_max_over_tau.clamp(*LOG_RATIO_RANGE).exp()
        return dict(t_max=self.tau_stdp * ratio, a_stdp=self.a_stdp, tau_stdp=self.tau_stdp, w_offset=self.w_offset)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Map the former learnable keys ``log_t_max``, ``log_tau`` to ``log_t_max_over_tau`` (their difference)."""
        old = (prefix + "log_t_max", prefix + "log_tau")
        if self.learnable and all(k in state_dict for k in old) and prefix + "log_t_max_over_tau" not in state_dict:
            log_t_max, log_tau = state_dict.pop(old[0]), state_dict.pop(old[1])
            state_dict[prefix + "log_t_max_over_tau"] = log_t_max - log_tau
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@register_attention("stdp")
class STDPAttention(OnSynapses, SpikingAttention):
    """S²TDPSA sub-block (Eq. 14–24): ``U → BN(W_O·SN_{0.5}(s·A_t·V_S) + b_O)``, ``[T, B, N, D] → [T, B, N, D]``.

    ``S̃ = SN(U)``; ``Q_S, K_S, V_S = SN(BN(W_{Q,K,V} S̃))``; STDP attention per head; scale, attention LIF
    (threshold 0.5); output linear with bias and BN. ``impl="linear"`` (default) or ``"dense"`` selects the path.
    ``learnable=True`` learns ``log(T_max/τ_stdp)``, ``A_stdp`` and ``w_offset`` per head (see ``_STDPParams``).
    ``synapse`` (a preset name or a dict of options, :mod:`.synapse`) puts the weights on memristive devices;
    with ``d2d`` or ``stuck`` the dense form runs whatever ``impl`` says (the draws depend on the position).
    """

    needs_spikes = True  # spike counts of Q and K

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        impl: str = "linear",
        t_max: float = T_MAX,
        a_stdp: float = A_STDP,
        tau_stdp: float = TAU_STDP,
        w_offset: float = W_OFFSET,
        learnable: bool = False,
        synapse: str | dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(dim, num_heads, **kwargs)
        if impl not in ("linear", "dense"):
            raise ValueError(f"STDP attention impl must be 'linear' or 'dense', got {impl!r}")
        self.impl = impl
        self.stdp = _STDPParams(num_heads, t_max, a_stdp, tau_stdp, w_offset, learnable)
        self.init_synapse(synapse, num_heads, self.tokens)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        params = self.stdp()  # q, k are LIF spikes by construction: no validation
        if self.impl == "dense" or self.crossbar is not None or self._noise_cheaper_dense(q.shape[-2], q.shape[-1]):
            y = stdp_attention_dense(q, k, v, validate=False, synapse=self.synapse, crossbar=self.crossbar, **params)
        else:
            y = stdp_attention(q, k, v, validate=False, synapse=self.synapse, **params)
        return self.fire(y)  # SN_{0.5}(s·A·V)

    def _noise_cheaper_dense(self, n: int, d_h: int) -> bool:
        """Write noise costs the dense form N² draws per head and the linear form's sampler about
        (D_H+1)·D_H² (a covariance and its Cholesky factor per query count); both are exact in distribution
        (tested), so the smaller wins. At the CIFAR grid (N = 64, D_H = 32) that is the dense form."""
        return bool(self.synapse.write_noise) and n * n <= (d_h + 1) * d_h * d_h

    def extra_repr(self) -> str:
        return f"impl={self.impl}, synapse={describe(self.synapse)}"

    def energy_ops(
        self, timesteps: int, rates: dict[str, float], *, charge_kernel: bool = False, paper_literal: bool = False
    ) -> tuple[list[AttentionOp], dict]:
        """(a) spike counts T·(fr_Q + fr_K)·N·D, (b) W·V with binary V: T·fr_V·N²·D, (c) kernel lookups T·H·N²
        (reported, charged only with ``charge_kernel``). ``paper_literal``: (b) only. Beside it, the exact linear
        form's own count: the same counting adds, T·fr_V·N·D bucket adds, and a (D_H+1)² × D_H table product per
        (timestep, head) as MACs."""
        t, n, d, h, dh, r = timesteps, self.tokens, self.dim, self.num_heads, self.head_dim, rates
        counts = t * (r["q"] + r["k"]) * n * d
        kernel = t * h * n * n
        lines = [] if paper_literal else [AttentionOp("spike counts", "AC", (r["q"] + r["k"]) * n * d, None, counts)]
        lines.append(AttentionOp("W·V", "AC", n * n * d, r["v"], t * r["v"] * n * n * d))
        if charge_kernel:
            lines.append(AttentionOp("STDP kernel lookups", "AC", h * n * n, None, kernel))
        linear = dict(ac_ops=counts + t * r["v"] * n * d, mac_ops=t * h * (dh + 1) ** 2 * dh, kernel_lookups=kernel)
        return lines, {"kernel_lookups": kernel, "linear_form": linear}

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """The exact linear form as it runs: Q and K spikes counted per token (2·H·N counters of
        ⌈log2(D_H+1)⌉ bits), each V spike added into its key count's bucket (H·(D_H+1)·D_H sums), the
        (D_H+1)² table h (stored like weights: it depends on the learned parameters only) times the buckets,
        and each query's row of the result gathered. Beside it (``info["dense_a"]``), the paper's dense form:
        H·N² table lookups written into A, and each V spike adding a column of A."""
        t, n, d, h, dh, r = timesteps, self.tokens, self.dim, self.num_heads, self.head_dim, rates
        count_bits = max(1, math.ceil(math.log2(dh + 1)))
        counts = accumulate("spike counts r_Q, r_K", t * (r["q"] + r["k"]) * n * d, 2 * h * n, count_bits)
        buckets, table = h * (dh + 1) * dh, h * (dh + 1) ** 2
        macs = t * h * (dh + 1) ** 2 * dh  # R = h·S per timestep and head
        linear = [
            counts,
            accumulate("buckets S (V by key count)", t * r["v"] * n * d, buckets),
            AttentionWork("R = h·S", add=macs, mul=macs, reads=macs, writes=t * buckets, words=buckets),
            AttentionWork("table h, read by h·S", reads=macs, words=table, word="weight"),
            AttentionWork("gather R[r_Q(i)]", reads=t * (n * d + h * n), writes=t * n * d, words=buckets),
        ]
        dense_a = [
            counts,
            AttentionWork("table h, looked up for A", reads=t * h * n * n, words=table, word="weight"),
            AttentionWork("A written", writes=t * h * n * n, words=h * n * n),
            accumulate("A·V", t * r["v"] * n * n * d, h * n * n),
        ]
        return linear, {"dense_a": dense_a}

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The per-head STDP matrix A (dense reference) and the spike counts r_Q, r_K that determine it."""
        q, k = heads["q"], heads["k"]
        params = self.stdp()
        ideal = stdp_attention_matrix(q, k, validate=False, **params)  # [T, H, N, N]
        maps = {"A (STDP)": ideal.mean(0)}
        if not self.synapse.is_ideal:  # what the devices hold in this pass (one draw of the write noise)
            w0 = _as_leading(params["w_offset"], 2)
            maps[f"A on {self.synapse.name} synapses"] = device_weights(ideal, w0, self.synapse, self.crossbar).mean(0)
        return {**maps, "spike count r_Q": q.sum(-1), "spike count r_K": k.sum(-1)}  # counts [T, H, N]
