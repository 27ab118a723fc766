"""Small datasets made inside the tests: no network, no ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from s2tdpt.data.idx import write_idx

os.environ.setdefault("OMP_NUM_THREADS", "2")


def pattern_images(n: int, label: int, size: int, channels: int, seed: int) -> np.ndarray:
    """uint8 images whose class is a texture: a checkerboard of period 2·(label + 1) pixels, plus noise."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 80, size=(n, size, size, channels)).astype(np.uint8)
    y, x = np.mgrid[:size, :size]
    board = (y // (label + 1) + x // (label + 1)) % 2 == 0
    imgs[:, board] += 140
    return imgs if channels > 1 else imgs[..., 0]


def make_image_folder(root: Path, classes=("ant", "bee", "cat"), train=16, test=6, size=32, channels=3) -> Path:
    """``<root>/{train,test}/<class>/*.png`` with ``train`` / ``test`` images per class."""
    for split, n in (("train", train), ("test", test)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(pattern_images(n, c, size, channels, seed=(0 if split == "train" else 1000) + c)):
                Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("imgfolder"))


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fashion")
    for split, n in (("train", 12), ("t10k", 5)):
        labels = np.repeat(np.arange(4), n)
        images = np.concatenate([pattern_images(n, c, 28, 1, seed=c) for c in range(4)])
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return root
