"""Figures: confusion matrix (the paper's Fig. 4), explanation panels and grids (Fig. 5), attention maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_confusion_matrix(
    confusion: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "Confusion matrix"
) -> None:
    """Row-normalised confusion matrix (true class per row) with counts in the cells, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(class_names)
    size = min(max(4.0, 0.55 * n + 2.0), 24.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=100)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=class_names, rotation=45 if n > 5 else 0, ha="right" if n > 5 else "center")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.5 else "black")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


PANEL_SIZE_PX = (720, 270)  # width, height of one explanation panel (7.2 × 2.7 in at 100 dpi)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_explanation_panel(
    image: np.ndarray, cam: np.ndarray, sfr: np.ndarray, title: str, path: str | Path, correct: bool | None = None
) -> None:
    """Input | Grad-CAM overlay | SFR-map overlay, one row, :data:`PANEL_SIZE_PX` pixels.

    ``image``: [H, W] or [H, W, 3] in [0, 1]; ``cam`` and ``sfr``: [H, W] (cam in [0, 1], sfr a firing rate).
    """
    plt = _plt()
    w, h = PANEL_SIZE_PX
    # constrained layout fits the colour bar's tick labels inside the fixed panel size (hand-set margins cut
    # labels such as 0.0125 off at the right edge)
    fig, axes = plt.subplots(1, 3, figsize=(w / 100, h / 100), dpi=100, layout="constrained")
    gray = image.ndim == 2
    show = dict(cmap="gray", vmin=0, vmax=1) if gray else {}
    axes[0].imshow(image, interpolation="nearest", **show)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(image, interpolation="nearest", **show)
    axes[1].imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM (last block)", fontsize=9)
    axes[2].imshow(image, interpolation="nearest", **show)
    silent = float(sfr.max()) <= 0.0
    # a silent map gets the scale 0..1, not a colour bar of 0..1e-6 with an offset label
    im = axes[2].imshow(sfr, cmap="inferno", alpha=0.6, vmin=0, vmax=1.0 if silent else float(sfr.max()))
    axes[2].set_title("spike firing rate" + (" (no spikes)" if silent else ""), fontsize=9)
    bar = fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.03, format="%.2g")
    bar.ax.tick_params(labelsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    color = "black" if correct is None else ("darkgreen" if correct else "darkred")
    fig.suptitle(title, fontsize=10, color=color)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compose_grid(panels: Sequence[str | Path], path: str | Path, columns: int = 2) -> tuple[int, int]:
    """Tile panel PNGs into one image; returns its (width, height)."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in panels]
    w, h = images[0].size
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (w * min(columns, len(images)), h * rows), "white")
    for i, im in enumerate(images):
        grid.paste(im, ((i % columns) * w, (i // columns) * h))
    grid.save(path)
    return grid.size


def plot_attention_maps(maps: dict, path: str | Path, title: str, max_heads: int = 12) -> None:
    """One row per named map: per-head matrices as images, per-head counts as histograms, vectors as curves."""
    plt = _plt()
    rows = [(k, np.asarray(v, dtype=np.float64)) for k, v in maps.items()]
    cols = max(min(max_heads, v.shape[0]) if v.ndim == 3 else (min(max_heads, v.shape[1]) if "count" in k else 1)
               for k, v in rows)  # fmt: skip
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(1.9 * cols + 0.9, 2.0 * len(rows) + 0.4), squeeze=False, layout="constrained"
    )
    for r, (name, v) in enumerate(rows):
        counts = "count" in name  # [T, H, N] spike counts → one histogram per head
        # one colour scale for all heads of a row, so that heads compare; its bar beside the row's last image
        scale = dict(vmin=float(v.min()), vmax=float(v.max())) if v.ndim == 3 and not counts else {}
        for c in range(cols):
            ax = axes[r][c]
            if counts and v.ndim == 3 and c < v.shape[1]:
                ax.hist(v[:, c].ravel(), bins=np.arange(v.max() + 2) - 0.5, color="steelblue")
                ax.set_title(f"{name}, head {c}", fontsize=7)
                ax.tick_params(labelsize=6)
            elif not counts and v.ndim == 3 and c < v.shape[0]:  # [H, N, N] matrices
                im = ax.imshow(v[c], cmap="viridis", **scale)
                ax.set_title(f"{name}, head {c}", fontsize=7)
                ax.set_xticks([])
                ax.set_yticks([])
                if c == min(cols, v.shape[0]) - 1:
                    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
            elif c == 0 and v.ndim == 2:  # per-head or per-channel vectors
                ax.plot(v.T if v.shape[0] < v.shape[1] else v, linewidth=0.8)
                ax.set_title(name, fontsize=7)
                ax.tick_params(labelsize=6)
            else:
                ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
