"""Data loaders for training and evaluation, single-process or DDP, deterministic per (seed, epoch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

from .datasets import DatasetInfo, default_normalization
from .frames import FrameAugment, collate_frames
from .registry import build_datasets, dataset_options, resolved_options
from .transforms import build_transform

MATERIALISE_BYTES = 2 * 2**30  # transform a split once and keep it in memory when it is at most this large


@dataclass
class DataBundle:
    train_loader: DataLoader
    test_loader: DataLoader
    train_sampler: DistributedSampler
    info: DatasetInfo
    img_size: int
    mean: tuple[float, ...] | None  # None: frames, not normalised
    std: tuple[float, ...] | None
    dataset_kwargs: dict  # every option of the dataset, defaults filled in (recorded in config.yaml)


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
    test_ds: Dataset, batch_size: int, workers: int, rank: int = 0, world_size: int = 1, layout: str = "image"
) -> DataLoader:
    # Each rank evaluates every world_size-th image: no padding, so all-reduced sums are exact.
    shard = test_ds if world_size == 1 else Subset(test_ds, range(rank, len(test_ds), world_size))
    collate = collate_frames if layout == "frames" else None  # frames batch time-first: [T, B, C, H, W]
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)


def dataset_kwargs_for(cfg) -> dict:
    """The dataset options of a config: ``dataset_kwargs``, with ``--timesteps`` passed on to a dataset whose frames
    it sets (event data); the two must agree."""
    options = dict(cfg.dataset_kwargs)
    if cfg.timesteps and "timesteps" in dataset_options(cfg.dataset):
        if options.setdefault("timesteps", cfg.timesteps) != cfg.timesteps:
            raise ValueError(
                f"--timesteps {cfg.timesteps} but dataset_kwargs sets timesteps: {options['timesteps']} frames; the "
                f"model runs one step per frame, so give one of them (or the same value)"
            )
    return options


def _check_frame_options(cfg, info: DatasetInfo) -> None:
    image_only = {"img_size": "use dataset_kwargs size: N", "mean": "frames are event counts, not normalised",
                  "std": "frames are event counts, not normalised", "aa": "RandAugment works on images",
                  "reprob": "random erasing works on images"}  # fmt: skip
    for name, why in image_only.items():
        if getattr(cfg, name):
            raise ValueError(f"{name} does not apply to the event dataset {info.name} ({why}); remove it")


def build_loaders(cfg, rank: int = 0, world_size: int = 1) -> DataBundle:
    """Datasets, transforms and loaders from a :class:`~s2tdpt.engine.config.TrainConfig`."""
    options = dataset_kwargs_for(cfg)
    train_ds, test_ds, info = build_datasets(cfg.dataset, cfg.data_dir, cfg.download, **options)
    options = resolved_options(cfg.dataset, options)
    if info.layout == "frames":
        return _frame_loaders(cfg, train_ds, test_ds, info, rank, world_size, options)
    if cfg.mean is not None:
        mean, std = tuple(cfg.mean), tuple(cfg.std)
    elif info.mean is not None:  # the dataset's own constants
        mean, std = info.mean, info.std
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
    sampler, train_loader = _train_loader(cfg, train_ds, rank, world_size, "image")
    test_loader = build_test_loader(test_ds, cfg.batch_size, cfg.workers, rank, world_size)
    return DataBundle(train_loader, test_loader, sampler, info, img_size, mean, std, options)


def _train_loader(cfg, train_ds, rank: int, world_size: int, layout: str) -> tuple[DistributedSampler, DataLoader]:
    """The shuffled training loader of either layout (frames batch time-first)."""
    if len(train_ds) < cfg.batch_size * world_size:
        raise ValueError(
            f"the training set has {len(train_ds)} {'recordings' if layout == 'frames' else 'images'}, fewer than "
            f"one batch ({cfg.batch_size} × {world_size} process(es)); lower --batch-size"
        )
    # DistributedSampler also serves the single-process case: a shuffle seeded by (seed, epoch) via set_epoch.
    sampler = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,  # equal batches (mixup needs even sizes; BN statistics of tiny tail batches are noisy)
        persistent_workers=cfg.workers > 0,
        pin_memory=torch.cuda.is_available(),
        collate_fn=collate_frames if layout == "frames" else None,
    )
    return sampler, loader


def _frame_loaders(cfg, train_ds, test_ds, info: DatasetInfo, rank: int, world_size: int, options: dict) -> DataBundle:
    """Loaders of a frame dataset: frames ``[T, B, C, H, W]``, flip and translation as augmentation, no norm."""
    _check_frame_options(cfg, info)
    if cfg.hflip or cfg.crop_pad:
        train_ds.transform = FrameAugment(hflip=cfg.hflip, translate=cfg.crop_pad)
    train_ds, test_ds = limit(train_ds, cfg.limit_train), limit(test_ds, cfg.limit_test)
    sampler, train_loader = _train_loader(cfg, train_ds, rank, world_size, "frames")
    test_loader = build_test_loader(test_ds, cfg.batch_size, cfg.workers, rank, world_size, "frames")
    return DataBundle(train_loader, test_loader, sampler, info, info.img_size, None, None, options)
