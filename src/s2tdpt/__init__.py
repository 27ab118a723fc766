"""S²TDPT: the Spiking STDP Transformer (Mondal & Kumar, arXiv 2511.14691) with exact linear-time STDP attention."""

from .attention import create_attention, list_attentions, stdp_attention, stdp_attention_dense
from .models import S2TDPT, S2TDPTConfig, create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "S2TDPT",
    "S2TDPTConfig",
    "__version__",
    "create_attention",
    "create_model",
    "list_attentions",
    "list_models",
    "stdp_attention",
    "stdp_attention_dense",
]
