"""The training configuration: one frozen dataclass. Its fields are the YAML keys and the CLI flags.

Precedence: these defaults ← a YAML file (``-c``) ← command-line flags. The defaults are the embedded quick start
(a small S²TDPT on scikit-learn's 8×8 digits, CPU, under a minute); ``configs/`` holds the paper's recipes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.datasets import NORMALIZATION, list_datasets

AMP_MODES = ("auto", "none", "bf16", "fp16")
COMPILE_MODES = ("auto", "on", "off")
LIF_BACKENDS = ("auto", "compiled", "fused", "torch")


class ConfigError(ValueError):
    """A configuration value or key is invalid. The message names the key, the value given and what is expected.

    A config error depends only on the configuration, so under torchrun every rank raises the same one.
    """


def _f(default: Any, help: str, **kw) -> Any:  # noqa: A002 - field helper with the help text as metadata
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    # --- model
    model: str = _f("s2tdpt_digits", "named model (s2tdpt.list_models())")
    attention: str | None = _f(None, "token mixer (s2tdpt.list_attentions()); default: the model's own (stdp)")
    timesteps: int | None = _f(None, "simulation timesteps T (>= 1); default: the model's own")
    neuron: str | None = _f(None, "neuron (s2tdpt.snn.list_neurons(): lif, plif, ilif, relu); default: the model's own")
    neuron_kwargs: dict = _f({}, "options of that neuron as a YAML/JSON mapping, e.g. '{max_count: 8}' for ilif")
    model_kwargs: dict = _f({}, "other model config fields as a YAML/JSON mapping, e.g. '{num_heads: 8}'")
    synapse: str | dict | None = _f(
        None, "memristive synapses for the STDP attention's weights: a preset (ideal, reram_om, hfo2, ecram) or a "
        "YAML/JSON mapping of options, e.g. '{levels: 16, write_noise: 0.4}' (specs/synapses.md); default: ideal",
    )  # fmt: skip
    init: str | None = _f(
        None, "start from the model weights of this checkpoint (a new run: fresh optimiser and schedule), e.g. to "
        "fine-tune a trained model on device synapses; the model must have the same shapes",
    )  # fmt: skip
    # --- data
    dataset: str = _f("digits", f"one of {', '.join(list_datasets())}")
    dataset_kwargs: dict = _f(
        {}, "options of that dataset as a YAML/JSON mapping, e.g. '{timesteps: 16, split_by: number, size: 64}' for "
        "event data (s2tdpt.data.dataset_options(NAME))",
    )  # fmt: skip
    data_dir: str | None = _f(
        None, "dataset folder (CIFAR: torchvision root; imagefolder: root with train/ test/); recorded absolute"
    )
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
    smoothing: float = _f(0.1, "label smoothing")
    # --- optimisation (AdamW, no decay on norm/bias; warm-up + cosine per step, then cooldown at min_lr)
    epochs: int = _f(8, "total epochs, cooldown included (with time_budget: the schedule's nominal length)")
    time_budget: float | None = _f(
        None,
        "stop after this many seconds of training (evaluation excluded); the learning-rate schedule follows the "
        "elapsed time, as if `epochs` epochs exactly filled the budget",
    )
    batch_size: int = _f(32, "batch size per process")
    lr: float = _f(5e-3, "peak learning rate")
    min_lr: float = _f(1e-5, "final learning rate of the cosine schedule")
    warmup_lr: float = _f(1e-5, "learning rate at the start of warm-up")
    warmup_epochs: float | None = _f(
        None, "warm-up length in epochs; default: 1, or half the schedule when that is shorter than 2 epochs"
    )
    cooldown_epochs: int = _f(0, "epochs at min_lr after the cosine schedule")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to norm and bias parameters)")
    clip_grad: float | None = _f(None, "clip the gradient norm to this value (> 0); default: off (no clipping)")
    # --- runtime
    lif_backend: str = _f(
        "fused",
        "neuron implementation, all the same neuron: fused (eager), compiled (torch.compile kernels: faster for the "
        "LIF, but the first run on a machine spends ~30 s compiling), auto (the neuron's faster of the two: compiled "
        "where torch.compile works, else fused; fused for the integer LIF), torch (the readable reference loop)",
    )
    compile: str = _f(
        "auto",
        "whole-model torch.compile of the training step: on, off, auto (on for one process with the compiled LIF and "
        "bf16 on an AVX512-BF16 CPU, where it measured faster and leaner; off on AMX and AVX2-only CPUs, where it "
        "measured slower, and on CUDA and with DDP, not yet measured: BENCHMARKS.md). The first step of a run "
        "spends 20-75 s compiling (counted in a time_budget)",
    )
    amp: str = _f(
        "auto",
        f"mixed precision: {', '.join(AMP_MODES)}; auto = bf16 autocast where the hardware computes bf16 natively "
        "(CUDA with bf16, CPUs with AVX512-BF16/AMX), else none",
    )
    device: str = _f("auto", "auto (cuda when present), cpu, cuda, cuda:1, ...")
    seed: int = _f(0, "random seed (data order, augmentation, initialisation)")
    out: str | None = _f(None, "run folder; default runs/<time>-<dataset>-<model>")
    tensorboard: bool = _f(False, "also log each epoch's metrics for TensorBoard (in <run>/tensorboard; needs the "
                           "tensorboard extra: pip install 's2tdpt[tensorboard]')")  # fmt: skip

    def __post_init__(self) -> None:
        """Coerce what is unambiguous (``"5e-4"`` → 5e-4, ``2.0`` → 2), reject the rest, resolve the defaults."""
        if isinstance(self.compile, bool):  # YAML reads `compile: off` / `on` / `true` as a boolean
            object.__setattr__(self, "compile", "on" if self.compile else "off")
        types_ = _field_types()
        for f in dataclasses.fields(self):
            if f.name != "synapse":  # a name or a mapping: resolved below
                object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), types_[f.name]))
        object.__setattr__(self, "synapse", resolve_synapse_option(self.synapse))
        _check_values(self)
        object.__setattr__(self, "warmup_epochs", _resolve_warmup(self))
        for name in ("mean", "std"):
            object.__setattr__(self, name, _resolve_normalization(name, getattr(self, name)))
        if (self.mean is None) != (self.std is None) or (self.mean and len(self.mean) != len(self.std)):
            raise ConfigError(f"give 'mean' and 'std' together, with one value per channel: {self.mean}, {self.std}")
        if self.data_dir:  # absolute, so that eval / explain / --resume find the data from any folder
            object.__setattr__(self, "data_dir", str(Path(self.data_dir).expanduser().absolute()))
        if self.init:
            object.__setattr__(self, "init", str(Path(self.init).expanduser().absolute()))
        if self.aa:
            _check_augmentation(self.aa)
        _check_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _bad(name: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"config key '{name}' {why}, got {value!r}")


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


_EXPECTED = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}
#: words that mean "not set" for an optional key, in YAML and on the command line
NULL_WORDS = ("none", "null")


def split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; any other annotation → ``(tp, False)``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return tp, False


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """``value`` as the field's type where that is unambiguous, else a ``ConfigError`` naming key, value, type."""
    base, optional = split_optional(tp)
    base = typing.get_origin(base) or base  # dict[...] → dict
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in NULL_WORDS)):
        return None
    if optional and base in (int, float) and (value is False or (isinstance(value, str) and value.lower() == "off")):
        return None  # `clip_grad: off` (YAML reads a boolean), `--clip-grad off`
    if base is dict and value is None:
        return {}  # `model_kwargs:` with nothing after it
    expected = _EXPECTED.get(base, base.__name__) + (" or null" if optional else "")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise _bad(name, value, f"must be {expected}")
    if base in (int, float):
        number = _number(value)
        if number is None:
            raise _bad(name, value, f"must be {expected}")
        if not math.isfinite(number):
            raise _bad(name, value, "must be a finite number")
        if base is float:
            return float(number)
        if float(number).is_integer():
            return int(number)
        raise _bad(name, value, f"must be {expected} (a whole number)")
    if base is str and not isinstance(value, str):
        raise _bad(name, value, f"must be {expected}")
    return value  # mappings and lists are checked by _check_values


def _number(value: Any) -> int | float | None:
    """An int or float from a number or a numeric string (YAML reads ``5e-4`` as a string); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value.strip())
            except ValueError:
                pass
    return None


def _check_values(cfg: TrainConfig) -> None:
    """Choices and ranges of single keys, and the combinations that timm would reject in the middle of a run."""
    choices = dict(dataset=list_datasets(), lif_backend=LIF_BACKENDS, compile=COMPILE_MODES, amp=AMP_MODES)
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise _bad(name, getattr(cfg, name), f"must be one of {list(allowed)}")
    at_least = dict(epochs=1, batch_size=1, timesteps=1, img_size=1, limit_train=1, limit_test=1)
    at_least.update(workers=0, crop_pad=0, cooldown_epochs=0, mixup_off_epoch=0, seed=0, mixup=0, cutmix=0)
    at_least.update(min_lr=0, warmup_lr=0, warmup_epochs=0, weight_decay=0)
    for name, low in at_least.items():
        value = getattr(cfg, name)
        if value is not None and value < low:
            nullable = " (or null for the default)" if field_default(name) is None else ""
            raise _bad(name, value, f"must be >= {low}{nullable}")
    for name in ("lr", "clip_grad", "time_budget"):
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise _bad(name, value, "must be > 0" + ("" if name == "lr" else " (or null/off)"))
    for name in ("hflip", "reprob"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise _bad(name, getattr(cfg, name), "is a probability and must lie in [0, 1]")
    if not 0.0 <= cfg.smoothing < 1.0:
        raise _bad("smoothing", cfg.smoothing, "must lie in [0, 1) (1 would leave no weight on the true class)")
    if (cfg.mixup > 0 or cfg.cutmix > 0) and cfg.batch_size % 2:
        raise ConfigError(
            f"mixup / cutmix mix the images of a batch in pairs, so batch_size must be even, got {cfg.batch_size}: "
            f"use --batch-size {cfg.batch_size - 1 or 2} or {cfg.batch_size + 1}"
        )
    if not isinstance(cfg.model_kwargs, Mapping):
        raise _bad("model_kwargs", cfg.model_kwargs, "must be a mapping of model config fields, e.g. {num_heads: 8}")
    if not isinstance(cfg.dataset_kwargs, Mapping):
        raise _bad("dataset_kwargs", cfg.dataset_kwargs, "must be a mapping of dataset options, e.g. {timesteps: 16}")
    if not isinstance(cfg.neuron_kwargs, Mapping):
        raise _bad("neuron_kwargs", cfg.neuron_kwargs, "must be a mapping of neuron options, e.g. {max_count: 8}")
    # the neuron's name and options are checked once, by the model config (before any run folder is written)


def resolve_synapse_option(value: Any) -> str | dict | None:
    """A preset name, a mapping (or its YAML text, as given on the command line), or None; checked now, so that a
    bad option fails before any work."""
    from ..attention.synapse import resolve_synapse

    if isinstance(value, str) and value.strip().lower() in NULL_WORDS:
        return None
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise _bad("synapse", value, f"is not a valid YAML/JSON mapping ({e})") from None
    if isinstance(value, Mapping):
        value = dict(value)
    try:
        resolve_synapse(value)
    except ValueError as e:
        raise _bad("synapse", value, f"is not a synapse model: {e}") from None
    return value


def field_default(name: str) -> Any:
    """The default of a TrainConfig field (a fresh copy for mappings and lists)."""
    f = TrainConfig.__dataclass_fields__[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _resolve_warmup(cfg: TrainConfig) -> float:
    """The warm-up in epochs: given, or 1 epoch shortened to half the schedule when the run is short."""
    schedule = cfg.epochs - cfg.cooldown_epochs  # warm-up + cosine
    if schedule <= 0:
        raise _bad("cooldown_epochs", cfg.cooldown_epochs, f"must be less than epochs ({cfg.epochs})")
    if cfg.warmup_epochs is None:
        return min(1.0, schedule / 2)
    if cfg.warmup_epochs >= schedule:
        raise ConfigError(
            f"warmup_epochs ({cfg.warmup_epochs:g}) + cooldown_epochs ({cfg.cooldown_epochs}) must be less than "
            f"epochs ({cfg.epochs}), so that the cosine schedule has steps: use --warmup-epochs 0 (no warm-up) or a "
            f"value below {schedule:g}, or more --epochs"
        )
    return cfg.warmup_epochs


def _resolve_normalization(name: str, value: Any) -> list[float] | None:
    """A preset name → its constants; a list → floats (numeric strings accepted)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in NORMALIZATION:
            raise _bad(name, value, f"must be a list of numbers or one of {list(NORMALIZATION)}")
        return list(NORMALIZATION[value][0 if name == "mean" else 1])
    numbers = [_number(v) for v in value] if isinstance(value, (list, tuple)) else [None]
    if not numbers or any(v is None or not math.isfinite(v) for v in numbers):
        raise _bad(name, value, f"must be a list of numbers, one per channel, or one of {list(NORMALIZATION)}")
    return [float(v) for v in numbers]


def _check_augmentation(policy: str) -> None:
    """Build the RandAugment transform once, so that a bad policy fails before any work (imports timm)."""
    from ..data.transforms import build_transform

    try:
        build_transform(train=True, img_size=8, native_size=8, mean=(0.5,), std=(0.5,), aa=policy)
    except Exception as e:  # timm asserts on unknown policies and sections
        detail = f" ({e})" if str(e) else ""
        raise _bad("aa", policy, f"must be a timm RandAugment policy such as rand-m9-n1-mstd0.4-inc1{detail}") from None


def _check_device(name: str) -> None:
    if name == "auto":
        return
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        raise _bad("device", name, "must be auto, cpu, cuda or cuda:N (a PyTorch device)") from None


def config_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def check_keys(d: Mapping[str, Any], source: str) -> None:
    unknown = sorted(set(d) - set(config_keys()))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {source}; valid keys: {', '.join(config_keys())}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; unknown keys raise ``ConfigError`` listing the valid ones."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    check_keys(data, f"config file {path}")
    return data


def build_config(*layers: Mapping[str, Any]) -> TrainConfig:
    """Defaults ← each mapping in turn (YAML, then flags). Unknown keys and bad values raise ``ConfigError``."""
    merged: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        check_keys(layer, f"configuration layer {i}")
        merged.update(layer)
    return TrainConfig(**merged)


def save_yaml(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
