"""Train / eval transforms. Augmentation comes from timm (RandAugment, random erasing); nothing hand-written."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from PIL import Image, ImageOps
from torchvision import transforms as T


def _posterize_keeping_zero_bits(img: Image.Image, bits_to_keep: int, **kwargs) -> Image.Image:
    """timm's posterize, with "keep 0 bits" meaning a black image, as Pillow before 13 computed it."""
    from timm.data import auto_augment

    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)  # every bit masked off: 0 in every channel
    return auto_augment.posterize(img, bits_to_keep, **kwargs)


@functools.cache
def _allow_zero_bit_posterize() -> None:
    """Keep timm's RandAugment working on Pillow >= 13.

    The paper's policy ``rand-m9-n1-mstd0.4-inc1`` draws magnitudes around 9 with std 0.4; at magnitude 10 timm's
    ``PosterizeIncreasing`` asks for 0 bits, which older Pillow turned into a black image and Pillow 13 refuses
    (``ValueError: bits must be between or equal to 1 and 8``), stopping a training run within an epoch. Where
    Pillow refuses, timm's posterize ops are pointed at the same function with the old meaning of 0 bits.
    """
    from timm.data import auto_augment

    try:
        ImageOps.posterize(Image.new("RGB", (1, 1)), 0)
        return  # this Pillow still accepts 0 bits
    except ValueError:
        pass
    for name, op in list(auto_augment.NAME_TO_OP.items()):
        if op is auto_augment.posterize:
            auto_augment.NAME_TO_OP[name] = _posterize_keeping_zero_bits


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
    random erasing with probability ``reprob`` after normalisation, boxes filled with 0 (the anchor's ``const``).
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

            _allow_zero_bit_posterize()
            fill = tuple(round(255 * m) for m in mean)
            hparams = dict(translate_const=int(img_size * 0.45), img_mean=fill if len(fill) > 1 else fill[0])
            ops.append(rand_augment_transform(aa, hparams))
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    if train and reprob > 0:
        from timm.data.random_erasing import RandomErasing

        # "const" as the anchor recipe (remode: const): erased boxes become 0, i.e. the mean colour after Normalize
        ops.append(RandomErasing(reprob, mode="const", device="cpu"))
    return T.Compose(ops)
