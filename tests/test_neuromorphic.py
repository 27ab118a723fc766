"""CIFAR10-DVS, DVS128 Gesture and N-MNIST wrappers on a fake tonic (tonic itself is optional and GPLv3): splits,
frames, and the errors when tonic or the data is missing. With tonic installed, its own classes are checked too."""

from __future__ import annotations

import sys
import types
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from s2tdpt.data import build_datasets
from s2tdpt.data.datasets import DatasetNotFound
from s2tdpt.data.events import to_frames
from s2tdpt.data.neuromorphic import split_indices

DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])


def _events(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    ev = np.zeros(50 + i % 7, dtype=DTYPE)
    ev["t"] = np.sort(rng.integers(0, 1000, len(ev)))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 8, len(ev)), rng.integers(0, 8, len(ev)), rng.integers(0, 2, len(ev))
    return ev


class FakeTonicDataset:
    """tonic's interface as these wrappers use it: ``data`` (file paths), ``targets``, ``classes``,
    ``sensor_size`` and ``(events, target)`` items; files listed in a scrambled order, as ``os.walk`` may."""

    sensor_size = (8, 8, 2)
    per_class = 20
    classes: dict | list = {"airplane": 0, "automobile": 1}

    def __init__(self, save_to: str, train: bool | None = None) -> None:
        folder = Path(save_to) / type(self).__name__ / ("" if train is None else ("train" if train else "test"))
        names = list(self.classes) if isinstance(self.classes, dict) else self.classes
        self.data, self.targets = [], []
        for label, cls in enumerate(names):
            (folder / cls).mkdir(parents=True, exist_ok=True)
            for k in np.random.default_rng(label).permutation(self.per_class):
                path = folder / cls / f"{cls}_{k}.aedat4"
                path.touch()
                self.data.append(str(path))
                self.targets.append(label)

    def __getitem__(self, i: int):
        return sys.modules[__name__]._events(i), self.targets[i]  # looked up per call: a test may swap it

    def __len__(self) -> int:
        return len(self.data)


@pytest.fixture
def fake_tonic(monkeypatch):
    classes = {
        "CIFAR10DVS": type("CIFAR10DVS", (FakeTonicDataset,), {}),
        "DVSGesture": type("DVSGesture", (FakeTonicDataset,), {"classes": ["clap", "wave", "other"], "per_class": 3}),
        "NMNIST": type("NMNIST", (FakeTonicDataset,), {"classes": [str(d) for d in range(10)], "per_class": 2}),
    }
    module = types.SimpleNamespace(datasets=types.SimpleNamespace(**classes))
    monkeypatch.setitem(sys.modules, "tonic", module)
    return classes


def _numbers(ds) -> list[int]:
    return [int(Path(p).stem.rsplit("_", 1)[1]) for p in ds]


def test_cifar10dvs_first90_takes_the_first_files_of_each_class_by_number(fake_tonic, tmp_path):
    train, test, info = build_datasets("cifar10dvs", str(tmp_path), timesteps=4)
    assert (info.layout, info.timesteps, info.in_chans, info.img_size, info.sensor_size) == ("frames", 4, 2, 8, (8, 8))
    assert info.class_names == ("airplane", "automobile") and (len(train), len(test)) == (36, 4)
    src = fake_tonic["CIFAR10DVS"](str(tmp_path))
    # the test recordings are numbers 18 and 19 of each class, whatever order the files were listed in
    test_files = [src.data[int(i)] for i in test.source_indices.tolist()]
    assert sorted(_numbers(test_files)) == [18, 18, 19, 19]
    x, label = test[0]
    i = test.source_indices.tolist()[0]
    np.testing.assert_array_equal(x.numpy(), to_frames(_events(int(i)), (8, 8), 4))
    assert label == src.targets[int(i)]


@pytest.mark.parametrize("split", ["first90", "first100test", "random"])
def test_splits_are_disjoint_complete_and_stable(split):
    labels = np.repeat(np.arange(3), 120)
    numbers = np.concatenate([np.random.default_rng(c).permutation(120) for c in range(3)])
    train, test = split_indices(labels, numbers, split, seed=1)
    assert not set(train) & set(test) and len(train) + len(test) == 360
    again = split_indices(labels, numbers, split, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    for c in range(3):
        n_test = (labels[test] == c).sum()
        assert n_test == (100 if split == "first100test" else 12)
    if split == "first100test":  # recordings 0..99 of each class
        assert sorted(set(numbers[test].tolist())) == list(range(100))
    if split == "first90":
        assert sorted(set(numbers[test].tolist())) == list(range(108, 120))
    if split == "random":
        assert not np.array_equal(test, split_indices(labels, numbers, split, seed=2)[1])


def test_official_splits_and_sensor_sizes(fake_tonic, tmp_path):
    train, test, info = build_datasets("dvs128gesture", str(tmp_path), timesteps=2)
    assert (len(train), len(test), info.num_classes, info.timesteps) == (9, 9, 3, 2)
    train, test, info = build_datasets("nmnist", str(tmp_path), timesteps=3, size=4)
    assert info.num_classes == 10 and train[0][0].shape == (3, 2, 4, 4)


def test_missing_tonic_and_missing_data_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tonic", None)  # "not installed"
    with pytest.raises(ImportError, match=r'pip install -e "\.\[events\]".*GPLv3'):
        build_datasets("cifar10dvs", str(tmp_path))
    with pytest.raises(DatasetNotFound, match=r"CIFAR10DVS is not in .*download is off.*CIFAR10DVS\.zip"):
        build_datasets("cifar10dvs", str(tmp_path), download=False)

    class Offline:
        def __init__(self, **kw):
            raise urllib.error.URLError("no route to host")

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(DVSGesture=Offline))
    monkeypatch.setitem(sys.modules, "tonic", fake)
    with pytest.raises(
        DatasetNotFound, match=r"(?s)could not be downloaded.*no route to host.*ibmGestureTrain\.tar\.gz"
    ):
        build_datasets("dvs128gesture", str(tmp_path))
    with pytest.raises(ValueError, match="split must be one of"):
        build_datasets("cifar10dvs", str(tmp_path), split="last10")


def test_the_real_tonic_classes_offer_what_the_wrappers_use():
    tonic = pytest.importorskip("tonic")
    for name, sensor in (("CIFAR10DVS", (128, 128)), ("DVSGesture", (128, 128)), ("NMNIST", (34, 34))):
        cls = getattr(tonic.datasets, name)
        assert tuple(cls.sensor_size[:2]) == sensor and len(cls.classes) in (10, 11)


@pytest.mark.parametrize("recipe", ["cifar10dvs_s2tdpt_2_256.yaml", "dvs128gesture_s2tdpt_2_256.yaml"])
def test_event_recipes_run_a_few_steps_on_synthetic_recordings(fake_tonic, tmp_path, recipe, monkeypatch):
    # the recipe's data (T = 16 frames of a 128 × 128 sensor, pooled at all four tokenizer stages to 8 × 8 tokens),
    # schedule and augmentation, with the tiny model in place of 2-256 so that it stays fast
    from s2tdpt.cli import main

    for cls in fake_tonic.values():
        monkeypatch.setattr(cls, "sensor_size", (128, 128, 2))
    monkeypatch.setattr(sys.modules[__name__], "_events", _wide_events)
    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    argv = ["train", "-c", str(repo / "configs" / recipe), "--data-dir", str(tmp_path / "data"), "--model",
            "s2tdpt_tiny", "--epochs", "2", "--warmup-epochs", "1", "--cooldown-epochs", "0", "--batch-size", "2",
            "--limit-train", "4", "--limit-test", "2", "--lif-backend", "fused", "--compile", "off", "--amp", "none",
            "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    model_cfg = __import__("torch").load(run / "last.pt", weights_only=False)["model_config"]
    assert (model_cfg["timesteps"], model_cfg["img_size"], model_cfg["in_chans"]) == (16, 128, 2)


def _wide_events(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    ev = np.zeros(400, dtype=DTYPE)
    ev["t"] = np.sort(rng.integers(0, 10_000, len(ev)))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 128, 400), rng.integers(0, 128, 400), rng.integers(0, 2, 400)
    return ev
