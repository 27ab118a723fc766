"""Dataset loaders on data made inside the tests; normalisation constants; clear errors when data is missing."""

import importlib.util
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch

from s2tdpt.data import NORMALIZATION, DatasetNotFound, build_datasets, default_normalization
from s2tdpt.data.digits import DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, load_digits_arrays, load_digits_split
from s2tdpt.data.idx import read_idx, write_idx
from s2tdpt.data.loaders import build_loaders
from s2tdpt.engine.config import TrainConfig


def test_digits_split_is_fixed_and_stratified():
    x_tr, x_te, y_tr, y_te = load_digits_split()
    assert x_tr.shape == (1437, 8, 8) and x_te.shape == (360, 8, 8) and x_tr.dtype == np.uint8
    assert np.bincount(y_te).min() >= 35 and np.bincount(y_te).max() <= 37  # stratified: ~36 per class
    again = load_digits_split()
    assert np.array_equal(again[1], x_te) and np.array_equal(again[3], y_te)


def test_digits_are_scikit_learns_images_in_scikit_learns_split():
    # the quick start reads scikit-learn's file and stores the split, so that it never imports scikit-learn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images, labels = load_digits_arrays()
    assert np.array_equal(images, d.images) and np.array_equal(labels, d.target) and labels.dtype == np.int64
    train, test = train_test_split(
        np.arange(len(d.target)), test_size=DIGITS_TEST_FRACTION, stratify=d.target, random_state=DIGITS_SPLIT_SEED
    )
    x_tr, x_te, y_tr, y_te = load_digits_split()
    for part, x, y in ((np.sort(train), x_tr, y_tr), (np.sort(test), x_te, y_te)):
        assert np.array_equal(x, np.round(d.images[part] * (255 / 16)).astype(np.uint8))
        assert np.array_equal(y, d.target[part])


def test_digits_fall_back_to_scikit_learns_loader_when_its_file_is_elsewhere(monkeypatch):
    images, labels = load_digits_arrays()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    again = load_digits_arrays()
    assert np.array_equal(again[0], images) and np.array_equal(again[1], labels) and again[1].dtype == np.int64


def test_the_quick_start_data_do_not_import_scikit_learn():
    code = (
        "import sys; from s2tdpt.data import build_datasets; train, test, info = build_datasets('digits', None); "
        "assert len(train) == 1437 and len(test) == 360; print(sorted({'sklearn', 'scipy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_digits_constants_match_the_training_split():
    x_tr = load_digits_split()[0] / 255.0
    mean, std = NORMALIZATION["digits"]
    assert mean[0] == pytest.approx(x_tr.mean(), abs=5e-4)
    assert std[0] == pytest.approx(x_tr.std(), abs=5e-4)


def test_image_folder(image_folder):
    train, test, info = build_datasets("imagefolder", str(image_folder))
    assert (info.num_classes, info.in_chans, info.img_size) == (3, 3, 32)
    assert info.class_names == ("ant", "bee", "cat")
    assert len(train) == 48 and len(test) == 18
    img, label = train[17]
    assert img.size == (32, 32) and label == 1
    mean, std = default_normalization("imagefolder", train)
    assert len(mean) == 3 and all(0 < m < 1 for m in mean) and all(s > 0 for s in std)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetNotFound, match="needs --data-dir"):
        build_datasets("imagefolder", None)
    with pytest.raises(DatasetNotFound, match="no 'train' subfolder"):
        build_datasets("imagefolder", str(tmp_path))


def test_fashion_mnist_idx(fashion_dir):
    train, test, info = build_datasets("fashion_mnist", str(fashion_dir), download=False)
    assert (info.num_classes, info.in_chans, info.img_size) == (10, 1, 28)
    assert len(train) == 48 and len(test) == 20
    img, label = test[7]
    assert img.size == (28, 28) and img.mode == "L" and label == 1


def test_fashion_mnist_missing_is_explained(tmp_path):
    with pytest.raises(DatasetNotFound, match="dataset-fashion-mnist"):
        build_datasets("fashion_mnist", str(tmp_path), download=False)


def test_idx_round_trip_and_truncation(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", a)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), a)
    (tmp_path / "b.idx").write_bytes((tmp_path / "a.idx").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "b.idx")
    (tmp_path / "c.idx").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "c.idx")


def _fake_cifar(root, n_per_batch=6):
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 255, size=(n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": list(range(n_per_batch))}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def test_cifar10_from_disk(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    _fake_cifar(tmp_path)
    # our fake files have other checksums than the real release
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    train, test, info = build_datasets("cifar10", str(tmp_path), download=False)
    assert (info.num_classes, info.in_chans, info.img_size) == (10, 3, 32)
    assert len(train) == 30 and len(test) == 6
    img, label = test[3]
    assert img.size == (32, 32) and label == 3


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_offline_error_tells_how_to_get_the_data(tmp_path, monkeypatch, name):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(DatasetNotFound, match=r"(?s)could not be downloaded.*Download https.*cifar-.*extract it into"):
        build_datasets(name, str(tmp_path), download=True)
    with pytest.raises(DatasetNotFound, match="download is off"):
        build_datasets(name, str(tmp_path), download=False)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        build_datasets("mnist")


def test_loaders_normalise_and_shard(image_folder):
    cfg = TrainConfig(dataset="imagefolder", data_dir=str(image_folder), batch_size=8, mean="cifar10", std="cifar10")
    data = build_loaders(cfg)
    images, labels = next(iter(data.test_loader))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert data.mean == NORMALIZATION["cifar10"][0]
    assert len(data.train_loader) == 48 // 8
    shard0 = build_loaders(cfg, rank=0, world_size=2)
    shard1 = build_loaders(cfg, rank=1, world_size=2)
    assert len(shard0.test_loader.dataset) + len(shard1.test_loader.dataset) == 18  # no padding, no overlap


def test_training_transforms_use_timm_augmentations(image_folder):
    cfg = TrainConfig(
        dataset="imagefolder", data_dir=str(image_folder), batch_size=8, aa="rand-m9-n1-mstd0.4-inc1", hflip=0.5,
        reprob=0.25,
    )  # fmt: skip
    data = build_loaders(cfg)
    names = [type(t).__name__ for t in data.train_loader.dataset.transform.transforms]
    assert names == ["RandomHorizontalFlip", "RandAugment", "ToTensor", "Normalize", "RandomErasing"]
    images, _ = next(iter(data.train_loader))
    assert images.shape == (8, 3, 32, 32)


def test_paper_randaugment_survives_a_zero_bit_posterize():
    # rand-m9-n1-mstd0.4-inc1 reaches magnitude 10 now and then; timm's PosterizeIncreasing then keeps 0 bits,
    # which Pillow >= 13 refuses: it must give the black image older Pillow gave, not stop the training run
    from PIL import Image
    from timm.data.auto_augment import AugmentOp

    from s2tdpt.data.transforms import build_transform

    build_transform(train=True, img_size=32, native_size=32, mean=(0.5,) * 3, std=(0.5,) * 3,
                    aa="rand-m9-n1-mstd0.4-inc1")  # fmt: skip
    img = Image.new("RGB", (8, 8), (200, 100, 50))
    assert AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)(img).getextrema() == ((0, 0),) * 3
    assert AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=0)(img).getpixel((0, 0)) == (192, 96, 48)  # 4 bits
