"""The training configuration: one frozen dataclass. Its fields are the YAML keys and the CLI flags.

Precedence: these defaults ← a YAML file (``-c``) ← command-line flags. The defaults are the embedded quick start
(a small S²TDPT on scikit-learn's 8×8 digits, CPU, under a minute); ``configs/`` holds the paper's recipes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.datasets import DATASETS, NORMALIZATION

AMP_MODES = ("auto", "none", "bf16", "fp16")
COMPILE_MODES = ("auto", "on", "off")


def _f(default: Any, help: str, **kw) -> Any:  # noqa: A002 - field helper with the help text as metadata
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    # --- model
    model: str = _f("s2tdpt_digits", "named model (s2tdpt.list_models())")
    attention: str | None = _f(None, "token mixer (s2tdpt.list_attentions()); default: the model's own (stdp)")
    timesteps: int | None = _f(None, "simulation timesteps T; default: the model's own")
    model_kwargs: dict = _f({}, "other model config fields as a YAML/JSON mapping, e.g. '{num_heads: 8}'")
    # --- data
    dataset: str = _f("digits", f"one of {', '.join(DATASETS)}")
    data_dir: str | None = _f(None, "dataset folder (CIFAR: torchvision root; imagefolder: root with train/ test/)")
    download: bool = _f(True, "download CIFAR / Fashion-MNIST when missing (needs network)")
    img_size: int | None = _f(None, "resize images to this size; default: the dataset's native size")
    mean: list | None = _f(None, f"normalisation mean per channel, or a preset name ({', '.join(NORMALIZATION)})")
    std: list | None = _f(None, "normalisation std per channel (default: the dataset's constants)")
    limit_train: int | None = _f(None, "use only N training images, evenly spaced over the split (smoke tests)")
    limit_test: int | None = _f(None, "use only N test images, evenly spaced over the split (smoke tests)")
    workers: int = _f(0, "data-loading worker processes")
    # --- augmentation (timm implementations)
    crop_pad: int = _f(0, "random crop with this much zero padding (0: off)")
    hflip: float = _f(0.0, "horizontal flip probability")
    aa: str | None = _f(None, "timm RandAugment policy, e.g. rand-m9-n1-mstd0.4-inc1")
    reprob: float = _f(0.0, "random erasing probability")
    mixup: float = _f(0.0, "mixup alpha (0: off)")
    cutmix: float = _f(0.0, "cutmix alpha (0: off)")
    mixup_off_epoch: int | None = _f(None, "switch mixup/cutmix off from this epoch on (0-based)")
    smoothing: float = _f(0.0, "label smoothing")
    # --- optimisation (AdamW, no decay on norm/bias; warm-up + cosine per step, then cooldown at min_lr)
    epochs: int = _f(20, "total epochs, cooldown included (with time_budget: the schedule's nominal length)")
    time_budget: float | None = _f(
        None,
        "stop after this many seconds of training (evaluation excluded); the learning-rate schedule follows the "
        "elapsed time, as if `epochs` epochs exactly filled the budget",
    )
    batch_size: int = _f(64, "batch size per process")
    lr: float = _f(3e-3, "peak learning rate")
    min_lr: float = _f(1e-5, "final learning rate of the cosine schedule")
    warmup_lr: float = _f(1e-5, "learning rate at the start of warm-up")
    warmup_epochs: float = _f(1.0, "warm-up length in epochs")
    cooldown_epochs: int = _f(0, "epochs at min_lr after the cosine schedule")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to norm and bias parameters)")
    clip_grad: float | None = _f(None, "clip the gradient norm to this value")
    # --- runtime
    lif_backend: str = _f(
        "fused",
        "LIF implementation, all the same neuron: fused (eager), compiled (torch.compile kernels: faster, but the "
        "first run on a machine spends ~30 s compiling), auto (compiled where torch.compile works, else fused), "
        "torch (the readable reference loop)",
    )
    compile: str = _f(
        "auto",
        "whole-model torch.compile of the training step: on, off, auto (on for one CPU process with the compiled "
        "LIF, where it measured faster and leaner, BENCHMARKS.md; not yet measured on CUDA or with DDP). The first "
        "step of a run spends 20-75 s compiling (counted in a time_budget)",
    )
    amp: str = _f(
        "auto",
        f"mixed precision: {', '.join(AMP_MODES)}; auto = bf16 autocast where the hardware computes bf16 natively "
        "(CUDA with bf16, CPUs with AVX512-BF16/AMX), else none",
    )
    device: str = _f("auto", "auto (cuda when present), cpu, cuda, cuda:1, ...")
    seed: int = _f(0, "random seed (data order, augmentation, initialisation)")
    out: str | None = _f(None, "run folder; default runs/<time>-<dataset>-<model>")

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"config key '{name}' {why}, got {getattr(self, name)!r}")

        if self.dataset not in DATASETS:
            raise bad("dataset", f"must be one of {list(DATASETS)}")
        if self.lif_backend not in ("auto", "compiled", "fused", "torch"):
            raise bad("lif_backend", "must be one of ['auto', 'compiled', 'fused', 'torch']")
        if isinstance(self.compile, bool):  # YAML reads `compile: off` / `on` / `true` as a boolean
            object.__setattr__(self, "compile", "on" if self.compile else "off")
        if self.compile not in COMPILE_MODES:
            raise bad("compile", f"must be one of {list(COMPILE_MODES)}")
        if self.amp not in AMP_MODES:
            raise bad("amp", f"must be one of {list(AMP_MODES)}")
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise bad(name, "must be a positive integer")
        for name in ("lr", "min_lr", "warmup_lr", "weight_decay", "warmup_epochs", "cooldown_epochs", "workers"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        if self.lr <= 0:
            raise bad("lr", "must be > 0")
        if self.time_budget is not None and self.time_budget <= 0:
            raise bad("time_budget", "must be > 0 seconds")
        if self.warmup_epochs + self.cooldown_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) + cooldown_epochs ({self.cooldown_epochs}) must be less than "
                f"epochs ({self.epochs})"
            )
        for name in ("hflip", "reprob", "smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "must lie in [0, 1]")
        if not isinstance(self.model_kwargs, Mapping):
            raise bad("model_kwargs", "must be a mapping of model config fields")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, str):
                if value not in NORMALIZATION:
                    raise bad(name, f"must be a list of floats or one of {list(NORMALIZATION)}")
                object.__setattr__(self, name, list(NORMALIZATION[value][0 if name == "mean" else 1]))
        if (self.mean is None) != (self.std is None) or (self.mean and len(self.mean) != len(self.std)):
            raise ValueError(f"give 'mean' and 'std' together, with one value per channel: {self.mean}, {self.std}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def config_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def check_keys(d: Mapping[str, Any], source: str) -> None:
    unknown = sorted(set(d) - set(config_keys()))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {source}; valid keys: {', '.join(config_keys())}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; unknown keys raise ``ValueError`` listing the valid ones."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ValueError(f"cannot read config file {path}: {e}") from e
    except yaml.YAMLError as e:
        raise ValueError(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    check_keys(data, f"config file {path}")
    return data


def build_config(*layers: Mapping[str, Any]) -> TrainConfig:
    """Defaults ← each mapping in turn (YAML, then flags). Unknown keys raise ``ValueError``."""
    merged: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        check_keys(layer, f"configuration layer {i}")
        merged.update(layer)
    return TrainConfig(**merged)


def save_yaml(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
