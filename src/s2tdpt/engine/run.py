"""The run folder: resolved config, metrics.csv, train.log, final.json, checkpoints. Only rank 0 writes."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .checkpoint import atomic_torch_save
from .config import TrainConfig, save_yaml

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
LOGGER = "s2tdpt"


def default_out(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.dataset}-{cfg.model}"


class RunDir:
    """Writes the artefacts of one run. ``RunDir(None)`` (non-zero DDP ranks) writes nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @staticmethod
    def check_new(path: Path) -> None:
        """Refuse a folder that already holds a run (called before any work, so nothing is overwritten)."""
        if (path / "last.pt").exists() or (path / "metrics.csv").exists():
            raise FileExistsError(
                f"run folder {path} already holds a run; continue it with --resume {path} or choose another --out"
            )

    @classmethod
    def create(cls, path: Path) -> RunDir:
        cls.check_new(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def save_config(self, cfg: TrainConfig) -> None:
        if self.path:
            save_yaml(cfg, self.path / "config.yaml")

    def append_metrics(self, row: dict[str, Any]) -> None:
        if not self.path:
            return
        file = self.path / "metrics.csv"
        new = not file.exists()
        with open(file, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in METRIC_COLUMNS})

    def truncate_metrics(self, epochs_done: int) -> None:
        """On resume: drop rows of epochs after the checkpoint (written before a crash, not in the weights)."""
        file = self.path / "metrics.csv" if self.path else None
        if not file or not file.exists():
            return
        with open(file, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and int(rows[0]["epoch"]) == 0:  # written before epochs counted from 1: renumber
            rows = [dict(r, epoch=int(r["epoch"]) + 1) for r in rows]
        rows = [r for r in rows if int(r["epoch"]) <= epochs_done]
        with open(file, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)

    def save_checkpoint(self, state: dict[str, Any], is_best: bool) -> None:
        if not self.path:
            return
        atomic_torch_save(state, self.path / "last.pt")
        if is_best:
            tmp = self.path / ".best.pt.tmp"
            shutil.copyfile(self.path / "last.pt", tmp)
            tmp.replace(self.path / "best.pt")

    def save_final(self, summary: dict[str, Any]) -> None:
        if self.path:
            (self.path / "final.json").write_text(json.dumps(summary, indent=2) + "\n")


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
        file = logging.FileHandler(run.path / "train.log")
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(file)
    return log
