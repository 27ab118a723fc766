"""Datasets: the embedded digits, CIFAR-10/100, Fashion-MNIST (IDX files) and image folders.

Every builder returns ``(train, test, info)``: two map-style datasets that yield ``(PIL image, label)`` before
transforms, and a :class:`DatasetInfo` with what the model and the transforms need. Missing data gives a
``DatasetNotFound`` error that says where the data was looked for and how to get it; an image file that cannot be
decoded (damaged, not an image, too large) gives an :class:`ImageFileError` naming the file.

Image folders: the model takes one channel only when every image of the folder (train and test) is greyscale;
otherwise every image is converted to RGB, greyscale ones included. A class folder that exists under ``train/``
but not under ``test/`` is allowed (its test accuracy is then undefined, and a warning names it); a class under
``test/`` that is not under ``train/`` is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .idx import read_idx

# Per-dataset normalisation constants (spec §8 for CIFAR). Fashion-MNIST: the training set's pixel mean/std.
# Digits: of the fixed stratified training split below (a test checks both against the data).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "digits": ((0.3054,), (0.3760,)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
DATASETS = ("digits", "cifar10", "cifar100", "fashion_mnist", "imagefolder")
FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist package
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DIGITS_TEST_FRACTION = 0.2
DECODE_BYTES = 2 * 2**30  # image folders up to this size are decoded into memory once
DIGITS_SPLIT_SEED = 0


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


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """``[H, W]`` grey → ``[H, W, 3]`` with R = G = B (what Pillow's L → RGB conversion computes)."""
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_chans: int
    img_size: int
    class_names: tuple[str, ...]


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


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits (1,797 images, shipped inside scikit-learn) in a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # 17 grey levels 0..16 → 0..255
    return train_test_split(
        images, d.target, test_size=DIGITS_TEST_FRACTION, stratify=d.target, random_state=DIGITS_SPLIT_SEED
    )


def build_digits(root: str | None, download: bool):
    x_tr, x_te, y_tr, y_te = load_digits_split()
    info = DatasetInfo("digits", 10, 1, 8, tuple(str(i) for i in range(10)))
    return ArrayDataset(x_tr, y_tr), ArrayDataset(x_te, y_te), info


def build_cifar(name: str, root: str | None, download: bool):
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
    info = DatasetInfo(name, len(train.classes), 3, 32, tuple(train.classes))
    return (
        ArrayDataset(train.data, train.targets),
        ArrayDataset(test.data, test.targets),
        info,
    )


def _fashion_dir(root: str | None) -> Path:
    if root:
        return Path(root)
    return Path(FASHION_MNIST_DEBIAN) if Path(FASHION_MNIST_DEBIAN).is_dir() else Path("data/fashion_mnist")


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
    info = DatasetInfo("fashion_mnist", 10, 1, splits[0].images.shape[1], FASHION_MNIST_CLASSES)
    return splits[0], splits[1], info


def build_imagefolder(root: str | None, download: bool):
    if not root:
        raise DatasetNotFound("--dataset imagefolder needs --data-dir pointing at a folder with train/ and test/")
    base = Path(root)
    for split in ("train", "test"):
        if not (base / split).is_dir():
            raise DatasetNotFound(
                f"image folder '{base}' has no '{split}' subfolder; expected <root>/train/<class>/*.jpg and "
                f"<root>/test/<class>/*.jpg"
            )
    classes = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFound(f"'{base / 'train'}' has no class subfolders")
    unknown = [c for c in sorted(p.name for p in (base / "test").iterdir() if p.is_dir()) if c not in classes]
    if unknown:
        raise ValueError(
            f"test classes {unknown} of '{base}' do not occur in its train folder (train classes: {classes}); "
            f"rename or remove those test folders so that every test class has training images"
        )
    train, test = FolderDataset(base / "train", classes), FolderDataset(base / "test", classes)
    for split, ds in (("train", train), ("test", test)):
        if len(ds) == 0:
            raise DatasetNotFound(f"no images with extensions {FolderDataset.EXTENSIONS} under '{base / split}'")
    untested = [c for i, c in enumerate(classes) if not np.any(test.labels == i)]
    if untested:
        logging.getLogger("s2tdpt").warning(
            f"image folder '{base}': classes {untested} have training images but no test images; their test "
            f"accuracy is undefined (null in s2tdpt eval's eval.json)"
        )
    grey, (width, height) = image_header(train.samples[0][0])
    if width != height:
        raise ValueError(
            f"image folders need square images (or --img-size to resize); {train.samples[0][0]} is {width}×{height}"
        )
    # One channel only if every image (train and test) is greyscale: a colour folder whose first image is grey
    # stays RGB, its grey images converted. Folders of up to DECODE_BYTES (counted as RGB; e.g. CIFAR-10: 184 MB)
    # are decoded into memory once, not once per epoch, and that single pass also finds the channels.
    if (len(train) + len(test)) * width * height * 3 <= DECODE_BYTES:
        pixels = [[read_image(path) for path, _ in ds.samples] for ds in (train, test)]
        grey = all(g for split in pixels for _, g in split)
        train.mode = test.mode = "L" if grey else "RGB"
        train = train.decoded([a if grey else _as_rgb(a) for a, _ in pixels[0]])
        test = test.decoded([a if grey else _as_rgb(a) for a, _ in pixels[1]])
    else:
        grey = all(image_header(path)[0] for path, _ in train.samples + test.samples)
        train.mode = test.mode = "L" if grey else "RGB"
    info = DatasetInfo(f"imagefolder:{base.name}", len(classes), 1 if grey else 3, width, tuple(classes))
    return train, test, info


def build_datasets(name: str, root: str | None = None, download: bool = True) -> tuple[Dataset, Dataset, DatasetInfo]:
    """Untransformed ``(train, test, info)`` of a dataset in :data:`DATASETS`."""
    if name == "digits":
        return build_digits(root, download)
    if name in ("cifar10", "cifar100"):
        return build_cifar(name, root, download)
    if name == "fashion_mnist":
        return build_fashion_mnist(root, download)
    if name == "imagefolder":
        return build_imagefolder(root, download)
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")


def default_normalization(name: str, dataset: Dataset | None = None, max_images: int = 5000):
    """Mean/std for a dataset: the constants above, or computed from (up to ``max_images`` of) an image folder."""
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
    "DATASETS",
    "NORMALIZATION",
    "ArrayDataset",
    "DatasetInfo",
    "DatasetNotFound",
    "FolderDataset",
    "ImageFileError",
    "build_datasets",
    "default_normalization",
    "load_digits_split",
    "open_image",
]
