"""Data loaders for training and evaluation, single-process or DDP, deterministic per (seed, epoch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

from .datasets import DatasetInfo, build_datasets, default_normalization
from .transforms import build_transform

MATERIALISE_BYTES = 2 * 2**30  # transform a split once and keep it in memory when it is at most this large


@dataclass
class DataBundle:
    train_loader: DataLoader
    test_loader: DataLoader
    train_sampler: DistributedSampler
    info: DatasetInfo
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def limit(ds: Dataset, n: int | None) -> Dataset:
    """An evenly spaced subset of ``n`` items: every class of a class-sorted folder stays represented."""
    if n is not None and n < 1:
        raise ValueError(f"cannot use {n} images of a {len(ds)}-image split: give at least 1, or no limit for all")
    if n is None or n >= len(ds):
        return ds
    return Subset(ds, [i * len(ds) // n for i in range(n)])


def materialise(ds: Dataset, sample_bytes: int) -> Dataset:
    """Apply a deterministic transform once: a tensor dataset saves decoding and converting every epoch."""
    if len(ds) * sample_bytes > MATERIALISE_BYTES:
        return ds
    images, labels = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return TensorDataset(torch.stack(images), torch.tensor(labels))


def build_test_loader(
    test_ds: Dataset, batch_size: int, workers: int, rank: int = 0, world_size: int = 1
) -> DataLoader:
    # Each rank evaluates every world_size-th image: no padding, so all-reduced sums are exact.
    shard = test_ds if world_size == 1 else Subset(test_ds, range(rank, len(test_ds), world_size))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers)


def build_loaders(cfg, rank: int = 0, world_size: int = 1) -> DataBundle:
    """Datasets, transforms and loaders from a :class:`~s2tdpt.engine.config.TrainConfig`."""
    train_ds, test_ds, info = build_datasets(cfg.dataset, cfg.data_dir, cfg.download)
    if cfg.mean is not None:
        mean, std = tuple(cfg.mean), tuple(cfg.std)
    else:
        mean, std = default_normalization(cfg.dataset, train_ds)
    if len(mean) != info.in_chans:
        raise ValueError(f"normalisation has {len(mean)} channel(s) but {info.name} images have {info.in_chans}")
    img_size = cfg.img_size or info.img_size
    common = dict(img_size=img_size, native_size=info.img_size, mean=mean, std=std)
    train_ds.transform = build_transform(
        train=True, hflip=cfg.hflip, crop_pad=cfg.crop_pad, aa=cfg.aa, reprob=cfg.reprob, **common
    )
    test_ds.transform = build_transform(train=False, **common)
    train_ds, test_ds = limit(train_ds, cfg.limit_train), limit(test_ds, cfg.limit_test)
    sample_bytes = 4 * info.in_chans * img_size * img_size
    test_ds = materialise(test_ds, sample_bytes)
    if not (cfg.crop_pad or cfg.hflip or cfg.aa or cfg.reprob):  # no random augmentation: deterministic too
        train_ds = materialise(train_ds, sample_bytes)
    if len(train_ds) < cfg.batch_size * world_size:
        raise ValueError(
            f"the training set has {len(train_ds)} images, fewer than one batch ({cfg.batch_size} × {world_size} "
            f"process(es)); lower --batch-size"
        )
    # DistributedSampler also serves the single-process case: a shuffle seeded by (seed, epoch) via set_epoch.
    sampler = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True, seed=cfg.seed)
    train_loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,  # equal batches (mixup needs even sizes; BN statistics of tiny tail batches are noisy)
        persistent_workers=cfg.workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
    test_loader = build_test_loader(test_ds, cfg.batch_size, cfg.workers, rank, world_size)
    return DataBundle(train_loader, test_loader, sampler, info, img_size, mean, std)
