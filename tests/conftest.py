"""Small datasets made inside the tests (no network, no ../shared), one shared tiny training run, a simulated clock."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.optim.optimizer import register_optimizer_step_post_hook

from s2tdpt.data.idx import write_idx

# Under pytest-xdist (`-n`, README) the workers share the cores: one worker per core with one thread each is
# faster than several workers whose thread pools contend for the same cores. Subprocesses inherit the setting.
# A thread count the user set is kept, for each worker; the one set here (marked) is recomputed in each worker, which
# inherits the controller's environment. Cores: those this process may run on, as xdist's `-n auto` counts them.
if os.environ.get("OMP_NUM_THREADS", "") in ("", os.environ.get("S2TDPT_TEST_THREADS")):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _threads = str(max(1, min(2, _cores // _workers)))
    os.environ["OMP_NUM_THREADS"] = os.environ["S2TDPT_TEST_THREADS"] = _threads
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _fresh_s2tdpt_logger() -> Iterator[None]:
    """Each test starts with the package logger as a new process has it: no handlers, propagating to the root.

    An in-process training run attaches handlers to the stream pytest captured for that test and stops
    propagation; left in place they would write to a closed stream and hide later warnings from ``caplog``.
    """
    yield
    log = logging.getLogger("s2tdpt")
    for handler in log.handlers:
        handler.close()
    log.handlers.clear()
    log.propagate = True
    log.setLevel(logging.NOTSET)


def pattern_images(n: int, label: int, size: int, channels: int, seed: int) -> np.ndarray:
    """uint8 images whose class is a texture: a checkerboard of period 2·(label + 1) pixels, plus noise."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 80, size=(n, size, size, channels)).astype(np.uint8)
    y, x = np.mgrid[:size, :size]
    board = (y // (label + 1) + x // (label + 1)) % 2 == 0
    imgs[:, board] += 140
    return imgs if channels > 1 else imgs[..., 0]


def make_image_folder(root: Path, classes=("ant", "bee", "cat"), train=16, test=6, size=32, channels=3) -> Path:
    """``<root>/{train,test}/<class>/*.png`` with ``train`` / ``test`` images per class."""
    for split, n in (("train", train), ("test", test)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(pattern_images(n, c, size, channels, seed=(0 if split == "train" else 1000) + c)):
                Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("imgfolder"))


def tiny_args(data: Path, out: Path, *extra: str) -> list[str]:
    """``s2tdpt train`` of ``s2tdpt_tiny`` on an image folder: 6 epochs of 12 steps (48 images in batches of 4)."""
    return [
        "train", "--model", "s2tdpt_tiny", "--dataset", "imagefolder", "--data-dir", str(data), "--epochs", "6",
        "--batch-size", "4", "--warmup-epochs", "0", "--lr", "5e-3", "--amp", "none", "--out", str(out), *extra,
    ]  # fmt: skip


@dataclass(frozen=True)
class TinyRun:
    path: Path  # the run folder
    stdout: str  # what `s2tdpt train` printed


@pytest.fixture(scope="session")
def tiny_run(image_folder, tmp_path_factory) -> TinyRun:
    """One finished ``tiny_args`` run, trained in this process, shared by the tests that need a run or a checkpoint.

    Read-only: a test that changes a run copies the folder first (``shutil.copytree``).
    """
    from s2tdpt.cli import main

    path, printed = tmp_path_factory.mktemp("tiny") / "run", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(tiny_args(image_folder, path)) == 0
    return TinyRun(path, printed.getvalue())


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fashion")
    for split, n in (("train", 12), ("t10k", 5)):
        labels = np.repeat(np.arange(4), n)
        images = np.concatenate([pattern_images(n, c, 28, 1, seed=c) for c in range(4)])
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return root


class Interrupted(Exception):
    """Raised by a ``StepClock`` at its ``fail_at`` step: a process killed mid-epoch."""


class StepClock:
    """A simulated training clock: it stands still, except that each optimiser step costs ``step_s`` seconds.

    Passed as ``timer=`` to ``train`` (or ``bench budget``'s ``main``), it makes a time budget stop at the same step
    on any machine, however loaded: after k optimiser steps it reads k · step_s.
    """

    def __init__(self, step_s: float = 1.0, fail_at: int | None = None) -> None:
        self.step_s, self.fail_at, self.steps = step_s, fail_at, 0

    def __call__(self) -> float:
        return self.steps * self.step_s

    def tick(self, optimizer, args, kwargs) -> None:
        self.steps += 1
        if self.steps == self.fail_at:
            raise Interrupted(f"optimiser step {self.steps}")


@contextlib.contextmanager
def step_clock(step_s: float = 1.0, fail_at: int | None = None) -> Iterator[StepClock]:
    """A ``StepClock`` counting every optimiser step taken in the ``with`` block (``fail_at``: raise at that step)."""
    clock = StepClock(step_s, fail_at)
    handle = register_optimizer_step_post_hook(clock.tick)
    try:
        yield clock
    finally:
        handle.remove()
