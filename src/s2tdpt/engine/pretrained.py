"""Shareable weights: a folder of ``model.safetensors`` + ``config.json`` (no pickle, no optimiser).

    s2tdpt export runs/x/best.pt --out weights/x                 # writes the folder (atomically)
    model = s2tdpt.load_pretrained("weights/x")                  # or "hf-hub:user/repo" with huggingface_hub
    s2tdpt eval weights/x                                        # every command that takes a checkpoint takes it

``config.json`` holds the model config (to rebuild it), the dataset's name, classes, normalisation and input
layout (to evaluate and explain it), what the run reached, and timm's ``pretrained_cfg``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .checkpoint import FORMAT, CheckpointError

WEIGHTS, CONFIG = "model.safetensors", "config.json"
FOLDER_FORMAT = "s2tdpt-pretrained-v1"
HUB_PREFIX = "hf-hub:"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def check_free(out: Path) -> None:
    """``out`` may be written: absent, or an empty folder (an export never overwrites anything)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose another --out or remove it")


@contextlib.contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """An empty temporary folder beside ``out`` that becomes ``out`` when the block succeeds: the folder appears
    complete or not at all, and a failed export leaves nothing behind."""
    out = Path(out)
    check_free(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename


def is_pretrained_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / WEIGHTS).exists() and (path / CONFIG).exists()


def export_pretrained(ckpt: dict[str, Any], out: str | Path) -> Path:
    """Write ``ckpt``'s model weights and the description needed to use them into folder ``out`` (absent or empty;
    it appears complete or not at all)."""
    from safetensors.torch import save_file

    # safetensors stores plain contiguous tensors; buffers (BatchNorm statistics, device draws) included
    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt["model"].items()}
    with staged_folder(out) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FOLDER_FORMAT})
        write_description(ckpt, tmp)
    return Path(out)


def write_description(ckpt: dict[str, Any], folder: Path) -> None:
    """``config.json``: the model config, the dataset, what the run reached and timm's ``pretrained_cfg``."""
    from ..models.timm_models import pretrained_cfg

    dataset = dict(ckpt.get("dataset") or {})
    train = ckpt.get("train_config") or {}
    config = dict(
        format=FOLDER_FORMAT,
        version=__version__,
        architecture=train.get("model"),
        model_config=ckpt["model_config"],
        dataset=dataset,
        train=dict(
            dataset=train.get("dataset"),
            dataset_kwargs=train.get("dataset_kwargs"),
            epoch=ckpt.get("epoch"),
            test_top1=ckpt.get("test_top1"),
            best_top1=ckpt.get("best_top1"),
        ),  # fmt: skip
    )
    if train.get("model") in _model_names():
        mc = ckpt["model_config"]
        cfg = pretrained_cfg(train["model"], in_chans=mc["in_chans"], img_size=mc["img_size"],
                             num_classes=mc["num_classes"])  # fmt: skip
        if dataset.get("mean"):
            cfg.update(mean=tuple(dataset["mean"]), std=tuple(dataset["std"]))
        config["pretrained_cfg"] = cfg
    (folder / CONFIG).write_text(json.dumps(config, indent=2, default=list) + "\n")


def _model_names() -> list[str]:
    from ..models import list_models

    return list_models()


def resolve_source(source: str | Path) -> Path:
    """A local folder, or a hub id ``hf-hub:user/repo`` downloaded with huggingface_hub (the prefix is required,
    so that a mistyped local path is never sent to the hub)."""
    text = str(source)
    if not text.startswith(HUB_PREFIX):
        return Path(text)
    hub = text[len(HUB_PREFIX) :]
    if not _HUB_ID.match(hub):
        raise CheckpointError(f"{text!r} is not a hub id of the form hf-hub:USER/REPO")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(
            f"{text!r} is a hub id; loading from the Hugging Face Hub needs huggingface_hub (pip install 's2tdpt[hub]')"
        ) from None
    try:
        return Path(snapshot_download(hub, allow_patterns=[WEIGHTS, CONFIG]))
    except Exception as e:  # offline, unknown repo, no access: the hub's own exception types vary by version
        raise CheckpointError(
            f"cannot download {hub!r} from the Hugging Face Hub ({type(e).__name__}: {str(e).splitlines()[0]}). "
            "Check the id and your network, or pass a local folder written by `s2tdpt export`."
        ) from None


def read_pretrained(source: str | Path) -> dict[str, Any]:
    """An exported folder (or hub id) as a checkpoint-shaped dict: the commands that read checkpoints use it as is.
    It has no optimiser state, so it cannot resume training (``--init`` takes it)."""
    from safetensors.torch import load_file

    folder = resolve_source(source)
    if not is_pretrained_folder(folder):
        raise CheckpointError(f"{folder} is not an exported weights folder (it needs {WEIGHTS} and {CONFIG})")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{folder / CONFIG} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FOLDER_FORMAT or "model_config" not in config:
        raise CheckpointError(
            f"{folder / CONFIG} is not an s2tdpt weights description (it needs format '{FOLDER_FORMAT}' and "
            "model_config); export the checkpoint again with `s2tdpt export`"
        )
    try:
        state = load_file(str(folder / WEIGHTS))
    except Exception as e:
        raise CheckpointError(f"cannot read {folder / WEIGHTS}: {type(e).__name__}: {e}") from None
    dataset, train = config.get("dataset") or {}, config.get("train") or {}
    return dict(
        format=FORMAT,
        model_config=config["model_config"],
        model=state,
        epoch=train.get("epoch"),
        dataset=dataset,
        train_config=dict(
            model=config.get("architecture"),
            dataset=train.get("dataset") or dataset.get("name"),
            dataset_kwargs=train.get("dataset_kwargs") or {},
            mean=dataset.get("mean"),
            std=dataset.get("std"),
        ),  # fmt: skip
        test_top1=train.get("test_top1"),
        best_top1=train.get("best_top1"),
        exported=True,
    )


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "the weights") -> None:
    """``model.load_state_dict(state)``, refusing any mismatch with a message that names the tensors.

    Keys are matched by the model's own loading (a module may accept a file without some of its buffers, e.g. the
    synapse draws of a model trained ideal); shapes are checked first, so a wrong size is named, never guessed.
    """
    own = model.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and own[k].shape != v.shape]  # fmt: skip
    if wrong:
        raise CheckpointError(f"{source} do not fit this model — shape mismatch: {'; '.join(wrong)}")
    result = model.load_state_dict(state, strict=False)  # the model's own hooks accept what they can fill in
    missing, unexpected = result.missing_keys, result.unexpected_keys
    if missing or unexpected:
        parts = (
            [f"missing from the file: {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}"] if missing else []
        )
        parts += (
            [f"not in the model: {', '.join(unexpected[:8])}{' …' if len(unexpected) > 8 else ''}"]
            if unexpected
            else []
        )
        raise CheckpointError(f"{source} do not fit this model — " + " | ".join(parts))


def model_with_weights(ckpt: dict[str, Any], source: str, config: Any = None) -> torch.nn.Module:
    """The model of ``ckpt["model_config"]`` (or of ``config``, a changed copy of it) with ``ckpt["model"]`` loaded,
    for a checkpoint and an exported folder alike (:func:`load_weights`' checks; ``source`` names the file)."""
    from ..models import S2TDPT, S2TDPTConfig

    model = S2TDPT(config or S2TDPTConfig.from_dict(ckpt["model_config"]))
    load_weights(model, ckpt["model"], f"the weights of {source}")
    return model


def load_pretrained(source: str | Path, **overrides: Any) -> torch.nn.Module:
    """The model of an exported folder or hub id (``hf-hub:user/repo``), with its weights, in eval mode.

    ``overrides`` change its config (e.g. ``lif_backend="torch"``); a change of shape (``num_classes=5``) is
    refused with the tensors that no longer fit.
    """
    from ..models import S2TDPTConfig
    from ..models.factory import resolve_config

    ckpt = read_pretrained(source)
    config = resolve_config(S2TDPTConfig.from_dict(ckpt["model_config"]), **overrides)
    return model_with_weights(ckpt, str(source), config).eval()
