"""Datasets (digits, CIFAR-10/100, Fashion-MNIST, image folders), normalisation constants and transforms."""

from .datasets import (
    DATASETS,
    NORMALIZATION,
    DatasetInfo,
    DatasetNotFound,
    build_datasets,
    default_normalization,
)
from .transforms import build_transform

__all__ = [
    "DATASETS",
    "NORMALIZATION",
    "DatasetInfo",
    "DatasetNotFound",
    "build_datasets",
    "build_transform",
    "default_normalization",
]
