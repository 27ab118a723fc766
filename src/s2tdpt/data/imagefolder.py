"""Image folders ``<root>/{train,test}/<class>/*``.

The model takes one channel only when every image of the folder (train and test) is greyscale; otherwise every
image is converted to RGB, greyscale ones included. A class folder that exists under ``train/`` but not under
``test/`` is allowed (its test accuracy is then undefined, and a warning names it); a class under ``test/`` that is
not under ``train/`` is an error. Normalisation is computed from the training images unless given."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .datasets import DatasetNotFound, FolderDataset, as_rgb, image_header, read_image
from .registry import DatasetInfo, register_dataset

DECODE_BYTES = 2 * 2**30  # image folders up to this size are decoded into memory once


@register_dataset("imagefolder")
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
        train = train.decoded([a if grey else as_rgb(a) for a, _ in pixels[0]])
        test = test.decoded([a if grey else as_rgb(a) for a, _ in pixels[1]])
    else:
        grey = all(image_header(path)[0] for path, _ in train.samples + test.samples)
        train.mode = test.mode = "L" if grey else "RGB"
    info = DatasetInfo(f"imagefolder:{base.name}", len(classes), 1 if grey else 3, width, tuple(classes))
    return train, test, info
