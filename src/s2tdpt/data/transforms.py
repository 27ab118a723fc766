"""Train / eval transforms. Augmentation comes from timm (RandAugment, random erasing); nothing hand-written."""

from __future__ import annotations

from collections.abc import Sequence

from torchvision import transforms as T


def build_transform(
    *,
    train: bool,
    img_size: int,
    native_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    hflip: float = 0.0,
    crop_pad: int = 0,
    aa: str | None = None,
    reprob: float = 0.0,
) -> T.Compose:
    """PIL image → normalised tensor ``[C, H, W]``.

    Training adds, in this order: random crop with ``crop_pad`` pixels of zero padding, horizontal flip with
    probability ``hflip``, timm's RandAugment policy ``aa`` (e.g. ``"rand-m9-n1-mstd0.4-inc1"``), and timm's
    per-pixel random erasing with probability ``reprob`` after normalisation.
    """
    ops: list = []
    if img_size != native_size:
        ops.append(T.Resize(img_size, interpolation=T.InterpolationMode.BICUBIC))
    if train:
        if crop_pad:
            ops.append(T.RandomCrop(img_size, padding=crop_pad))
        if hflip > 0:
            ops.append(T.RandomHorizontalFlip(hflip))
        if aa:
            from timm.data import rand_augment_transform

            fill = tuple(round(255 * m) for m in mean)
            hparams = dict(translate_const=int(img_size * 0.45), img_mean=fill if len(fill) > 1 else fill[0])
            ops.append(rand_augment_transform(aa, hparams))
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    if train and reprob > 0:
        from timm.data.random_erasing import RandomErasing

        ops.append(RandomErasing(reprob, mode="pixel", device="cpu"))
    return T.Compose(ops)
