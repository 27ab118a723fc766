"""Token mixers behind one registry (``[T, B, N, D] → [T, B, N, D]``) and the STDP attention functional API."""

from .registry import attention_options, create_attention, list_attentions, register_attention
from .stdp import STDPAttention, stdp_attention, stdp_attention_dense, stdp_attention_matrix

__all__ = [
    "STDPAttention",
    "attention_options",
    "create_attention",
    "list_attentions",
    "register_attention",
    "stdp_attention",
    "stdp_attention_dense",
    "stdp_attention_matrix",
]
