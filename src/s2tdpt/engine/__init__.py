"""Training and evaluation engine: config, loops, checkpoints, distributed helpers, run folders."""

from .checkpoint import CheckpointError, atomic_torch_save, load_checkpoint
from .config import TrainConfig, build_config, load_yaml
from .evaluate import EvalResult, evaluate

__all__ = [
    "CheckpointError",
    "EvalResult",
    "TrainConfig",
    "atomic_torch_save",
    "build_config",
    "evaluate",
    "load_checkpoint",
    "load_yaml",
]
