"""Helpers shared by the commands that read a checkpoint: rebuild its model, rebuild its test set."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from ..data.loaders import limit
from ..data.registry import DatasetInfo, build_datasets, dataset_options
from ..data.transforms import build_transform
from ..engine.checkpoint import load_checkpoint
from ..engine.pretrained import model_with_weights
from ..models import S2TDPT, S2TDPTConfig
from ..models.factory import with_synapse


def model_from_checkpoint(path: str, synapse: str | dict | None = None) -> tuple[S2TDPT, dict[str, Any]]:
    """The model of a checkpoint with its weights (CPU), and the checkpoint dict.

    ``synapse`` rebuilds the STDP attention on that device model (``--synapse``); per-position draws the checkpoint
    does not hold come from the global generator (seed it first).
    """
    ckpt = load_checkpoint(path)
    config = None if synapse is None else with_synapse(S2TDPTConfig.from_dict(ckpt["model_config"]), synapse)
    return model_with_weights(ckpt, path, config), ckpt


def checkpoint_test_set(
    ckpt: dict[str, Any],
    dataset: str | None = None,
    data_dir: str | None = None,
    n_images: int | None = None,
    download: bool = True,
    split: str = "test",
) -> tuple[Dataset, DatasetInfo]:
    """A split of the checkpoint's dataset (or another with the same classes), transformed as in training's eval.

    ``n_images`` None keeps the training run's ``limit_test`` when the dataset is the training one.
    """
    tcfg, dinfo = ckpt.get("train_config", {}), ckpt.get("dataset", {})
    model_cfg = S2TDPTConfig.from_dict(ckpt["model_config"])
    name = dataset or tcfg.get("dataset")
    same = name == tcfg.get("dataset")
    root = data_dir if data_dir is not None else (tcfg.get("data_dir") if same else None)
    options = dict(tcfg.get("dataset_kwargs") or {}) if same else {}
    if "timesteps" in dataset_options(name):  # event frames: as many as the model has steps
        options["timesteps"] = model_cfg.timesteps
    train_ds, test_ds, info = build_datasets(name, root, download and tcfg.get("download", True), **options)
    if info.num_classes != model_cfg.num_classes or info.in_chans != model_cfg.in_chans:
        raise ValueError(
            f"the checkpoint's model takes {model_cfg.in_chans}-channel images and predicts {model_cfg.num_classes} "
            f"classes, but {info.name} has {info.in_chans} channel(s) and {info.num_classes} classes"
        )
    ds = test_ds if split == "test" else train_ds
    if info.layout == "frames":  # frames are served as they are: no resize, no normalisation
        if n_images is None and same:
            n_images = tcfg.get("limit_test")
        return limit(ds, n_images), info
    mean, std = dinfo.get("mean") or tcfg.get("mean"), dinfo.get("std") or tcfg.get("std")
    ds.transform = build_transform(
        train=False, img_size=model_cfg.img_size, native_size=info.img_size, mean=mean, std=std
    )
    if n_images is None and same:
        n_images = tcfg.get("limit_test")
    return limit(ds, n_images), info


def synapse_option(text: str | None) -> str | dict | None:
    """``--synapse``: a preset name or a YAML/JSON mapping, checked now (``ValueError`` naming the problem)."""
    if text is None:
        return None
    from ..engine.config import ConfigError, resolve_synapse_option

    try:
        return resolve_synapse_option(text)
    except ConfigError as e:
        raise ValueError(f"--synapse: {e}") from None


def synapse_slug(synapse: str | dict) -> str:
    """A folder-name form of a synapse option: ``reram_om``, ``levels16-write_noise0.4``."""
    if isinstance(synapse, str):
        return synapse
    return "-".join(f"{k}{v}" for k, v in synapse.items()).replace(" ", "")
