"""Recorded event datasets through ``tonic``: CIFAR10-DVS, DVS128 Gesture and N-MNIST, as cached frames.

``tonic`` (GPLv3) is an optional extra: ``pip install -e ".[events]"``; it is imported only when one of these
datasets is built. Recordings become frames ``[T, 2, S, S]`` as for every event dataset (:mod:`.frames`:
``split_by`` number or time, optional ``size``, cached on disk under ``<root>/.frames``).

Splits: DVS128 Gesture and N-MNIST have official train/test splits. CIFAR10-DVS has none; ``split`` chooses:

* ``"first90"`` (default): per class, the first 90 % of the recordings (in file-number order) train and the last
  10 % test — the convention of Spikformer, Spikingformer and QKFormer (SpikingJelly's ``split_to_train_test_set``
  with ``random_split=False``);
* ``"first100test"``: per class, recordings 0–99 test and the rest train — the TEBN / PSN convention;
* ``"random"``: a per-class 90/10 split drawn with ``split_seed``.
"""

from __future__ import annotations

import math
import re
from functools import partial
from pathlib import Path

import numpy as np

from .datasets import DatasetNotFound
from .frames import FrameDataset, fingerprint, frames_key
from .registry import DatasetInfo, register_dataset

CIFAR10DVS_SPLITS = ("first90", "first100test", "random")
# where each archive comes from (tonic's download addresses) and the folder tonic expects it in
ARCHIVES = {
    "CIFAR10DVS": ("https://figshare.com/ndownloader/files/38023437", "CIFAR10DVS.zip"),
    "DVSGesture": (
        "https://figshare.com/ndownloader/files/38022171 (train), .../38020584 (test)",
        "ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz",
    ),  # fmt: skip
    "NMNIST": ("https://data.mendeley.com/datasets/468j46mzdv", "train.zip and test.zip"),
}


def _tonic():
    try:
        import tonic
    except ImportError as e:
        raise ImportError(
            "the recorded event datasets (cifar10dvs, dvs128gesture, nmnist) are read with tonic, which is not "
            'installed: pip install -e ".[events]" (tonic is GPLv3, so it is an optional extra). Your own '
            "recordings need no tonic: --dataset eventfolder"
        ) from e
    return tonic


def _open(cls_name: str, root: str | None, download: bool, **kwargs):
    """A tonic dataset from ``<root>/<cls_name>``; missing and not downloadable: where to get it and put it."""
    root = root or "data"
    folder = Path(root).expanduser() / cls_name
    url, files = ARCHIVES[cls_name]
    if not download and not folder.is_dir():
        raise DatasetNotFound(
            f"{cls_name} is not in '{folder}' (download is off). Get {files} from {url}, put the archive(s) in "
            f"'{folder}' (tonic extracts them there), then pass --data-dir {root}"
        )
    try:
        return getattr(_tonic().datasets, cls_name)(save_to=str(root), **kwargs)
    except ImportError:
        raise
    except Exception as e:  # offline download (URLError, socket errors), a damaged archive
        raise DatasetNotFound(
            f"{cls_name} is not in '{folder}' and could not be downloaded: {e}.\nGet {files} from {url}, put the "
            f"archive(s) in '{folder}' (tonic extracts them there), then pass --data-dir {root}"
        ) from e


def _number(path: str) -> int:
    """The recording's number in its file name (``cifar10_cat_17.aedat4`` → 17), -1 if none."""
    found = re.findall(r"\d+", Path(path).stem)
    return int(found[-1]) if found else -1


def split_indices(
    labels: np.ndarray, numbers: np.ndarray, split: str = "first90", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices of a dataset without an official split, per class (see the module docstring)."""
    if split not in CIFAR10DVS_SPLITS:
        raise ValueError(f"split must be one of {CIFAR10DVS_SPLITS}, got {split!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.argsort(numbers[idx], kind="stable")]  # file-number order, not the file system's
        if split == "first100test":
            test.append(idx[:100])
            train.append(idx[100:])
            continue
        if split == "random":
            idx = rng.permutation(idx)
        n_train = math.ceil(0.9 * len(idx))  # as SpikingJelly's split_to_train_test_set
        train.append(idx[:n_train])
        test.append(idx[n_train:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _events_of(source, indices: np.ndarray, i: int) -> np.ndarray:
    return source[int(indices[i])][0]


def _frames(source, indices, labels, sensor, timesteps, split_by, size, cache: Path) -> FrameDataset:
    """The recordings ``indices`` of a tonic dataset as a :class:`FrameDataset` (tonic yields ``(events, label)``)."""

    load = partial(_events_of, source, indices)  # picklable, for data-loading workers started by spawn
    frames = FrameDataset(load, labels[indices], sensor, timesteps, split_by, size, cache)
    frames.source_indices = np.asarray(indices)  # which recordings of the tonic dataset this split holds
    return frames


def _info(name: str, classes, sensor, timesteps: int, size: int | None) -> DatasetInfo:
    return DatasetInfo(name, len(classes), 2, size or sensor[0], tuple(classes), layout="frames",
                       timesteps=timesteps, sensor_size=sensor)  # fmt: skip


def _cache(root: str | None, cache_dir: str | None) -> Path:
    return Path(cache_dir) if cache_dir else Path(root or "data").expanduser() / ".frames"


@register_dataset("cifar10dvs")
def build_cifar10dvs(
    root: str | None,
    download: bool,
    timesteps: int = 10,
    split_by: str = "number",
    size: int | None = None,
    split: str = "first90",
    split_seed: int = 0,
    cache_dir: str | None = None,
):
    if split not in CIFAR10DVS_SPLITS:  # checked before anything is read
        raise ValueError(f"cifar10dvs split must be one of {CIFAR10DVS_SPLITS}, got {split!r}")
    ds = _open("CIFAR10DVS", root, download)
    labels = np.asarray(ds.targets, dtype=np.int64)
    numbers = np.array([_number(p) for p in ds.data])
    train_idx, test_idx = split_indices(labels, numbers, split, split_seed)
    sensor = tuple(ds.sensor_size[:2])
    extra = f"{split}{split_seed if split == 'random' else ''}"
    key = frames_key(f"cifar10dvs-{extra}", timesteps, split_by, size, fingerprint(ds.data[:1] + ds.data[-1:]))
    cache = _cache(root, cache_dir) / key
    classes = sorted(ds.classes, key=ds.classes.get)
    print(f"cifar10dvs: split {split!r}, {len(train_idx)} train / {len(test_idx)} test recordings", flush=True)
    train = _frames(ds, train_idx, labels, sensor, timesteps, split_by, size, cache / "train")
    test = _frames(ds, test_idx, labels, sensor, timesteps, split_by, size, cache / "test")
    return train, test, _info("cifar10dvs", classes, sensor, timesteps, size)


def _official(cls_name: str, name: str, root, download, timesteps, split_by, size, cache_dir):
    splits = [_open(cls_name, root, download, train=flag) for flag in (True, False)]
    sensor = tuple(splits[0].sensor_size[:2])
    key = frames_key(name, timesteps, split_by, size, fingerprint(splits[0].data[:1] + splits[1].data[:1]))
    cache = _cache(root, cache_dir) / key
    out = []
    for split, ds in zip(("train", "test"), splits, strict=True):
        labels = np.asarray(ds.targets, dtype=np.int64)
        out.append(_frames(ds, np.arange(len(labels)), labels, sensor, timesteps, split_by, size, cache / split))
    return out[0], out[1], _info(name, list(splits[0].classes), sensor, timesteps, size)


@register_dataset("dvs128gesture")
def build_dvs128gesture(
    root: str | None,
    download: bool,
    timesteps: int = 16,
    split_by: str = "number",
    size: int | None = None,
    cache_dir: str | None = None,
):
    return _official("DVSGesture", "dvs128gesture", root, download, timesteps, split_by, size, cache_dir)


@register_dataset("nmnist")
def build_nmnist(
    root: str | None,
    download: bool,
    timesteps: int = 10,
    split_by: str = "number",
    size: int | None = None,
    cache_dir: str | None = None,
):
    return _official("NMNIST", "nmnist", root, download, timesteps, split_by, size, cache_dir)
