"""The run folder: resolved config, metrics.csv and its picture curves.png, train.log, final.json, checkpoints (and,
with ``tensorboard``, TensorBoard event files). Only rank 0 writes.

A run folder is never overwritten: a new run refuses a folder that holds any run file, every file is replaced
atomically (temporary file, then rename), and a write that fails (a full disk, a read-only folder) stops the run
with a :class:`RunFolderError` that says which file and how to continue.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from .checkpoint import atomic_torch_save, atomic_write, load_checkpoint
from .config import ConfigError, TrainConfig, field_default
from .curves import plot_runs, read_metrics

METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1",
    "test_loss",
    "test_top1",
    "test_top5",
    "epoch_s",
    "images_per_s",
    "train_s",
)
RUN_FILES = ("config.yaml", "metrics.csv", "curves.png", "train.log", "final.json", "last.pt", "best.pt")
# model config fields that select an implementation of the same neuron, not a different model
IMPLEMENTATION_FIELDS = ("lif_backend",)
# the settings that choose the model; with them unchanged, a different model config comes from the named model's
# definition in another version of the package
MODEL_SETTINGS = ("model", "model_kwargs", "attention", "timesteps", "neuron", "neuron_kwargs", "synapse")
DATA_FIELDS = ("num_classes", "in_chans", "img_size")  # model config fields set from the data, not the name
LOGGER = "s2tdpt"
#: during a run, curves.png is redrawn at most this often (seconds of the training clock), and once more at its end:
#: one redraw (matplotlib, a few rows) costs a noticeable part of a short epoch, nothing of a long one
CURVES_EVERY_S = 30.0


class RunFolderError(RuntimeError):
    """A run folder cannot be used or written; the message says why and what to do."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the message says how to continue the run."""


def default_out(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.dataset}-{cfg.model}"


def run_folder(cfg: TrainConfig, resume: str | Path | None) -> Path:
    """The folder of a run: the resumed one, ``cfg.out``, or a new ``runs/<time>-<dataset>-<model>``."""
    return Path(resume) if resume else Path(cfg.out) if cfg.out else default_out(cfg)


def continue_hint(path: Path) -> str:
    """How to continue the run in ``path``, from what the folder holds now."""
    if (path / "last.pt").exists():
        return f"resume with `s2tdpt train --resume {path}`"
    if (path / "config.yaml").exists():
        return (
            f"start it again with `s2tdpt train --resume {path}` (it had no checkpoint yet, so it restarts from "
            f"epoch 1)"
        )
    return "nothing was written: run the same command again"


def divergence_advice(path: Path, epochs_done: int, lr: float) -> str:
    """What to do after the loss became NaN/inf: names last.pt only when it exists."""
    change = f"a lower --lr (e.g. `--lr {lr / 10:g}`), --clip-grad 1 or --amp none"
    if (path / "last.pt").exists():
        return (
            f"Its last good checkpoint ({path / 'last.pt'}, end of epoch {epochs_done}) is untouched: continue from "
            f"it with {change}, e.g. `s2tdpt train --resume {path} --lr {lr / 10:g}` (the change is recorded in "
            f"config.yaml and train.log)."
        )
    return (
        f"No checkpoint was written yet: start it again with {change}, e.g. "
        f"`s2tdpt train --resume {path} --lr {lr / 10:g}` (it restarts from epoch 1)."
    )


def model_config_changes(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields where two model configs differ, ``{field: (saved, new)}``; the LIF implementation does not count, and
    a field that a config saved by an earlier version lacks counts as its default."""
    from ..models import S2TDPTConfig

    saved = {**S2TDPTConfig().to_dict(), **saved}
    keys = (set(saved) | set(new)) - set(IMPLEMENTATION_FIELDS)
    return {k: (saved.get(k), new.get(k)) for k in sorted(keys) if saved.get(k) != new.get(k)}


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in changes.items())


def _check_same_model(path: Path, cfg: TrainConfig, ckpt: dict[str, Any], model_config: dict[str, Any]) -> None:
    """A resumed run keeps its model: raise, saying why the checkpoint's model differs from ``model_config``."""
    changed = model_config_changes(ckpt["model_config"], model_config)
    if not changed:
        return
    data_changed = {k: v for k, v in changed.items() if k in DATA_FIELDS}
    if data_changed:
        raise ConfigError(
            f"the checkpoint in {path} was trained on other data ({_describe(data_changed)}): resume with the data it "
            f"was trained on (its dataset, --data-dir and image size), or start a new run"
        )
    saved = ckpt["train_config"]
    if all(saved.get(k, field_default(k)) == getattr(cfg, k) for k in MODEL_SETTINGS):
        raise ConfigError(
            f"the checkpoint in {path} was trained with model {cfg.model!r} as an earlier version of s2tdpt defined "
            f"it ({_describe(changed)}), so the run cannot be continued; its checkpoints still work with `s2tdpt "
            f"eval`, and `s2tdpt train -c {path / 'config.yaml'} --init {path / 'last.pt'} --model-kwargs ... --out "
            f"NEW` with the old values starts a new run from its weights"
        )
    raise ConfigError(
        f"the checkpoint in {path} was trained with a different model ({_describe(changed)}); a resumed run keeps its "
        f"model: drop the settings that change it, or start a new run"
    )


class RunDir:
    """Writes the artefacts of one run. ``RunDir(None)`` (non-zero DDP ranks) writes nothing."""

    def __init__(self, path: Path | None, timer: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.start_note = ""  # what `start` did, for the log: resumed after epoch N, restarted
        self._tensorboard = None  # a SummaryWriter, when asked for
        self._timer = timer  # seconds, any origin: when curves.png was last drawn (tests pass a simulated clock)
        self._drawn_at: float | None = None  # None: not drawn yet by this process
        self._undrawn = False  # metrics.csv has rows that curves.png does not show yet

    @staticmethod
    def check_tensorboard() -> None:
        """Before any work: the TensorBoard writer imports (ConfigError saying what to install if not)."""
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ConfigError(
                "tensorboard: true needs the tensorboard package: pip install 's2tdpt[tensorboard]' (or drop "
                "--tensorboard)"
            ) from None

    def log_to_tensorboard(self, epochs_done: int = 0) -> None:
        """Also write each epoch's metrics as TensorBoard scalars under ``<run>/tensorboard``. On resume, events of
        epochs after the checkpoint (written before a crash) are dropped, as metrics.csv's rows are."""
        if self.path:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(self.path / "tensorboard"), purge_step=epochs_done + 1)

    # --- before any work: nothing is written
    @staticmethod
    def check_new(path: Path) -> None:
        """Refuse a folder that a new run cannot use (called before any work, so nothing is overwritten)."""
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"--out {path} is a file, not a folder; choose a folder path for the run")
        present = [name for name in RUN_FILES if (path / name).exists()]
        if "last.pt" in present:
            raise RunFolderError(
                f"run folder {path} already holds a run; continue it with --resume {path} or choose another --out"
            )
        if "config.yaml" in present and not {"best.pt", "final.json"} & set(present):
            raise RunFolderError(
                f"run folder {path} already holds a run that stopped before its first checkpoint "
                f"({', '.join(present)}); start it again with `s2tdpt train --resume {path}` (from epoch 1, with its "
                f"config.yaml) or choose another --out"
            )
        if present:
            raise RunFolderError(
                f"run folder {path} already holds {', '.join(present)} of another run, which a new run would "
                f"overwrite; choose another --out"
            )
        _check_writable(path)

    @staticmethod
    def check_resumable(path: Path) -> bool:
        """Whether the run in ``path`` has a checkpoint to continue from; False: it restarts from epoch 1.

        Raises when the folder holds no run, or a run that cannot be continued (best.pt but no last.pt).
        """
        if not (path / "config.yaml").is_file():
            raise RunFolderError(
                f"--resume {path}: no run there (no config.yaml and last.pt there); check the path, or start a "
                f"new run with --out {path}"
            )
        if (path / "last.pt").exists():
            return True
        leftovers = [name for name in ("best.pt", "final.json") if (path / name).exists()]
        if leftovers:
            raise RunFolderError(
                f"--resume {path}: the folder holds {', '.join(leftovers)} but no last.pt, so the run cannot be "
                f"continued; train a new one with its settings: `s2tdpt train -c {path / 'config.yaml'} --out NEW`"
            )
        return False

    @classmethod
    def prepare(cls, path: Path, resume: bool, is_main: bool = True) -> dict[str, Any] | None:
        """Check the folder before any work; on resume, return its last checkpoint (None: restart from epoch 1)."""
        if not resume:
            if is_main:
                cls.check_new(path)
            return None
        return load_checkpoint(path / "last.pt") if cls.check_resumable(path) else None

    # --- once the data and the model were built without error
    @classmethod
    def start(
        cls, path: Path, cfg: TrainConfig, model_config: dict[str, Any], ckpt: dict[str, Any] | None, *,
        resume: bool, is_main: bool = True, timer: Callable[[], float] = time.monotonic,
    ) -> RunDir:  # fmt: skip
        """Create (or reopen) the folder and write config.yaml, after checking that the checkpoint fits the model.

        On resume, metrics.csv loses the rows of epochs after the checkpoint, best.pt is restored from last.pt when
        the checkpoint is the best epoch (a run stopped between writing the two), and ``start_note`` says what
        changed against the run's previous config.
        """
        epochs_done = ckpt["epoch"] if ckpt else 0
        if ckpt:
            _check_same_model(path, cfg, ckpt, model_config)
        if not is_main:
            return cls(None)
        if not resume:
            run = cls.create(path, timer)
            run.save_config(cfg)
            return run
        run = cls(path, timer)
        previous = ckpt["train_config"] if ckpt else yaml.safe_load((path / "config.yaml").read_text())
        for stale in path.glob(".*.tmp-*"):  # temporary files of a process that was killed while writing
            stale.unlink(missing_ok=True)
        run.truncate_metrics(epochs_done)
        if ckpt and ckpt["best_epoch"] + 1 == epochs_done:
            run._copy_last_to_best()  # again: the run may have stopped between writing last.pt and best.pt
        run.save_config(cfg)
        changes = {k: (v, cfg.to_dict().get(k)) for k, v in previous.items() if k != "out"}
        changes = {k: v for k, v in changes.items() if v[0] != v[1]}
        run.start_note = (
            f"resuming {path} after epoch {epochs_done}/{cfg.epochs}"
            if ckpt
            else f"{path} has no checkpoint yet: training it again from epoch 1"
        )
        run.start_note += f", with changes: {_describe(changes)}" if changes else ""
        return run

    @classmethod
    def create(cls, path: Path, timer: Callable[[], float] = time.monotonic) -> RunDir:
        cls.check_new(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFolderError(f"cannot create run folder {path}: {e.strerror}; choose another --out") from None
        return cls(path, timer)

    # --- during the run
    def save_config(self, cfg: TrainConfig) -> None:
        if self.path:
            text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
            self._write_text("config.yaml", text)

    def append_metrics(self, row: dict[str, Any]) -> None:
        if not self.path:
            return
        file = self.path / "metrics.csv"
        new = not file.exists()
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in METRIC_COLUMNS})
        with self._writing("metrics.csv"), open(file, "a", newline="") as f:
            f.write(buf.getvalue())  # one write: a crash leaves at most a partial last line, dropped on resume
        self._undrawn = True
        if self._drawn_at is None or self._timer() - self._drawn_at >= CURVES_EVERY_S:
            self.draw_curves()
        if self._tensorboard is not None:
            for key in METRIC_COLUMNS[1:]:
                if isinstance(row.get(key), (int, float)):
                    self._tensorboard.add_scalar(key, row[key], global_step=int(row["epoch"]))
            self._tensorboard.flush()

    def draw_curves(self) -> None:
        """(Re)draw curves.png from metrics.csv if it has rows the picture does not show: :meth:`append_metrics` calls
        it after the first epoch, then at most every :data:`CURVES_EVERY_S` seconds; the training loop calls it when
        its epochs end, however they end."""
        if not self.path or not self._undrawn:
            return
        self._drawn_at, self._undrawn = self._timer(), False
        try:  # a picture of metrics.csv: its failure costs the picture, never the run
            plot_runs({self.path.name: read_metrics(self.path / "metrics.csv")}, self.path / "curves.png",
                      title=self.path.name)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - any plotting failure (a full disk included) is a warning
            logging.getLogger(LOGGER).warning(f"could not draw {self.path / 'curves.png'}: {type(e).__name__}: {e}")

    def truncate_metrics(self, epochs_done: int) -> None:
        """On resume: drop rows of epochs after the checkpoint (written before a crash, not in the weights)."""
        file = self.path / "metrics.csv" if self.path else None
        if not file or not file.exists():
            return
        with open(file, newline="") as f:
            rows = [r for r in csv.DictReader(f) if _epoch(r) is not None]  # a partial last line has no epoch
        if rows and _epoch(rows[0]) == 0:  # written before epochs counted from 1: renumber
            rows = [dict(r, epoch=_epoch(r) + 1) for r in rows]
        rows = [r for r in rows if _epoch(r) <= epochs_done]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        self._write_text("metrics.csv", buf.getvalue())
        self._undrawn = True  # curves.png may show the dropped rows, or miss rows drawn less often than written

    def save_checkpoint(self, state: dict[str, Any], is_best: bool) -> None:
        if not self.path:
            return
        with self._writing("last.pt"):
            atomic_torch_save(state, self.path / "last.pt")
        if is_best:
            self._copy_last_to_best()

    def save_final(self, summary: dict[str, Any]) -> None:
        if self.path:
            self._write_text("final.json", json.dumps(summary, indent=2) + "\n")
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def _copy_last_to_best(self) -> None:
        def copy(f) -> None:
            with open(self.path / "last.pt", "rb") as src:
                shutil.copyfileobj(src, f)

        with self._writing("best.pt"):
            atomic_write(self.path / "best.pt", copy)

    def _write_text(self, name: str, text: str) -> None:
        with self._writing(name):
            atomic_write(self.path / name, lambda f: f.write(text.encode()))

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Turn a failed write of ``name`` into a RunFolderError that says what happened and how to continue."""
        try:
            yield
        except OSError as e:
            raise RunFolderError(write_failure(self.path, name, e)) from e


def write_failure(path: Path, name: str, e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device while writing {path / name}; free space and {continue_hint(path)}"
    return f"cannot write {path / name} ({e.strerror or e}); {continue_hint(path)} once it can be written"


def _epoch(row: dict[str, Any]) -> int | None:
    try:
        return int(row["epoch"])
    except (KeyError, TypeError, ValueError):
        return None


def _check_writable(path: Path) -> None:
    """The folder exists and is writable, or the nearest existing folder above it is (to create it)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunFolderError(f"cannot create run folder {path}: {existing} is a file; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"cannot write run folder {path}: {existing} is not writable; choose another --out")


class _RunLogHandler(logging.FileHandler):
    """train.log; a failed write (full disk) is left to the run's next file write to report, without a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def setup_logging(run: RunDir, is_main: bool) -> logging.Logger:
    """Console (stdout) and ``train.log`` in the run folder, rank 0 only; other ranks log warnings only."""
    log = logging.getLogger(LOGGER)
    for handler in log.handlers:  # a previous run's in this process (its train.log stays closed)
        handler.close()
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO if is_main else logging.WARNING)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    if run.path:
        with run._writing("train.log"):
            file = _RunLogHandler(run.path / "train.log")
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(file)
    return log
