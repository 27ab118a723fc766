"""``s2tdpt explain CHECKPOINT``: per-image Grad-CAM and firing-rate panels, a grid, attention maps, an index."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import transforms as T

from ..analysis.attention_maps import attention_maps
from ..analysis.explain import grad_cam, sfr_map, upsample
from ..analysis.plots import compose_grid, plot_attention_maps, plot_explanation_panel
from ..data.datasets import list_datasets, open_image
from ..engine.distributed import resolve_device
from .common import checkpoint_test_set, model_from_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="Grad-CAM and spike-firing-rate maps per image, attention maps",
        description="For each image: one PNG panel (input, Grad-CAM of the last block, spike-firing-rate map, "
        "predicted and true class); a grid of all panels; attention maps of one image; index.md linking them. "
        "Default images: --num images of the checkpoint's test split, taken from each class in turn (the first "
        "image of every class, then the second, ...), so that they cover the classes.",
    )
    p.add_argument("checkpoint", help="a .pt file written by s2tdpt train, or a folder written by s2tdpt export")
    p.add_argument("--images", nargs="+", metavar="PATH", help="image files to explain instead of a test split")
    p.add_argument(
        "--dataset", choices=list_datasets(), help="dataset whose test split to use (default: the training one)"
    )
    p.add_argument("--data-dir", help="dataset folder")
    p.add_argument("--num", type=int, default=8, help="number of test images, at least 1 (default 8)")
    p.add_argument(
        "--attention-image", type=int, default=0, help="which of the explained images (0, 1, ...) gets attention maps "
        "(default 0)",
    )  # fmt: skip
    p.add_argument(
        "--block", type=int, help="block for the attention maps, counted from 0; negative counts from the end "
        "(default: the last)",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def _load_images(paths: list[str], ckpt: dict, cfg) -> torch.Tensor:
    mean, std = ckpt["dataset"]["mean"], ckpt["dataset"]["std"]
    tf = T.Compose([T.Resize((cfg.img_size, cfg.img_size)), T.ToTensor(), T.Normalize(mean, std)])
    mode = "L" if cfg.in_chans == 1 else "RGB"
    return torch.stack([tf(open_image(p, mode)) for p in paths])  # ImageFileError names a file it cannot read


def resolve_block(block: int | None, depth: int) -> int:
    """``--block`` as an index in ``0 .. depth - 1`` (None: the last; negative: from the end)."""
    if block is None:
        return depth - 1
    if not -depth <= block < depth:
        raise ValueError(
            f"--block {block} does not exist: the model has {depth} block(s), numbered 0 to {depth - 1} (or -1 for "
            f"the last); leave --block out for the last block"
        )
    return block % depth


def block_label(index: int, depth: int) -> str:
    """``block 3 (the last, of 0–3)``: the real index, never ``-1``."""
    if depth == 1:
        return "block 0 (the only block)"
    return f"block {index} ({'the last, ' if index == depth - 1 else ''}of 0–{depth - 1})"


def split_labels(ds: Dataset) -> np.ndarray | None:
    """The labels of a (possibly subset) split without decoding its images, or None if it does not expose them."""
    if isinstance(ds, Subset):
        inner = split_labels(ds.dataset)
        return None if inner is None else inner[np.asarray(ds.indices, dtype=np.int64)]
    labels = getattr(ds, "labels", None)
    return None if labels is None else np.asarray(labels)


def spread_over_classes(labels: np.ndarray | None, count: int, n: int) -> list[int]:
    """``n`` indices of a ``count``-item split, taking each class in turn: its first item, then its second, ...

    A class-sorted folder's first ``n`` items would all be of one class. Without labels: ``n`` evenly spaced items.
    """
    n = min(n, count)
    if labels is None:
        return [i * count // n for i in range(n)]
    per_class = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    rounds = itertools.zip_longest(*per_class)  # (1st of each class), (2nd of each class), ...
    return sorted(i for i in itertools.islice((i for r in rounds for i in r if i is not None), n))


def _display_frames(x: torch.Tensor) -> np.ndarray:
    """Event frames ``[T, 2, H, W]`` as one RGB picture: OFF events summed over T in red, ON events in green."""
    off, on = x[:, 0].sum(0), x[:, 1].sum(0)
    scale = max(float(off.max()), float(on.max()), 1e-12)
    return torch.stack([off / scale, on / scale, torch.zeros_like(on)], dim=-1).numpy()


def _display(x: torch.Tensor, mean, std) -> np.ndarray:
    img = (x * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]).clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def run(args: argparse.Namespace) -> int:
    if args.num < 1:
        raise ValueError(f"--num must be at least 1 (the number of test images to explain), got {args.num}")
    model, ckpt = model_from_checkpoint(args.checkpoint)
    cfg = model.config
    block = resolve_block(args.block, cfg.depth)
    device = resolve_device(args.device)
    model.to(device)
    classes = list(ckpt["dataset"]["class_names"])
    frames = ckpt["dataset"].get("layout") == "frames"
    if frames and args.images:
        raise ValueError(
            f"the model of {args.checkpoint} reads event frames, not image files; leave out --images to explain "
            f"recordings of its test set"
        )
    if args.images:
        images, labels = _load_images(args.images, ckpt, cfg), [None] * len(args.images)
        names = [Path(p).name for p in args.images]
    else:
        ds, _ = checkpoint_test_set(ckpt, args.dataset, args.data_dir, n_images=None)
        picked = spread_over_classes(split_labels(ds), len(ds), args.num)
        samples = [ds[i] for i in picked]
        # frames batch time-first, [T, B, C, H, W]: sample i is images[:, i]
        images = torch.stack([s[0] for s in samples], dim=1 if frames else 0)
        labels = [int(s[1]) for s in samples]
        names = [f"test image {i}" for i in picked]
    count = images.shape[1] if frames else len(images)

    def sample(i: int) -> torch.Tensor:
        return images[:, i] if frames else images[i]

    if not 0 <= args.attention_image < count:
        raise ValueError(
            f"--attention-image {args.attention_image} does not exist: {count} image(s) are explained, "
            f"numbered 0 to {count - 1}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    images = images.to(device)
    cams, logits = grad_cam(model, images)
    sfr = sfr_map(model, images)
    size = cfg.img_size
    cams_up, sfr_up = upsample(cams, size).cpu().numpy(), upsample(sfr, size).cpu().numpy()
    probs = logits.softmax(1).cpu()
    mean, std = ckpt["dataset"]["mean"], ckpt["dataset"]["std"]
    rows, panels = [], []
    for i in range(count):
        pred = int(probs[i].argmax())
        true = labels[i]
        title = f"{names[i]}: predicted {classes[pred]} ({100 * probs[i, pred]:.0f} %)"
        title += f", true {classes[true]}" if true is not None else ""
        panel = out / f"panel_{i:03d}.png"
        plot_explanation_panel(
            _display_frames(sample(i).cpu()) if frames else _display(sample(i).cpu(), mean, std),
            cams_up[i],
            sfr_up[i],
            title,
            panel,
            None if true is None else pred == true,
        )
        panels.append(panel)
        mark = "" if true is None else (" ✓" if pred == true else " ✗")
        rows.append(f"| {i} | {names[i]} | {classes[pred]} | {classes[true] if true is not None else '–'}{mark} | "
                    f"![panel]({panel.name}) |")  # fmt: skip
    compose_grid(panels, out / "grid.png")

    k = args.attention_image
    maps = attention_maps(model, sample(k), block)
    where = block_label(block, cfg.depth)
    lines = [f"# Explanations: {Path(args.checkpoint)}", ""]
    lines += [f"Model {cfg.attention} attention, {cfg.depth} blocks, D = {cfg.embed_dim}, T = {cfg.timesteps}. "
              "Grad-CAM on the last block's features (mean over T); spike firing rate of the tokens entering each "
              "block's attention, averaged over timesteps, heads and blocks.", ""]  # fmt: skip
    lines += ["| # | image | predicted | true | panel |", "|---|---|---|---|---|", *rows, "", "![grid](grid.png)", ""]
    if maps:
        plot_attention_maps(
            {k2: v.cpu() for k2, v in maps.items()},
            out / "attention.png",
            f"{cfg.attention}, {where}, {names[k]}",
        )
        lines += [f"## Attention maps: {names[k]}, {where}", "", "![attention](attention.png)", ""]
    else:
        lines += [f"{cfg.attention} attention has no map to show (no token mixing).", ""]
    (out / "index.md").write_text("\n".join(lines))
    print(f"wrote {len(panels)} panels, grid.png{', attention.png' if maps else ''} and index.md to {out}")
    return 0
