"""Event streams to frames: ``[T, 2, H, W]`` spike counts per time slice and polarity.

An event camera emits events ``(t, x, y, p)``: a timestamp, a pixel and a polarity (ON = brightness up, OFF =
down). A spiking model reads them as T frames, each the number of events per pixel and polarity that fall in one
slice of the recording:

* ``split_by="number"`` (default; SpikingJelly's convention, used by Spikformer, Spikingformer and QKFormer):
  T slices holding an equal number of events, ``⌊N / T⌋`` each, the remainder in the last slice;
* ``split_by="time"``: T slices of equal duration over ``[t_first, t_last]``; slice i holds the events with
  ``t_first + i·Δ ≤ t < t_first + (i + 1)·Δ`` and the last slice also those at ``t_last``.

Channel 0 counts OFF events (``p ≤ 0``: tonic and SpikingJelly store polarity as 0/1, some recordings as −1/+1)
and channel 1 ON events (``p > 0``). :func:`resize_frames` shrinks frames by area averaging, which keeps the mean
count per pixel (for an integer factor k it is the mean of each k × k block).

Events are numpy structured arrays with fields ``t``, ``x``, ``y``, ``p`` (tonic's layout; other fields are
ignored), sorted by time or not (they are sorted here, stably).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EVENT_FIELDS = ("t", "x", "y", "p")
SPLITS = ("number", "time")


def check_events(events: np.ndarray, sensor_size: tuple[int, int] | None = None) -> None:
    """Raise ``ValueError`` unless ``events`` is a structured array with fields t, x, y, p inside ``(W, H)``."""
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    missing = [f for f in EVENT_FIELDS if f not in names]
    if missing:
        raise ValueError(
            f"events must be a numpy structured array with fields {EVENT_FIELDS}; got "
            f"{type(events).__name__} with fields {tuple(names)} (missing {missing})"
        )
    if len(events) and sensor_size is not None:
        w, h = sensor_size
        for field, size in (("x", w), ("y", h)):
            lo, hi = int(events[field].min()), int(events[field].max())
            if lo < 0 or hi >= size:
                raise ValueError(
                    f"event {field} coordinates span {lo}..{hi} but the sensor is {w} × {h} (W × H): give the "
                    f"recording's sensor size"
                )


def sensor_size_of(events: np.ndarray) -> tuple[int, int]:
    """The smallest sensor ``(W, H)`` that holds every event: max x + 1, max y + 1."""
    check_events(events)
    if not len(events):
        raise ValueError("cannot read a sensor size from an empty recording; give it explicitly")
    return int(events["x"].max()) + 1, int(events["y"].max()) + 1


def slice_bounds(t: np.ndarray, n_frames: int, split_by: str = "number") -> list[tuple[int, int]]:
    """``[start, stop)`` indices of each frame's events in time-sorted timestamps ``t``."""
    if split_by not in SPLITS:
        raise ValueError(f"split_by must be one of {SPLITS}, got {split_by!r}")
    if n_frames < 1:
        raise ValueError(f"the number of frames (T) must be at least 1, got {n_frames}")
    n = len(t)
    if split_by == "number":
        per = n // n_frames
        starts = [i * per for i in range(n_frames)]
    else:
        t0, t1 = (float(t[0]), float(t[-1])) if n else (0.0, 0.0)
        edges = t0 + (t1 - t0) * np.arange(1, n_frames) / n_frames
        starts = [0, *np.searchsorted(t, edges, side="left").tolist()]
    stops = [*starts[1:], n]
    return list(zip(starts, stops, strict=True))


def to_frames(events: np.ndarray, sensor_size: tuple[int, int], n_frames: int, split_by: str = "number") -> np.ndarray:
    """Integrate ``events`` into ``n_frames`` frames ``[T, 2, H, W]`` (float32 counts) on a ``(W, H)`` sensor."""
    check_events(events, sensor_size)
    w, h = sensor_size
    order = np.argsort(events["t"], kind="stable")
    ev = events[order]
    # one flat bin per (polarity, y, x)
    flat = ((ev["p"] > 0).astype(np.int64) * h + ev["y"].astype(np.int64)) * w + ev["x"].astype(np.int64)
    frames = np.zeros((n_frames, 2 * h * w), dtype=np.float32)
    for i, (a, b) in enumerate(slice_bounds(ev["t"], n_frames, split_by)):
        frames[i] = np.bincount(flat[a:b], minlength=2 * h * w)
    return frames.reshape(n_frames, 2, h, w)


def resize_frames(frames: np.ndarray | torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Frames ``[T, C, H, W]`` resized to ``size`` (``S`` or ``(H', W')``) by area averaging."""
    x = torch.as_tensor(frames, dtype=torch.float32)
    if x.dim() != 4:
        raise ValueError(f"frames must be [T, C, H, W], got shape {tuple(x.shape)}")
    out = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == out:
        return x
    return F.interpolate(x, size=out, mode="area")
