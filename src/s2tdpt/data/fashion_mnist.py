"""Fashion-MNIST from its four IDX ``.gz`` files (default folder: Debian's ``dataset-fashion-mnist`` package)."""

from __future__ import annotations

from pathlib import Path

from .datasets import NORMALIZATION, ArrayDataset, DatasetNotFound
from .idx import read_idx
from .registry import DatasetInfo, register_dataset

FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _fashion_dir(root: str | None) -> Path:
    if root:
        return Path(root)
    return Path(FASHION_MNIST_DEBIAN) if Path(FASHION_MNIST_DEBIAN).is_dir() else Path("data/fashion_mnist")


@register_dataset("fashion_mnist")
def build_fashion_mnist(root: str | None, download: bool):
    folder = _fashion_dir(root)
    needed = [f for pair in FASHION_MNIST_FILES.values() for f in pair]
    missing = [f for f in needed if not (folder / f).exists()]
    if missing and download:
        from torchvision.datasets.utils import download_url

        try:
            for f in missing:
                download_url(FASHION_MNIST_URL + f, str(folder), f)
        except Exception as e:
            raise DatasetNotFound(
                f"Fashion-MNIST files {missing} are not in '{folder}' and could not be downloaded: {e}.\n"
                f"On Debian/Ubuntu: apt-get install dataset-fashion-mnist (files land in {FASHION_MNIST_DEBIAN}); "
                f"otherwise fetch them from {FASHION_MNIST_URL} into a folder and pass --data-dir."
            ) from e
    elif missing:
        raise DatasetNotFound(
            f"Fashion-MNIST files {missing} are not in '{folder}' (download is off). Expected the four IDX .gz "
            f"files {needed}; on Debian/Ubuntu: apt-get install dataset-fashion-mnist, then --data-dir "
            f"{FASHION_MNIST_DEBIAN}."
        )
    splits = []
    for split in ("train", "test"):
        img_file, lbl_file = FASHION_MNIST_FILES[split]
        images, labels = read_idx(folder / img_file), read_idx(folder / lbl_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"Fashion-MNIST {split} files in '{folder}' disagree: images {images.shape}, labels {labels.shape}"
            )
        splits.append(ArrayDataset(images, labels))
    mean, std = NORMALIZATION["fashion_mnist"]
    info = DatasetInfo("fashion_mnist", 10, 1, splits[0].images.shape[1], FASHION_MNIST_CLASSES, mean=mean, std=std)
    return splits[0], splits[1], info
