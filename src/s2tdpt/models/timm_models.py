"""Every named config as a timm model: ``timm.create_model("s2tdpt_4_384", num_classes=100)`` after ``import s2tdpt``.

``s2tdpt/__init__.py`` calls :func:`register` as soon as timm is imported (before or after s2tdpt), so importing
s2tdpt alone does not pay for importing timm and PyTorch. timm-based training scripts pass their usual options:
``num_classes``, ``in_chans``, ``img_size`` and any other :class:`~s2tdpt.models.S2TDPTConfig` field are applied;
``drop_rate`` / ``drop_path_rate`` are accepted at 0 and refused otherwise (the model has no dropout), never
silently ignored. No weights are published by this project: ``pretrained=True`` says so and points to
:func:`s2tdpt.load_pretrained` for your own exported weights.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.datasets import NORMALIZATION
from .config import MODEL_CONFIGS
from .factory import create_model

_NO_DROPOUT = ("drop_rate", "drop_path_rate", "drop_block_rate", "proj_drop_rate", "attn_drop_rate")
_IGNORED = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")  # about downloading weights: none exist


def pretrained_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    """timm's data config for a model (input size, normalisation): CIFAR-10's for RGB, Fashion-MNIST's for grey."""
    cfg = MODEL_CONFIGS[name]
    in_chans, img = overrides.get("in_chans", cfg.in_chans), overrides.get("img_size", cfg.img_size)
    mean, std = NORMALIZATION["cifar10" if in_chans == 3 else "fashion_mnist"]
    if len(mean) != in_chans:
        mean, std = (mean[0],) * in_chans, (std[0],) * in_chans
    return dict(
        architecture=name, input_size=(in_chans, img, img), mean=mean, std=std, interpolation="bilinear",
        crop_pct=1.0, num_classes=overrides.get("num_classes", cfg.num_classes), first_conv="patch_embed.stem_conv",
        classifier="head",
    )  # fmt: skip


def _entrypoint(name: str):
    def build(pretrained: bool = False, **kwargs: Any) -> torch.nn.Module:
        if pretrained:
            raise ValueError(
                f"no pretrained weights are published for {name}; export your own with `s2tdpt export CHECKPOINT "
                "--out DIR` and load them with s2tdpt.load_pretrained(DIR) (or timm's checkpoint_path=)"
            )
        for key in _IGNORED:
            kwargs.pop(key, None)
        for key in _NO_DROPOUT:
            if kwargs.pop(key, 0.0):
                raise ValueError(f"{name} has no dropout layers: {key} must be 0 (or left out)")
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        model = create_model(name, **kwargs)
        model.pretrained_cfg = model.default_cfg = pretrained_cfg(name, **kwargs)
        return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model

    build.__name__ = build.__qualname__ = name  # timm registers an entrypoint under its function's name
    build.__module__ = __name__
    build.__doc__ = f"S²TDPT model ``{name}`` (s2tdpt.models.MODEL_CONFIGS[{name!r}]); options override its config."
    return build


def register() -> list[str]:
    """Register every named config with timm (idempotent); returns the names."""
    from timm.models import is_model, model_entrypoint, register_model

    for name in sorted(MODEL_CONFIGS):
        if is_model(name) and model_entrypoint(name).__module__ == __name__:
            continue
        fn = _entrypoint(name)
        globals()[name] = fn  # the module exposes the entrypoint, as timm's model modules do
        register_model(fn)
    return sorted(MODEL_CONFIGS)
