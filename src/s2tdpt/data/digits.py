"""scikit-learn's 8×8 handwritten digits (1,797 images, shipped inside scikit-learn): the quick start's data."""

from __future__ import annotations

import numpy as np

from .datasets import NORMALIZATION, ArrayDataset
from .registry import DatasetInfo, register_dataset

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits (1,797 images, shipped inside scikit-learn) in a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # 17 grey levels 0..16 → 0..255
    return train_test_split(
        images, d.target, test_size=DIGITS_TEST_FRACTION, stratify=d.target, random_state=DIGITS_SPLIT_SEED
    )


@register_dataset("digits")
def build_digits(root: str | None, download: bool):
    x_tr, x_te, y_tr, y_te = load_digits_split()
    mean, std = NORMALIZATION["digits"]
    info = DatasetInfo("digits", 10, 1, 8, tuple(str(i) for i in range(10)), mean=mean, std=std)
    return ArrayDataset(x_tr, y_tr), ArrayDataset(x_te, y_te), info
