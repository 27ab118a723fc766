"""Pictures of training: a run's curves (``curves.png``, redrawn as the run goes: ``RunDir.draw_curves``) and
several runs' side by side (``s2tdpt compare``). Read from ``metrics.csv``; matplotlib (Agg) is imported on first
use."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

from .checkpoint import atomic_write

PANELS = (  # (title, [(column, label)])
    ("loss", [("train_loss", "train"), ("test_loss", "test")]),
    ("top-1 (%)", [("train_top1", "train"), ("test_top1", "test")]),
    ("learning rate", [("lr", "lr")]),
)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as numbers (empty cells and a partial last line are skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    continue
            if "epoch" in row:
                rows.append(row)
    return rows


def plot_runs(runs: Mapping[str, list[dict[str, float]]], out: str | Path, title: str = "") -> Path:
    """One figure, a panel per quantity of :data:`PANELS`, a line per run (and per split); written atomically."""
    # a Figure with its own Agg canvas, not pyplot: the process's backend (a notebook's) stays as it is
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(PANELS), 3.4), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(PANELS))
    single = len(runs) == 1
    for ax, (name, columns) in zip(axes, PANELS, strict=True):
        for run, rows in runs.items():
            for col, split in columns:
                pts = [(r["epoch"], r[col]) for r in rows if col in r]
                if not pts:
                    continue
                label = split if single else (run if len(columns) == 1 else f"{run} {split}")
                style = "--" if split == "train" else "-"
                ax.plot(*zip(*pts, strict=True), style, marker="." if len(pts) < 30 else None, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if name == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    # fixed margins: tight_layout's text measuring was 40 % of the drawing time, paid at every redraw
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.16, top=0.82 if title else 0.88, wspace=0.28)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    out = Path(out)
    atomic_write(out, lambda f: f.write(buf.getvalue()))
    return out
