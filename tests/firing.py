"""Test helpers that make a spiking network fire and check that it does.

At initialisation in eval mode most neurons of a test model are silent (BatchNorm's running statistics are still
mean 0, variance 1, so its output is small), and a silent network passes every check of state, batch independence
or a fast path: its output depends on biases only. Tests of those contracts warm the BatchNorm statistics on the
kind of input they then feed (:func:`warm_batchnorm`) and assert that the late neurons fire
(:func:`assert_late_neurons_fire`).

Imported as ``from firing import ...``: pytest (rootdir-based ``rootdir`` import mode, the default ``prepend``)
puts ``tests/`` on ``sys.path`` for test modules without an ``__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from s2tdpt.snn import Neuron, TernaryLIFNode

NEURONS = (Neuron, TernaryLIFNode)  # every registered spiking neuron (lif, plif, ilif) and the ternary LIF


def warm_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor], forward: Callable | None = None) -> nn.Module:
    """Set every BatchNorm's running statistics to the plain average of its batch statistics over ``batches``.

    BN layers get ``momentum=None`` (cumulative average) and fresh statistics; ``forward`` (default ``model``) runs
    on each batch in train mode without gradients. Returns ``model`` in eval mode, where its neurons now see inputs
    normalised as in training — so they fire.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for x in batches:
            (forward or model)(x)
    return model.eval()


def amplify_qkv(model: nn.Module, gain: float = 2.0) -> nn.Module:
    """Set the weight of every Q/K/V BatchNorm (``qkv_bn``) to ``gain``; returns ``model``.

    The attention neuron's input s·A·V is small: with BN-normalised Q/K/V firing at a few percent it stays silent
    in a narrow model. Gain 2 raises Q/K/V firing (to ~10 % in ``s2tdpt_tiny``) and the attention neuron's with it.
    """
    with torch.no_grad():
        for name, m in model.named_modules():
            if name.split(".")[-1] == "qkv_bn":
                m.weight.fill_(gain)
    return model


def neuron_names(model: nn.Module, prefix: str = "") -> list[str]:
    """Names of the spiking neurons (binary, ternary or integer) in ``model`` whose name starts with ``prefix``."""
    return [n for n, m in model.named_modules() if isinstance(m, NEURONS) and n.startswith(prefix)]


def late_neuron_names(model: nn.Module) -> list[str]:
    """The last encoder block's neurons for a model with ``blocks``, else (a token mixer alone) all its neurons."""
    blocks = getattr(model, "blocks", None)
    return neuron_names(model, f"blocks.{len(blocks) - 1}." if blocks else "")


def firing_rates(model: nn.Module, x: torch.Tensor, names: Iterable[str] | None = None) -> dict[str, float]:
    """Mean |spike| of each named neuron (default: all) over one forward of ``x`` without gradients."""
    modules = dict(model.named_modules())
    names = list(neuron_names(model) if names is None else names)
    rates: dict[str, list[float]] = {n: [] for n in names}
    handles = [
        modules[n].register_forward_hook(lambda mod, args, out, n=n: rates[n].append(out.abs().float().mean().item()))
        for n in names
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: sum(r) / len(r) for n, r in rates.items() if r}


def late_firing_rates(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """:func:`firing_rates` of :func:`late_neuron_names`."""
    return firing_rates(model, x, late_neuron_names(model))


def assert_late_neurons_fire(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Assert that every late neuron fires on ``x`` (rate > 0) and none fires always (an integer neuron: none
    emits its largest count always); returns the rates (mean count for an integer neuron)."""
    rates = late_firing_rates(model, x)
    assert rates, "the model has no spiking neurons to check"
    modules = dict(model.named_modules())
    silent = sorted(n for n, r in rates.items() if not 0 < r < getattr(modules[n], "max_count", 1))
    assert not silent, f"late neurons silent (or saturated), so the test could not fail: {silent}; rates {rates}"
    return rates
