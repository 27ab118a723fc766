"""Your own recordings: ``<root>/{train,test}/<class>/*.npy|*.npz`` of structured event arrays (t, x, y, p).

Each file holds one recording: a ``.npy`` structured array with fields ``t``, ``x``, ``y``, ``p``, or a ``.npz``
whose first array is one (e.g. ``np.savez(path, events=ev)``). The sensor size ``(W, H)`` is ``sensor_size`` if
given, else ``<root>/sensor_size.json`` (``[W, H]``) if present, else read from the data (largest x and y over all
recordings, + 1). Frames are made and cached as for every
event dataset (:mod:`.frames`): ``--dataset-kwargs "{timesteps: 16, split_by: number, size: 64}"``.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from .datasets import DatasetNotFound
from .events import check_events
from .frames import FrameDataset, fingerprint, frames_key
from .registry import DatasetInfo, register_dataset

EXTENSIONS = (".npy", ".npz")
SENSOR_FILE = "sensor_size.json"


def load_events(path: str | Path) -> np.ndarray:
    """The structured event array of one ``.npy`` / ``.npz`` file; a clear error naming the file otherwise."""
    try:
        data = np.load(path, allow_pickle=False)
        events = data[data.files[0]] if isinstance(data, np.lib.npyio.NpzFile) else data
        check_events(events)
    except (OSError, ValueError, IndexError) as e:
        raise ValueError(f"cannot read events from {path}: {e}") from e
    return events


def _load_nth(files: list[Path], i: int) -> np.ndarray:
    return load_events(files[i])


def _samples(folder: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    files = [
        (p, label)
        for label, cls in enumerate(classes)
        if (folder / cls).is_dir()
        for p in sorted((folder / cls).iterdir())
        if p.suffix in EXTENSIONS
    ]
    return [p for p, _ in files], [label for _, label in files]


@register_dataset("eventfolder")
def build_eventfolder(
    root: str | None,
    download: bool,
    timesteps: int = 16,
    split_by: str = "number",
    size: int | None = None,
    sensor_size: tuple[int, int] | None = None,
    cache_dir: str | None = None,
):
    if not root:
        raise DatasetNotFound("--dataset eventfolder needs --data-dir pointing at a folder with train/ and test/")
    base = Path(root)
    for split in ("train", "test"):
        if not (base / split).is_dir():
            raise DatasetNotFound(
                f"event folder '{base}' has no '{split}' subfolder; expected <root>/{split}/<class>/*.npy (or .npz)"
            )
    classes = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    splits = {s: _samples(base / s, classes) for s in ("train", "test")}
    for split, (files, _) in splits.items():
        if not files:
            raise DatasetNotFound(f"no event files ({', '.join(EXTENSIONS)}) under '{base / split}/<class>/'")
    if sensor_size is None and (base / SENSOR_FILE).exists():
        sensor_size = tuple(json.loads((base / SENSOR_FILE).read_text()))
    if sensor_size is None:
        w = h = 0
        for p in splits["train"][0] + splits["test"][0]:
            ev = load_events(p)
            if len(ev):
                w, h = max(w, int(ev["x"].max()) + 1), max(h, int(ev["y"].max()) + 1)
        sensor_size = (w, h)
    sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
    side = size or sensor_size[0]
    if size is None and sensor_size[0] != sensor_size[1]:
        raise ValueError(f"the sensor is {sensor_size[0]} × {sensor_size[1]}; give a square frame size (size: N)")
    all_files = splits["train"][0] + splits["test"][0]
    key = frames_key("eventfolder", timesteps, split_by, size, fingerprint(all_files))
    cache = Path(cache_dir) if cache_dir else base / ".frames"
    datasets = [  # partial, not a lambda: data-loading workers started by spawn must pickle the dataset
        FrameDataset(partial(_load_nth, files), labels, sensor_size, timesteps, split_by, size, cache / key / split)
        for split, (files, labels) in splits.items()
    ]
    info = DatasetInfo(
        f"eventfolder:{base.name}", len(classes), 2, side, tuple(classes), layout="frames", timesteps=timesteps,
        sensor_size=sensor_size,
    )  # fmt: skip
    return datasets[0], datasets[1], info
