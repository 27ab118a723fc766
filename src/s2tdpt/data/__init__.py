"""Datasets behind one registry (``list_datasets()``), normalisation constants, transforms, event frames."""

from .datasets import (
    NORMALIZATION,
    DatasetInfo,
    DatasetNotFound,
    build_datasets,
    default_normalization,
    list_datasets,
)
from .registry import register_dataset
from .transforms import build_transform

__all__ = [
    "NORMALIZATION",
    "DatasetInfo",
    "DatasetNotFound",
    "build_datasets",
    "build_transform",
    "default_normalization",
    "list_datasets",
    "register_dataset",
]
