"""What the dataset builders share: in-memory and folder datasets, image decoding, errors, normalisation.

The builders themselves live one family per file (``digits.py``, ``cifar.py``, ``fashion_mnist.py``,
``imagefolder.py``, ...) behind :mod:`.registry`. Missing data gives a ``DatasetNotFound`` error that says where
the data was looked for and how to get it; an image file that cannot be decoded (damaged, not an image, too large)
gives an :class:`ImageFileError` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .registry import DatasetInfo, build_datasets, list_datasets

# Per-dataset normalisation constants (spec §8 for CIFAR). Fashion-MNIST: the training set's pixel mean/std.
# Digits: of the fixed stratified training split below (a test checks both against the data).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "digits": ((0.3054,), (0.3760,)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class DatasetNotFound(FileNotFoundError):
    """The dataset is not on disk (and could not be downloaded)."""


class ImageFileError(ValueError):
    """An image file cannot be decoded: damaged, truncated, not an image, or larger than Pillow's safety limit."""


GREY_BANDS = ("1", "L", "I", "F")  # first band of Pillow's greyscale modes (1, L, LA, I, I;16, F, ...)


def _image_error(path: str | Path, e: Exception) -> ImageFileError:
    if isinstance(e, Image.DecompressionBombError):
        return ImageFileError(
            f"image {path} is too large to decode safely ({e}). Downscale it (the model sees small images, e.g. "
            f"32×32) or remove it, then run again."
        )
    if isinstance(e, FileNotFoundError):
        return ImageFileError(f"image {path} does not exist")
    return ImageFileError(
        f"cannot decode image {path} ({type(e).__name__}: {e}): the file is damaged (e.g. truncated by an "
        f"interrupted copy) or not an image. Replace it with an intact copy or delete it, then run again."
    )


def open_image(path: str | Path, mode: str) -> Image.Image:
    """Decode an image file fully and convert it to ``mode``; :class:`ImageFileError` naming the file if it cannot."""
    try:
        with Image.open(path) as im:
            return im.convert(mode)  # convert() decodes the whole file: truncation shows here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # SyntaxError: some PIL decoders
        raise _image_error(path, e) from e


def image_header(path: str | Path) -> tuple[bool, tuple[int, int]]:
    """``(greyscale?, (width, height))`` from an image file's header, without decoding its pixels."""
    try:
        with Image.open(path) as im:
            return im.getbands()[0] in GREY_BANDS, im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _image_error(path, e) from e


def read_image(path: str | Path) -> tuple[np.ndarray, bool]:
    """An image file as uint8 ``[H, W]`` if it is greyscale, else ``[H, W, 3]``; and whether it is greyscale."""
    try:
        with Image.open(path) as im:
            grey = im.getbands()[0] in GREY_BANDS
            return np.asarray(im.convert("L" if grey else "RGB")), grey
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _image_error(path, e) from e


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``[H, W]`` grey → ``[H, W, 3]`` with R = G = B (what Pillow's L → RGB conversion computes)."""
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)


class ArrayDataset(Dataset):
    """uint8 images ``[N, H, W]`` or ``[N, H, W, C]`` with integer labels, served as PIL images."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], transform: Callable | None = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform else img), int(self.labels[i])


class FolderDataset(Dataset):
    """``<root>/<class>/<image>`` with a fixed class list (so train and test agree on label indices)."""

    EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

    def __init__(self, root: Path, classes: Sequence[str], transform: Callable | None = None, mode: str = "RGB"):
        # a class without a folder here has no images in this split (a test split may lack classes)
        self.samples = [
            (str(p), label)
            for label, cls in enumerate(classes)
            if (root / cls).is_dir()
            for p in sorted((root / cls).iterdir())
            if p.suffix.lower() in self.EXTENSIONS
        ]
        self.labels = np.array([label for _, label in self.samples], dtype=np.int64)
        self.transform, self.mode = transform, mode

    def __len__(self) -> int:
        return len(self.samples)

    def decoded(self, images: Sequence[np.ndarray] | None = None) -> ArrayDataset:
        """All images as one uint8 array (same order and labels); they must share one size.

        ``images``: the samples already decoded in ``self.mode`` (else they are decoded here).
        """
        if images is None:
            images = [np.asarray(open_image(path, self.mode)) for path, _ in self.samples]
        odd = next((i for i, a in enumerate(images) if a.shape != images[0].shape), None)
        if odd is not None:
            raise ValueError(
                f"images of different sizes in one folder: {self.samples[0][0]} is {images[0].shape[1::-1]} pixels "
                f"but {self.samples[odd][0]} is {images[odd].shape[1::-1]}; resize them to one size first"
            )
        return ArrayDataset(np.stack(images), self.labels, self.transform)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        img = open_image(path, self.mode)
        return (self.transform(img) if self.transform else img), label


def default_normalization(name: str, dataset: Dataset | None = None, max_images: int = 5000):
    """Mean/std for a dataset: the constants above, or computed from (up to ``max_images`` of) an image dataset."""
    if name in NORMALIZATION:
        return NORMALIZATION[name]
    if dataset is None:
        raise ValueError(f"no normalisation constants for dataset {name!r}; pass --mean and --std")
    idx = np.linspace(0, len(dataset) - 1, num=min(max_images, len(dataset))).astype(int)
    pixels = np.stack([np.asarray(dataset[int(i)][0], dtype=np.float64) / 255.0 for i in idx])
    axes = tuple(range(pixels.ndim - 1)) if pixels.ndim == 4 else None
    mean, std = pixels.mean(axis=axes), pixels.std(axis=axes)
    return tuple(round(float(x), 4) for x in np.atleast_1d(mean)), tuple(round(float(x), 4) for x in np.atleast_1d(std))


__all__ = [
    "NORMALIZATION",
    "ArrayDataset",
    "DatasetInfo",
    "DatasetNotFound",
    "FolderDataset",
    "ImageFileError",
    "build_datasets",
    "default_normalization",
    "list_datasets",
    "open_image",
]
