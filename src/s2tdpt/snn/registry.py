"""One registry for every neuron; a new neuron is one file with ``@register_neuron("name")``.

Contract: ``create_neuron(name, backend=..., **options)`` returns a module mapping time-first input ``[T, ...]`` to
an output of the same shape, starting from rest on every call. Each neuron class declares what it emits
(:data:`EMITS`) so the energy calculator, firing monitor and spike-only attentions ask the neuron, not its name.

Models receive a :class:`NeuronSpec`: ``spec()`` builds one backbone neuron, ``spec(v_threshold=0.5)`` one with
another threshold, ``spec(binary=True)`` the neuron's binary member (where a mechanism needs 0/1 spikes; for an
integer neuron, its one-spike form) and ``spec(ternary=True)`` the ternary LIF of A²OS²A.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

from ..plugins import import_all

NeuronFactory = Callable[..., nn.Module]  # neuron(**overrides) -> a multi-step neuron module
#: what a neuron emits: 0/1 spikes, non-negative integer counts (a count k costs k accumulates), or real values
EMITS = ("spikes", "counts", "real")
#: implementations of one neuron; a neuron without a hand-written path runs its reference under "fused"
BACKENDS = ("fused", "torch", "compiled")

_NEURONS: dict[str, type[nn.Module]] = {}


class NeuronOps(NamedTuple):
    """Work of one neuron's state update in one time step, for the memory-aware energy model.

    ``mul`` and ``add`` count the arithmetic of the neuron's dynamics (a compare with the threshold is an add; a
    select, e.g. a hard reset, is free); ``state`` the state words read and written back (0: stateless).
    """

    mul: float
    add: float
    state: int


def register_neuron(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a neuron under ``name``. The class sets ``emits`` (one of :data:`EMITS`) and
    defines ``update_ops() -> NeuronOps`` (its state update, counted for the energy model)."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _NEURONS:
            raise ValueError(f"neuron {name!r} is already registered")
        if getattr(cls, "emits", None) not in EMITS:
            raise ValueError(f"neuron {name!r} must declare emits = one of {EMITS}")
        if not callable(getattr(cls, "update_ops", None)):
            raise ValueError(f"neuron {name!r} must define update_ops() -> NeuronOps (see s2tdpt/snn/registry.py)")
        _NEURONS[name] = cls
        cls.neuron_name = name
        return cls

    return deco


def list_neurons() -> list[str]:
    """Names accepted by ``create_neuron`` and ``create_model(..., neuron=NAME)``."""
    _load_builtins()
    return sorted(_NEURONS)


def get_neuron_class(name: str) -> type[nn.Module]:
    _load_builtins()
    if name not in _NEURONS:
        raise ValueError(f"unknown neuron {name!r}; available: {', '.join(sorted(_NEURONS))}")
    return _NEURONS[name]


def neuron_options(name: str) -> list[str]:
    """The keyword options a neuron accepts (its constructor's, less ``backend``)."""
    sig = inspect.signature(get_neuron_class(name).__init__)
    return [p for p in sig.parameters if p not in ("self", "backend")]


def neuron_emits(name: str) -> str:
    """What neuron ``name`` emits: ``"spikes"``, ``"counts"`` or ``"real"``."""
    return get_neuron_class(name).emits


def neuron_auto_backend(name: str) -> str:
    """The backend ``--lif-backend auto`` picks for neuron ``name`` where ``torch.compile`` works."""
    return getattr(get_neuron_class(name), "auto_backend", "compiled")


def check_options(name: str, options: Mapping[str, Any], what: str = "neuron_kwargs") -> None:
    """Raise ``ValueError`` naming the unknown keys of ``options`` and the valid ones."""
    valid = neuron_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"{what}: neuron {name!r} does not accept option(s) {unknown}; valid options: {valid}")


def create_neuron(name: str, backend: str = "fused", **options) -> nn.Module:
    """Build a registered neuron; unknown names, backends or options raise ``ValueError`` listing the valid ones."""
    cls = get_neuron_class(name)
    check_options(name, options, "options")
    if backend not in BACKENDS:
        raise ValueError(f"neuron backend must be one of {BACKENDS}, got {backend!r}")
    if "backend" in inspect.signature(cls.__init__).parameters:
        return cls(backend=backend, **options)
    return cls(**options)


@dataclass(frozen=True)
class NeuronSpec:
    """The neurons of one model: a registered ``name``, its ``backend`` and its ``options``; calling it builds one.

    ``spec(v_threshold=x)`` overrides the threshold (the attention neuron's), ``binary=True`` asks for 0/1 spikes
    (the neuron's ``binary_options`` override its options, e.g. ``max_count=1``), ``ternary=True`` gives the
    ternary LIF with the neuron's τ and threshold.
    """

    name: str = "lif"
    backend: str = "fused"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_options(self.name, self.options)
        if self.backend not in BACKENDS:
            raise ValueError(f"neuron backend must be one of {BACKENDS}, got {self.backend!r}")

    def __call__(self, v_threshold: float | None = None, binary: bool = False, ternary: bool = False) -> nn.Module:
        cls = get_neuron_class(self.name)
        options = dict(self.options)
        if v_threshold is not None and cls.emits != "real":  # an activation function has no threshold
            if "v_threshold" not in neuron_options(self.name):
                raise ValueError(f"neuron {self.name!r} has no threshold to set (v_threshold={v_threshold})")
            options["v_threshold"] = v_threshold
        if ternary:
            if cls.emits == "real":
                raise ValueError("a ternary spiking neuron has no ANN counterpart; use a spiking backbone")
            from .neuron import TernaryLIFNode  # noqa: PLC0415 (the one ternary neuron, built from any spiking one)

            keep = neuron_options("lif")  # τ, threshold, ... where this neuron has them
            return TernaryLIFNode(**{k: v for k, v in options.items() if k in keep})
        if binary and cls.emits == "counts":
            options.update(cls.binary_options)
        return create_neuron(self.name, self.backend, **options)


def _load_builtins() -> None:
    # every module of this package, so that its @register decorators have run: a new member is one new file
    import_all(__name__.rpartition(".")[0])
