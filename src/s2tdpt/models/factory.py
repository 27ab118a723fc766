"""``create_model`` / ``list_models``: named configs plus keyword overrides (timm style)."""

from __future__ import annotations

import dataclasses

from .config import MODEL_CONFIGS, S2TDPTConfig
from .s2tdpt import S2TDPT


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(MODEL_CONFIGS)


def resolve_config(name: str | S2TDPTConfig, **overrides) -> S2TDPTConfig:
    """A named (or given) config with ``overrides`` applied; unknown names or fields raise ``ValueError``."""
    if isinstance(name, S2TDPTConfig):
        base = name
    elif name in MODEL_CONFIGS:
        base = MODEL_CONFIGS[name]
    else:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    valid = [f.name for f in dataclasses.fields(S2TDPTConfig)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; valid options: {valid}")
    return dataclasses.replace(base, **overrides)


def create_model(name: str | S2TDPTConfig, **overrides) -> S2TDPT:
    """Build a model, e.g. ``create_model("s2tdpt_4_384", num_classes=100, num_heads=8)``."""
    return S2TDPT(resolve_config(name, **overrides))


def with_synapse(config: S2TDPTConfig, synapse: str | dict | None) -> S2TDPTConfig:
    """``config`` with its attention's weights on the given synapse model (a preset name or a dict of options,
    ``s2tdpt.attention.synapse``); ``ValueError`` when the attention has no synapses (only ``stdp`` has)."""
    from ..attention import attention_options, list_attentions

    if "synapse" not in attention_options(config.attention):
        able = [name for name in list_attentions() if "synapse" in attention_options(name)]
        raise ValueError(
            f"a synapse model applies to attention weights held in memristive devices, which attention "
            f"{config.attention!r} does not have; use it with attention {' or '.join(map(repr, able))} (or leave "
            "--synapse out)"
        )
    return dataclasses.replace(config, attn_kwargs={**config.attn_kwargs, "synapse": synapse})
