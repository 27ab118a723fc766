"""CIFAR-10 and CIFAR-100 through torchvision (downloaded into ``--data-dir`` when online)."""

from __future__ import annotations

from .datasets import NORMALIZATION, ArrayDataset, DatasetNotFound
from .registry import DatasetInfo, register_dataset


def _build_cifar(name: str, root: str | None, download: bool):
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    root = root or "data"
    try:
        train, test = cls(root, train=True, download=download), cls(root, train=False, download=download)
    except Exception as e:  # offline download (URLError, socket errors) or missing files without --download
        raise DatasetNotFound(
            f"{name.upper()} is not in '{root}' and could not be "
            f"{'downloaded' if download else 'loaded (download is off)'}: {e}.\n"
            f"Download {cls.url} and extract it into '{root}' (so that '{root}/{cls.base_folder}' "
            f"exists), then pass --data-dir {root}. An image-folder copy works too: --dataset imagefolder."
        ) from e
    mean, std = NORMALIZATION[name]
    info = DatasetInfo(name, len(train.classes), 3, 32, tuple(train.classes), mean=mean, std=std)
    return (
        ArrayDataset(train.data, train.targets),
        ArrayDataset(test.data, test.targets),
        info,
    )


@register_dataset("cifar10")
def build_cifar10(root: str | None, download: bool):
    return _build_cifar("cifar10", root, download)


@register_dataset("cifar100")
def build_cifar100(root: str | None, download: bool):
    return _build_cifar("cifar100", root, download)
