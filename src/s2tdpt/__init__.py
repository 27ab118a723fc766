"""S²TDPT: the Spiking STDP Transformer (Mondal & Kumar, arXiv 2511.14691) with exact linear-time STDP attention.

Top-level names are imported lazily, so ``s2tdpt --help`` and the command's start-up do not pay for PyTorch twice.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "S2TDPT": "s2tdpt.models",
    "S2TDPTConfig": "s2tdpt.models",
    "create_model": "s2tdpt.models",
    "list_models": "s2tdpt.models",
    "create_attention": "s2tdpt.attention",
    "list_attentions": "s2tdpt.attention",
    "stdp_attention": "s2tdpt.attention",
    "stdp_attention_dense": "s2tdpt.attention",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 's2tdpt' has no attribute {name!r}")
