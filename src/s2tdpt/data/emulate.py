"""Emulated events: an image moved along a saccade path, seen by an idealised event camera.

This is how the converted neuromorphic datasets were recorded — N-MNIST by moving a sensor in three saccades
along a triangle in front of still digits (Orchard et al., Front. Neurosci. 2015), CIFAR10-DVS by moving images on
a monitor in front of a sensor (Li et al., Front. Neurosci. 2017) — done here in software, so that users can make
event versions of their own image sets and test event pipelines without a recording. It is an emulation: no
sensor noise, refractory period, bandwidth limit or monitor flicker, so a result on emulated events is never a
figure for the recorded datasets.

Model (per pixel): log intensity ``L = log(I + ε)``, a reference level ``R`` starting at the first view's ``L``;
at each step of the path, ``n = ⌊|L − R| / C⌋`` events of polarity ``sign(L − R)`` are emitted and ``R`` moves
by ``n · C`` towards ``L`` (the contrast-threshold model of DVS emulators such as v2e and ESIM, without their
noise terms). Events of step s get timestamps inside ``[s · dt, (s + 1) · dt)``, spread evenly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .eventfolder import SENSOR_FILE
from .events import EVENT_FIELDS

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])
assert EVENT_DTYPE.names == EVENT_FIELDS


def events_from_log_intensity(log_i: np.ndarray, threshold: float = 0.2, dt: int = 1000) -> np.ndarray:
    """Events of a sequence of log-intensity views ``[S, H, W]`` (view 0 sets the reference), time-sorted."""
    if threshold <= 0:
        raise ValueError(f"the contrast threshold must be > 0, got {threshold}")
    log_i = np.asarray(log_i, dtype=np.float64)
    if log_i.ndim != 3:
        raise ValueError(f"log intensities must be [steps, H, W], got shape {log_i.shape}")
    ref = log_i[0].copy()
    chunks = []
    for s in range(1, log_i.shape[0]):
        diff = log_i[s] - ref
        n = np.floor(np.abs(diff) / threshold).astype(np.int64)  # events per pixel this step
        ref += np.sign(diff) * n * threshold
        ys, xs = np.nonzero(n)
        if not len(ys):
            continue
        counts = n[ys, xs]
        ev = np.zeros(int(counts.sum()), dtype=EVENT_DTYPE)
        ev["y"], ev["x"] = np.repeat(ys, counts), np.repeat(xs, counts)
        ev["p"] = np.repeat((diff[ys, xs] > 0).astype(np.int8), counts)
        # k-th event of a pixel that fires n times this step: at s·dt + k·dt / n
        k = np.arange(len(ev)) - np.repeat(np.cumsum(counts) - counts, counts)
        ev["t"] = s * dt + (k * dt) // np.repeat(counts, counts)
        chunks.append(ev)
    events = np.concatenate(chunks) if chunks else np.zeros(0, dtype=EVENT_DTYPE)
    return events[np.argsort(events["t"], kind="stable")]


def saccade_path(amplitude: float = 2.0, steps_per_saccade: int = 10) -> np.ndarray:
    """``[3·steps + 1, 2]`` (dx, dy) offsets in pixels: three straight saccades around a triangle, back to start."""
    corners = amplitude * np.array([[0.0, 0.0], [1.0, 0.5], [0.0, 1.0], [0.0, 0.0]])
    path = [corners[0]]
    for a, b in zip(corners[:-1], corners[1:], strict=True):
        for j in range(1, steps_per_saccade + 1):
            path.append(a + (b - a) * j / steps_per_saccade)
    return np.stack(path)


def shifted_views(image: np.ndarray, path: np.ndarray) -> np.ndarray:
    """``image`` ``[H, W]`` seen at each sub-pixel offset of ``path``: ``[S, H, W]`` (bilinear, edges repeated)."""
    h, w = image.shape
    img = torch.as_tensor(image, dtype=torch.float32)[None, None].expand(len(path), 1, h, w)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    offsets = torch.as_tensor(path, dtype=torch.float32)
    # sample the scene at (x − dx, y − dy): the image moves by (dx, dy); grid_sample wants [-1, 1] coordinates
    gx = (xs[None] - offsets[:, 0, None, None]) * 2 / max(w - 1, 1) - 1
    gy = (ys[None] - offsets[:, 1, None, None]) * 2 / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], dim=-1)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, 0].numpy()


def emulate_events(
    image: np.ndarray,
    threshold: float = 0.2,
    amplitude: float = 2.0,
    steps_per_saccade: int = 10,
    dt: int = 1000,
    eps: float = 1e-2,
) -> np.ndarray:
    """Events (fields t, x, y, p; sensor ``(W, H)`` of the image) of ``image`` moved along :func:`saccade_path`.

    Args:
        image: ``[H, W]`` grey or ``[H, W, 3]`` RGB, uint8 (0..255) or float (0..1); RGB is reduced to luminance.
        threshold: contrast threshold C in log intensity (0.2 is typical of DVS sensors).
        amplitude: size of the saccade triangle in pixels.
        steps_per_saccade: views per saccade.
        dt: microseconds per view.
        eps: added to intensities before the log, so black pixels stay finite.
    """
    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma
    if img.ndim != 2:
        raise ValueError(f"image must be [H, W] or [H, W, 3], got shape {np.asarray(image).shape}")
    if not math.isfinite(float(img.min())) or img.min() < 0 or img.max() > 1:
        raise ValueError("a float image must hold intensities in [0, 1] (or pass uint8 0..255)")
    views = shifted_views(img, saccade_path(amplitude, steps_per_saccade))
    return events_from_log_intensity(np.log(views + eps), threshold, dt)


def write_event_folder(
    dataset: str,
    out: str | Path,
    data_dir: str | None = None,
    limit: int | None = None,
    download: bool = True,
    **emulator: float,
) -> Path:
    """Write an emulated event version of a registered image dataset as an ``eventfolder``:
    ``<out>/{train,test}/<class>/<index>.npy``, one recording per image (with ``limit``, the first ``limit``
    images of each class in each split).

    Files are written under temporary names and renamed, and an existing recording is kept, so an interrupted
    run can be started again. Returns ``out``.
    """
    from .registry import build_datasets

    train, test, info = build_datasets(dataset, data_dir, download)
    if info.layout != "image":
        raise ValueError(f"{dataset} already holds events (layout {info.layout!r}); emulation needs images")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    h, w = np.asarray(train[0][0]).shape[:2]
    (out / SENSOR_FILE).write_text(json.dumps([w, h]))  # the sensor is the image: edges may see no event
    for split, ds in (("train", train), ("test", test)):
        labels = np.asarray(ds.labels)  # the builders' datasets keep their labels
        picked = [i for c in np.unique(labels) for i in np.flatnonzero(labels == c)[:limit]]
        for i in sorted(picked):
            image, label = ds[int(i)]
            path = out / split / info.class_names[label].replace("/", "-") / f"{i:06d}.npy"
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, emulate_events(np.asarray(image), **emulator))
            tmp.replace(path)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m s2tdpt.data.emulate DATASET OUT [--data-dir D] [--limit N] [--threshold C]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m s2tdpt.data.emulate", description=write_event_folder.__doc__)
    ap.add_argument("dataset", help="a registered image dataset, e.g. fashion_mnist or imagefolder")
    ap.add_argument("out", help="folder to write <out>/{train,test}/<class>/*.npy into")
    ap.add_argument("--data-dir", help="the image dataset's folder")
    ap.add_argument("--limit", type=int, help="recordings per class and split (the first ones; default: all)")
    ap.add_argument("--threshold", type=float, default=0.2, help="contrast threshold C (default 0.2)")
    ap.add_argument("--amplitude", type=float, default=2.0, help="saccade size in pixels (default 2)")
    args = ap.parse_args(argv)
    path = write_event_folder(args.dataset, args.out, args.data_dir, args.limit, threshold=args.threshold,
                              amplitude=args.amplitude)  # fmt: skip
    print(f"wrote emulated events to {path} (train with --dataset eventfolder --data-dir {path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
