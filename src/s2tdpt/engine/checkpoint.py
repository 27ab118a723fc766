"""Checkpoints: plain dicts, written atomically (temporary file + fsync + rename), read with clear errors."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

REQUIRED_KEYS = ("format", "model_config", "model", "epoch")
FORMAT = "s2tdpt-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file cannot be used (missing, truncated, not ours)."""


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` so that a crash leaves either the old file or the complete new one.

    A failed write (a full disk, a read-only folder) raises ``OSError`` and leaves no temporary file behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except RuntimeError as e:
        # torch.save reports a failed write as "[enforce fail at inline_container.cc] ... file write failed",
        # with the OSError (e.g. ENOSPC) only in the exception's context: raise that instead
        cause = _os_error_in(e)
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from e
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _os_error_in(e: BaseException) -> OSError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`: a crash leaves either the old file or the complete new one."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check an s2tdpt checkpoint (weights-only unpickling: tensors and plain containers).

    An exported weights folder (``s2tdpt export``) or a hub id (``hf-hub:user/repo``) loads as a checkpoint without
    optimiser state (:func:`s2tdpt.engine.pretrained.read_pretrained`).
    """
    from .pretrained import HUB_PREFIX, is_pretrained_folder, read_pretrained

    if str(path).startswith(HUB_PREFIX) or is_pretrained_folder(path):
        return read_pretrained(path)
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder but neither a weights folder written by `s2tdpt export` nor a checkpoint; pass a "
            f"checkpoint file such as {path / 'best.pt'}"
        )
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # zip/pickle errors vary by how the file is damaged
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated, corrupted or not a PyTorch checkpoint "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Use another checkpoint of the run "
            f"(last.pt / best.pt)."
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not an s2tdpt checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return ckpt


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": np_state[0], "pos": int(np_state[2]), "keys": torch.from_numpy(np_state[1].astype(np.int64))},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["key"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"], 0, 0.0))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Copy a checkpoint's model weights into ``model`` (``--init``); shapes must match. A clear ``ValueError``
    names the tensors that differ or are missing."""
    state = load_checkpoint(path)["model"]
    own = model.state_dict()
    shared = [k for k in state if k in own]
    differ = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shared if state[k].shape != own[k].shape]
    if differ:
        raise ValueError(
            f"--init {path}: the checkpoint's model has other shapes than this run's ({'; '.join(differ[:5])}"
            f"{' …' if len(differ) > 5 else ''}); give the same model and options as the checkpoint's run"
        )
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"--init {path}: the checkpoint's model does not fit this run's (missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}); give the same model, attention and neuron as its run"
        )
