"""One registry for every dataset; a dataset (or a family of them) is one file under ``data/`` with
``@register_dataset("name")`` on its builder.

A builder is ``build(root: str | None, download: bool, **options) -> (train, test, info)``: two map-style datasets,
untransformed, and a :class:`DatasetInfo`. Image datasets yield ``(PIL image, label)``; frame datasets
(``layout="frames"``) yield ``(float tensor [T, C, H, W], label)``. The CLI's ``--dataset`` choices, ``eval``,
``energy`` and ``explain`` take their names from :func:`list_datasets`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.data import Dataset

from ..plugins import import_all

#: how one sample reaches the model: an image [C, H, W] (repeated over T, direct encoding) or frames [T, C, H, W]
LAYOUTS = ("image", "frames")

Builder = Callable[..., tuple[Dataset, Dataset, "DatasetInfo"]]


@dataclass(frozen=True)
class DatasetInfo:
    """What the model, the transforms and the analysis tools need to know of a dataset."""

    name: str
    num_classes: int
    in_chans: int
    img_size: int
    class_names: tuple[str, ...]
    layout: str = "image"
    timesteps: int | None = None  # frames per sample, where the data fixes it (frame datasets)
    sensor_size: tuple[int, int] | None = None  # (W, H) of an event camera
    mean: tuple[float, ...] | None = None  # normalisation; None: computed from the training images, or none
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"dataset layout must be one of {LAYOUTS}, got {self.layout!r}")


_DATASETS: dict[str, Builder] = {}


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register a dataset builder under ``name``."""

    def deco(fn: Builder) -> Builder:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        _DATASETS[name] = fn
        return fn

    return deco


def list_datasets() -> list[str]:
    """Names accepted by ``--dataset`` and :func:`build_datasets`."""
    _load_builtins()
    return sorted(_DATASETS)


def dataset_options(name: str) -> list[str]:
    """The keyword options of a dataset's builder (beyond ``root`` and ``download``)."""
    sig = inspect.signature(_builder(name))
    return [p for p in sig.parameters if p not in ("root", "download")]


def resolved_options(name: str, options: dict) -> dict:
    """``options`` with every option the dataset has filled in from its defaults: what a run records."""
    params = inspect.signature(_builder(name)).parameters
    return {p: options.get(p, params[p].default) for p in dataset_options(name)}


def build_datasets(
    name: str, root: str | None = None, download: bool = True, **options
) -> tuple[Dataset, Dataset, DatasetInfo]:
    """Untransformed ``(train, test, info)`` of a registered dataset; unknown names or options raise ``ValueError``."""
    fn = _builder(name)
    unknown = sorted(set(options) - set(dataset_options(name)))
    if unknown:
        raise ValueError(f"dataset {name!r} takes no option(s) {unknown}; valid options: {dataset_options(name)}")
    return fn(root, download, **options)


def _builder(name: str) -> Builder:
    _load_builtins()
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def _load_builtins() -> None:
    # every module of this package, so that its @register decorators have run: a new member is one new file
    import_all(__name__.rpartition(".")[0])
