"""The base of every multi-step neuron: its dynamics stated once, as one time step; the loops derived from it.

A neuron subclass gives :meth:`Neuron.dynamics`, a pure function ``(x_t, v_{t-1}, *args) -> (out_t, v_t)`` that
charges, fires and resets (time-first input ``[T, ...]``, one step ``[...]``), and :meth:`Neuron.dynamics_args`,
the parameters and constants it needs. From that one statement come

* the readable reference (:func:`run_steps`, a python loop over dim 0 under autograd; backend ``"torch"``, and
  ``"fused"`` for a neuron without a hand-written path; one with such a path sets :attr:`Neuron.fused_steps`),
* the generated kernel (backend ``"compiled"``): ``torch.compile`` of the same loop, forward and backward
  derived by AOTAutograd (equal to the reference: tested for every registered neuron),
* the stateful single-step mode (:meth:`Neuron.step`, cleared by :meth:`Neuron.reset`).

Every forward starts from rest (:meth:`Neuron.initial_state`): state never crosses calls or samples. The
membrane integrates in float32 under bf16/fp16 autocast; the output returns in the input's dtype.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from . import compiled
from .registry import BACKENDS

StepFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def run_steps(step_fn: StepFn, x_seq: torch.Tensor, v: torch.Tensor, *args: Any) -> torch.Tensor:
    """Apply ``step_fn`` over dim 0 (time only, never a flattened T·B axis) from state ``v``; stack the outputs."""
    out = []
    for t in range(x_seq.shape[0]):
        s, v = step_fn(x_seq[t], v, *args)
        out.append(s)
    return torch.stack(out)


_COMPILED: dict[StepFn, Callable] = {}


def compiled_steps(step_fn: StepFn) -> Callable:
    """:func:`run_steps` of ``step_fn`` as a generated kernel (compiled once per process and neuron class).

    Each neuron gets its own copy of the loop's code object, so that its variants (train/eval, thresholds) do not
    use up another neuron's recompilation budget (torch.compile keeps a bounded cache per code object).
    """
    if torch.compiler.is_compiling():  # inside a whole-model compile: trace the loop into that graph
        return lambda x_seq, v, *args: run_steps(step_fn, x_seq, v, *args)
    if step_fn not in _COMPILED:
        code = run_steps.__code__.replace(co_name=f"run_steps_{step_fn.__qualname__.replace('.', '_')}")
        loop = types.FunctionType(code, run_steps.__globals__, code.co_name)
        # automatic dynamic shapes (not dynamic=True): floats stay constants, which autograd.Function surrogates
        # with float attributes need under Dynamo
        _COMPILED[step_fn] = functools.partial(torch.compile(loop), step_fn)
    return _COMPILED[step_fn]


class Neuron(nn.Module):
    """Multi-step neuron on time-first tensors ``[T, ...]`` → output of the same shape and dtype.

    Subclasses set ``emits`` and implement :meth:`dynamics` (a ``staticmethod``) and :meth:`dynamics_args`.
    """

    emits: ClassVar[str] = "spikes"
    #: what ``--lif-backend auto`` picks for this neuron where ``torch.compile`` works (else ``"fused"``)
    auto_backend: ClassVar[str] = "compiled"
    #: a hand-written multi-step path with :func:`run_steps`' arguments ``(x_seq, v0, *dynamics_args) -> out``, run
    #: by backend ``"fused"`` and tested equal to the reference; ``None``: ``"fused"`` runs the reference loop
    fused_steps: ClassVar[Callable[..., torch.Tensor] | None] = None

    def __init__(self, backend: str = "fused") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"neuron backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.v: torch.Tensor | None = None  # state of the single-step mode only

    @staticmethod
    def dynamics(x: torch.Tensor, v: torch.Tensor, *args: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: charge with input ``x`` from state ``v``, fire, reset → ``(output, next state)``."""
        raise NotImplementedError

    def dynamics_args(self) -> tuple:
        """The extra arguments of :meth:`dynamics` (parameters, constants)."""
        return ()

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        """The resting state for one step's input ``x`` (float32 membrane)."""
        return torch.zeros_like(x, dtype=torch.float32)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        self.check_input(x_seq)
        x32 = x_seq.float() if x_seq.dtype in (torch.bfloat16, torch.float16) else x_seq
        v0 = self.initial_state(x32[0]).to(x32.dtype)
        args = self.dynamics_args()
        if self.backend == "compiled" and x32.dtype == torch.float32 and compiled.available(x32.device.type):
            out = compiled_steps(type(self).dynamics)(x32, v0, *args)
        elif self.backend == "fused" and self.fused_steps is not None:
            out = self.fused_steps(x32, v0, *args)
        else:
            out = run_steps(type(self).dynamics, x32, v0, *args)
        return out.to(x_seq.dtype)

    def check_input(self, x_seq: torch.Tensor) -> None:
        if x_seq.dim() < 2:
            raise ValueError(
                f"{type(self).__name__} expects a time-first tensor [T, ...] with >= 2 dims, got {tuple(x_seq.shape)}"
            )

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Single-step mode: advance the stored state by one time step (``reset()`` clears it)."""
        if self.v is None or self.v.shape != x.shape:
            self.v = self.initial_state(x).to(x.dtype)
        s, self.v = type(self).dynamics(x, self.v, *self.dynamics_args())
        return s

    def reset(self) -> None:
        self.v = None
