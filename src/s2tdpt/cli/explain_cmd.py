"""``s2tdpt explain CHECKPOINT``: per-image Grad-CAM and firing-rate panels, a grid, attention maps, an index."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from ..analysis.attention_maps import attention_maps
from ..analysis.explain import grad_cam, sfr_map, upsample
from ..analysis.plots import compose_grid, plot_attention_maps, plot_explanation_panel
from ..data.datasets import DATASETS
from ..engine.distributed import resolve_device
from .common import checkpoint_test_set, model_from_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="Grad-CAM and spike-firing-rate maps per image, attention maps",
        description="For each image: one PNG panel (input, Grad-CAM of the last block, spike-firing-rate map, "
        "predicted and true class); a grid of all panels; attention maps of one image; index.md linking them. "
        "Default images: the first --num of the checkpoint's test split.",
    )
    p.add_argument("checkpoint", help="a .pt file written by s2tdpt train")
    p.add_argument("--images", nargs="+", metavar="PATH", help="image files to explain instead of a test split")
    p.add_argument("--dataset", choices=DATASETS, help="dataset whose test split to use (default: the training one)")
    p.add_argument("--data-dir", help="dataset folder")
    p.add_argument("--num", type=int, default=8, help="number of test images (default 8)")
    p.add_argument("--attention-image", type=int, default=0, help="which image gets attention maps (default 0)")
    p.add_argument("--block", type=int, default=-1, help="block for the attention maps (default: the last)")
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def _load_images(paths: list[str], ckpt: dict, cfg) -> torch.Tensor:
    mean, std = ckpt["dataset"]["mean"], ckpt["dataset"]["std"]
    tf = T.Compose([T.Resize((cfg.img_size, cfg.img_size)), T.ToTensor(), T.Normalize(mean, std)])
    mode = "L" if cfg.in_chans == 1 else "RGB"
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(tf(im.convert(mode)))
        except OSError as e:
            raise ValueError(f"cannot read image {p}: {e}") from e
    return torch.stack(out)


def _display(x: torch.Tensor, mean, std) -> np.ndarray:
    img = (x * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]).clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def run(args: argparse.Namespace) -> int:
    model, ckpt = model_from_checkpoint(args.checkpoint)
    cfg = model.config
    device = resolve_device(args.device)
    model.to(device)
    classes = list(ckpt["dataset"]["class_names"])
    if args.images:
        images, labels = _load_images(args.images, ckpt, cfg), [None] * len(args.images)
        names = [Path(p).name for p in args.images]
    else:
        ds, _ = checkpoint_test_set(ckpt, args.dataset, args.data_dir, n_images=None)
        n = min(args.num, len(ds))
        samples = [ds[i] for i in range(n)]
        images, labels = torch.stack([s[0] for s in samples]), [int(s[1]) for s in samples]
        names = [f"test image {i}" for i in range(n)]
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
    for i in range(len(images)):
        pred = int(probs[i].argmax())
        true = labels[i]
        title = f"{names[i]}: predicted {classes[pred]} ({100 * probs[i, pred]:.0f} %)"
        title += f", true {classes[true]}" if true is not None else ""
        panel = out / f"panel_{i:03d}.png"
        plot_explanation_panel(
            _display(images[i].cpu(), mean, std),
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

    k = min(max(args.attention_image, 0), len(images) - 1)
    maps = attention_maps(model, images[k], args.block)
    lines = [f"# Explanations: {Path(args.checkpoint)}", ""]
    lines += [f"Model {cfg.attention} attention, {cfg.depth} blocks, D = {cfg.embed_dim}, T = {cfg.timesteps}. "
              "Grad-CAM on the last block's features (mean over T); spike firing rate of the tokens entering each "
              "block's attention, averaged over timesteps, heads and blocks.", ""]  # fmt: skip
    lines += ["| # | image | predicted | true | panel |", "|---|---|---|---|---|", *rows, "", "![grid](grid.png)", ""]
    if maps:
        plot_attention_maps(
            {k2: v.cpu() for k2, v in maps.items()},
            out / "attention.png",
            f"{cfg.attention}, block {args.block}, {names[k]}",
        )
        lines += [f"## Attention maps ({names[k]}, block {args.block})", "", "![attention](attention.png)", ""]
    else:
        lines += [f"{cfg.attention} attention has no map to show (no token mixing).", ""]
    (out / "index.md").write_text("\n".join(lines))
    print(f"wrote {len(panels)} panels, grid.png{', attention.png' if maps else ''} and index.md to {out}")
    return 0
