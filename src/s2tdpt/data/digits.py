"""scikit-learn's 8×8 handwritten digits (1,797 images, shipped inside scikit-learn): the quick start's data.

The images are read from the file scikit-learn ships, without importing scikit-learn: its import (with SciPy's)
takes about a second, a large share of a ~30-second quick start. The split is scikit-learn's stratified 80/20
``train_test_split(..., stratify=target, random_state=0)``, stored below as a bit mask of the test images
(tests/test_data.py checks it against scikit-learn's own); both parts are kept in file order.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from .datasets import NORMALIZATION, ArrayDataset
from .registry import DatasetInfo, register_dataset

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
# bit i (most significant bit first within each byte) set = image i of the file is a test image
_DIGITS_TEST_MASK = (
    "000004883524104000064100934205001a00080100240028062c12001000940a009019120420f8a0028110a000080a88"
    "20441524494240a00a0000004004d80000818020004805c400104008a0100005404800301000020ec409000224840083"
    "a8013c20a6980a0000000b08400804a0184802024041c1008004404684376a810216004480004042a0a4180a5000840b"
    "8561c608108008004c80c02004068e00010882008100380803c008190000100e01008410a0210033282904c044c08068"
    "0e0102830082008822a6402c24042108a860809081a00c02820242120138a41500"
)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as float ``[N, 8, 8]`` with values 0..16, and their labels ``[N]``, in file order."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():  # another layout of scikit-learn: its loader reads the same file
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target.astype(np.int64)
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")  # one row per image: 64 pixels, then the label
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def digits_test_mask(n: int) -> np.ndarray:
    """Boolean ``[n]``: which images of the file form the quick start's test split."""
    if n != 1797:
        raise ValueError(f"scikit-learn's digits file holds {n} images, expected 1797; the split is defined for 1797")
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(_DIGITS_TEST_MASK), dtype=np.uint8))
    return bits[:n].astype(bool)


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed stratified 80/20 split as uint8 images: ``x_train [1437, 8, 8], x_test, y_train, y_test``."""
    images, labels = load_digits_arrays()
    images = np.round(images * (255.0 / 16.0)).astype(np.uint8)  # 17 grey levels 0..16 → 0..255
    test = digits_test_mask(len(images))
    return images[~test], images[test], labels[~test], labels[test]


@register_dataset("digits")
def build_digits(root: str | None, download: bool):
    x_tr, x_te, y_tr, y_te = load_digits_split()
    mean, std = NORMALIZATION["digits"]
    info = DatasetInfo("digits", 10, 1, 8, tuple(str(i) for i in range(10)), mean=mean, std=std)
    return ArrayDataset(x_tr, y_tr), ArrayDataset(x_te, y_te), info
