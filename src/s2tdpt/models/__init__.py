"""The S²TDPT model, its named configurations and the factory."""

from .config import MODEL_CONFIGS, S2TDPTConfig
from .factory import create_model, list_models, resolve_config
from .s2tdpt import S2TDPT

__all__ = ["MODEL_CONFIGS", "S2TDPT", "S2TDPTConfig", "create_model", "list_models", "resolve_config"]
