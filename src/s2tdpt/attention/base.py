"""The shared skeleton of every projection-based token mixer (paper Eq. 14–16 and 23–24).

    U ─ in_lif ─► S̃ ─ Linear (no bias) ─ BN ─ branch neurons ─► Q, K, V heads ─ mix ─► [T, B, H, N, D_H]
      ─ merge heads ─ Linear (bias) ─ BN ─► S'                                         (added to U by the block)

Subclasses choose the branches (``("q", "k", "v")`` or ``("q", "k")``), the BN and neurons on them
(:meth:`activate`) and the mechanism (:meth:`mix`). The projections of all branches run as one matrix multiply
with per-channel BN and neurons — the same function and parameter count as separate ones.

A mechanism also describes itself to the analysis tools, so that adding one is one file:
:meth:`~ProjectedAttention.energy_ops` (its operations per image for the energy model),
:meth:`~ProjectedAttention.memory_work` (its arithmetic and memory traffic, for the memory-aware model) and
:meth:`~ProjectedAttention.maps` (what it "looks at", for ``explain``). Spiking mechanisms that end in
``SN(s · x)`` derive from :class:`SpikingAttention`, which owns the attention neuron and the scale.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn

from ..layers.norm import TokenBatchNorm
from ..snn.norm_lif import norm_lif
from ..snn.registry import NeuronFactory


class AttentionOp(NamedTuple):
    """One charged line of a mechanism's energy: per image, summed over timesteps.

    ``kind`` is ``"MAC"`` or ``"AC"``; ``flops`` the dense operations per timestep (the mechanism's own unit);
    ``rate`` the input rate that scales them (``None`` when already folded into ``ops``); ``ops`` the charged count.
    """

    label: str
    kind: str
    flops: float
    rate: float | None
    ops: float


class AttentionWork(NamedTuple):
    """Work of one of a mechanism's data structures per image, summed over timesteps (memory-aware model).

    ``add``/``mul``: arithmetic; ``reads``/``writes``: word accesses to a memory of ``words`` entries, each of
    ``word`` bits — an int, or ``"state"`` (accumulators) or ``"weight"`` (stored parameters), whose widths the
    energy model sets. The memory's size prices its accesses.
    """

    label: str
    add: float = 0.0
    mul: float = 0.0
    reads: float = 0.0
    writes: float = 0.0
    words: float = 1.0
    word: int | str = "state"


def accumulate(label: str, ops: float, words: float, word: int | str = "state") -> AttentionWork:
    """``ops`` event-driven accumulates: each reads its operand and reads and writes back its accumulator."""
    return AttentionWork(label, add=ops, reads=2 * ops, writes=ops, words=words, word=word)


def dense_product(label: str, macs: float, outputs: float, words: float) -> AttentionWork:
    """``macs`` multiply-accumulates on real values: two operand reads each, one write per finished output."""
    return AttentionWork(label, add=macs, mul=macs, reads=2 * macs, writes=outputs, words=words)


class ProjectedAttention(nn.Module):
    """Base class; see the module docstring. ``grid`` is the token grid (H', W'), N = H'·W'."""

    branches: tuple[str, ...] = ("q", "k", "v")
    bn_pairs = (("qkv", "qkv_bn"), ("proj", "proj_bn"))
    #: the mechanism is only defined on spikes (e.g. STDP counts them); refuse non-spiking (ANN) backbones
    needs_spikes: bool = False
    #: what reaches ``proj`` is spikes (a neuron, a binary mask or the V spikes); False for a real-valued output.
    #: Declared, not only observed: an untrained network is often silent, and all zeros look like spikes.
    emits_spikes: bool = True

    def __init__(self, dim: int, num_heads: int, *, neuron: NeuronFactory, grid: tuple[int, int]) -> None:
        super().__init__()
        self.dim, self.num_heads, self.grid = dim, num_heads, tuple(grid)
        self.head_dim = dim // num_heads
        nb = len(self.branches)
        self.in_lif = neuron()
        self.qkv = nn.Linear(dim, nb * dim, bias=False)
        self.qkv_bn = TokenBatchNorm(nb * dim)
        self.qkv_lif = neuron(binary=True)
        self.heads_tap = nn.Identity()  # observation point: analysis hooks see the branch heads (Q, K, V) here
        self.proj = nn.Linear(dim, dim)
        self.proj_bn = TokenBatchNorm(dim)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """Projections ``[T, B, N, n_branches·D]`` before BN → normalised and spiking (or activated) branches.

        Default: ``qkv_lif(qkv_bn(x))``, run by :func:`norm_lif` (slopes not stored in training).
        """
        return norm_lif(x, self.qkv_bn, self.qkv_lif)

    def mix(self, *heads: torch.Tensor) -> torch.Tensor:
        """The mechanism: branch heads ``[T, B, H, N, D_H]`` each → ``[T, B, H, N, D_H]``."""
        raise NotImplementedError

    @property
    def tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def energy_ops(
        self, timesteps: int, rates: dict[str, float], *, charge_kernel: bool = False, paper_literal: bool = False
    ) -> tuple[list[AttentionOp], dict]:
        """The mechanism's own operations per image (``specs/energy.md`` §4), excluding the projections.

        Args:
            timesteps: T.
            rates: firing rate of each branch (``"q"``, ``"k"``, ``"v"``) as measured or assumed.
            charge_kernel, paper_literal: STDP's switches (other mechanisms have nothing they apply to).

        Returns:
            the charged lines and extra information for the report (e.g. STDP's linear form).
        """
        raise NotImplementedError(
            f"attention {getattr(self, 'attention_name', type(self).__name__)!r} does not describe its operation "
            "counts: define energy_ops(timesteps, rates) on its class (see s2tdpt/attention/base.py)"
        )

    def memory_work(self, timesteps: int, rates: dict[str, float]) -> tuple[list[AttentionWork], dict]:
        """The mechanism's own arithmetic and memory traffic per image (``docs/energy.md``), excluding the
        projections and the neurons: one :class:`AttentionWork` per data structure it keeps (an attention map, a
        Kᵀ·V product, count histograms...). Rates as for :meth:`energy_ops`. Returns the lines and extra
        information for the report (e.g. STDP's dense-A alternative)."""
        raise NotImplementedError(
            f"attention {getattr(self, 'attention_name', type(self).__name__)!r} does not describe its memory "
            "traffic: define memory_work(timesteps, rates) on its class (see s2tdpt/attention/base.py)"
        )

    def maps(self, heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named maps of what the mechanism looks at, for one sample: ``heads[branch]`` is ``[T, H, N, D_H]``.

        Matrices are ``[H, N, N]`` averaged over T; vectors per head or per token. An empty dict means the
        mechanism mixes no tokens (declared, not a fallback).
        """
        raise NotImplementedError(
            f"attention {getattr(self, 'attention_name', type(self).__name__)!r} does not describe its maps: "
            "define maps(heads) on its class (see s2tdpt/attention/base.py)"
        )

    def project(self, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``U [T, B, N, D]`` → the branch heads, each ``[T, B, H, N, D_H]`` (views, no copy)."""
        t, b, n, _ = u.shape
        x = self.activate(self.qkv(self.in_lif(u)))  # [T, B, N, n_branches·D]
        x = x.view(t, b, n, len(self.branches), self.num_heads, self.head_dim)
        return tuple(x.permute(3, 0, 1, 4, 2, 5))  # n_branches × [T, B, H, N, D_H]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        t, b, n, d = u.shape
        if n != self.grid[0] * self.grid[1]:
            raise ValueError(f"{type(self).__name__} was built for a {self.grid} token grid, got N = {n} tokens")
        y = self.mix(*self.heads_tap(self.project(u)))  # [T, B, H, N, D_H]
        y = y.transpose(2, 3).reshape(t, b, n, d)  # merge heads: [T, B, N, D]
        return self.proj_bn(self.proj(y))


class SpikingAttention(ProjectedAttention):
    """A mechanism that ends in an attention neuron: ``SN_{v_th}(s · x)`` (:meth:`fire`).

    Subclasses set ``default_scale`` (the value their paper uses) and call :meth:`fire` on what they compute.
    Options: ``scale`` (default ``default_scale``) and ``attn_v_threshold`` (the attention neuron's threshold).
    """

    default_scale: float = 0.125

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        neuron: NeuronFactory,
        grid: tuple[int, int],
        scale: float | None = None,
        attn_v_threshold: float = 0.5,
    ) -> None:
        super().__init__(dim, num_heads, neuron=neuron, grid=grid)
        self.scale = self.default_scale if scale is None else float(scale)
        self.attn_lif = neuron(v_threshold=attn_v_threshold, binary=True)

    def __init_subclass__(cls, **kwargs) -> None:
        """Keep ``attn_lif`` the last submodule, after the subclass's own: parameters keep the order that
        checkpoints and optimiser states written before this base class existed have (resume matches by order)."""
        super().__init_subclass__(**kwargs)
        if "__init__" not in vars(cls):
            return
        init = cls.__init__

        @functools.wraps(init)
        def wrapped(self, *args, **kw) -> None:
            init(self, *args, **kw)
            if type(self) is cls:  # the outermost constructor has run
                self._modules["attn_lif"] = self._modules.pop("attn_lif")

        cls.__init__ = wrapped

    def fire(self, x: torch.Tensor) -> torch.Tensor:
        """``SN(s · x)``; a scale of 1 multiplies nothing (the product would be the same tensor)."""
        return self.attn_lif(x if self.scale == 1.0 else x * self.scale)
