"""Frame datasets: event recordings integrated once into ``[T, 2, H, W]`` frames, cached on disk, batched time-first.

A frame dataset yields ``(frames [T, C, H, W] float32, label)``; :func:`collate_frames` stacks a batch time-first,
``[T, B, C, H, W]``, the layout the model reads as event encoding, so every consumer (training, evaluation,
firing rates, energy, explain) receives what the model takes. Integration (:mod:`.events`) runs once per sample
and options: the frames are written to ``<cache>/<key>/<split>/<index>.npy``, where the key names the dataset, T,
the split rule, the size and a fingerprint of the source files, so a changed option or recording makes a new
cache instead of reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .events import SPLITS, resize_frames, to_frames


def frames_key(name: str, timesteps: int, split_by: str, size: int | None, fingerprint: str) -> str:
    """Cache folder name for one dataset and frame options, e.g. ``eventfolder-T16-number-64-1a2b3c4d``."""
    if split_by not in SPLITS:
        raise ValueError(f"split_by must be one of {SPLITS}, got {split_by!r}")
    return f"{name}-T{timesteps}-{split_by}-{size or 'full'}-{fingerprint}"


def fingerprint(paths: Sequence[str | Path]) -> str:
    """A short hash of file names, sizes and modification times: changes when a recording does."""
    h = hashlib.sha1()
    for p in paths:
        st = os.stat(p)
        h.update(json.dumps([str(p), st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()[:8]


class FrameDataset(Dataset):
    """Recordings ``load(i) -> events`` with labels, served as cached frames ``[T, 2, S, S]`` (float32 counts).

    Args:
        load: returns the events of sample ``i`` (structured array t, x, y, p).
        labels: one class index per sample.
        sensor_size: ``(W, H)`` of the recordings.
        timesteps, split_by, size: frame options (:func:`~.events.to_frames`, :func:`~.events.resize_frames`).
        cache: folder for this split's frames (``None``: integrate on every access).
    """

    def __init__(
        self,
        load: Callable[[int], np.ndarray],
        labels: Sequence[int],
        sensor_size: tuple[int, int],
        timesteps: int,
        split_by: str = "number",
        size: int | None = None,
        cache: Path | None = None,
        transform: Callable | None = None,
    ) -> None:
        self.load, self.labels = load, np.asarray(labels, dtype=np.int64)
        self.sensor_size, self.timesteps, self.split_by, self.size = sensor_size, timesteps, split_by, size
        self.cache, self.transform = cache, transform

    def __len__(self) -> int:
        return len(self.labels)

    def frames(self, i: int) -> torch.Tensor:
        """Frames of sample ``i`` before any transform, from the cache when there."""
        path = self.cache / f"{i}.npy" if self.cache is not None else None
        if path is not None and path.exists():
            return torch.from_numpy(np.load(path))
        x = torch.from_numpy(to_frames(self.load(i), self.sensor_size, self.timesteps, self.split_by))
        if self.size:
            x = resize_frames(x, self.size)
        if path is not None:  # written to a temporary name and renamed: no half-written file survives a kill
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, x.numpy())
            os.replace(tmp, path)
        return x

    def __getitem__(self, i: int):
        x = self.frames(i)
        return (self.transform(x) if self.transform else x), int(self.labels[i])


def collate_frames(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(frames [T, C, H, W], label), ...]`` → ``(frames [T, B, C, H, W], labels [B])``: time first."""
    frames, labels = zip(*batch, strict=True)
    return torch.stack(frames, dim=1), torch.as_tensor(labels)


def mix_frames(mixup: Callable, frames: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's ``Mixup`` (mixup and CutMix) on frames ``[T, B, C, H, W]``: it mixes along dim 0 and cuts the last
    two dims of a 4-D batch, so the frames go in as ``[B, T·C, H, W]`` (one box for all steps of a sample)."""
    t, b, c, h, w = frames.shape
    flat = frames.permute(1, 0, 2, 3, 4).reshape(b, t * c, h, w)
    mixed, targets = mixup(flat, labels)
    return mixed.reshape(b, t, c, h, w).permute(1, 0, 2, 3, 4), targets


class FrameAugment:
    """Training augmentation of frames ``[T, C, H, W]`` (the peers' DVS recipes): a horizontal flip with
    probability ``hflip`` and a random translation of up to ``translate`` pixels per axis (rolled, with the
    wrapped border zeroed), the same for every step of a sample."""

    def __init__(self, hflip: float = 0.5, translate: int = 0) -> None:
        self.hflip, self.translate = hflip, translate

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.hflip and torch.rand(()) < self.hflip:
            x = x.flip(-1)
        if self.translate:
            dy, dx = (int(v) for v in torch.randint(-self.translate, self.translate + 1, (2,)))
            x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
            if dy > 0:
                x[..., :dy, :] = 0
            elif dy < 0:
                x[..., dy:, :] = 0
            if dx > 0:
                x[..., :dx] = 0
            elif dx < 0:
                x[..., dx:] = 0
        return x
