"""s2tdpt explain: files and sizes, Grad-CAM localisation on a toy model, SFR map against a manual count."""

import re

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import s2tdpt
from s2tdpt import __version__
from s2tdpt.analysis.explain import grad_cam, sfr_map, upsample
from s2tdpt.analysis.plots import PANEL_SIZE_PX
from s2tdpt.attention import list_attentions
from s2tdpt.cli import main
from s2tdpt.engine.checkpoint import FORMAT, atomic_torch_save


def _calibrate_bn(m, passes=3):
    """Running BN statistics = plain averages over a few batches, so neurons fire in eval mode."""
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average
    m.train()
    with torch.no_grad():
        for _ in range(passes):
            m(torch.randn(8, 3, 32, 32))
    m.eval()


def _checkpoint(tmp_path, attention="stdp", model="s2tdpt_tiny", **overrides):
    torch.manual_seed(0)
    m = s2tdpt.create_model(model, attention=attention, num_classes=3, **overrides)
    _calibrate_bn(m)
    ckpt = dict(
        format=FORMAT, version=__version__, model_config=m.config.to_dict(), model=m.state_dict(), epoch=1,
        train_config={"dataset": "imagefolder", "data_dir": None, "batch_size": 4},
        dataset=dict(name="toy", class_names=["ant", "bee", "cat"], num_classes=3, img_size=32,
                     mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]),
    )  # fmt: skip
    path = tmp_path / f"{attention}.pt"
    atomic_torch_save(ckpt, path)
    return path


def _png_size(path):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.format, im.size


def test_explain_on_the_test_split_writes_valid_pngs(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "--model", "s2tdpt_tiny", "--dataset", "imagefolder", "--data-dir", str(image_folder)]
    train += ["--epochs", "1", "--batch-size", "4", "--warmup-epochs", "0", "--amp", "none", "--out", str(run)]
    assert main(train) == 0
    out = tmp_path / "explain"
    assert main(["explain", str(run / "last.pt"), "--num", "3", "--out", str(out)]) == 0
    for i in range(3):
        assert _png_size(out / f"panel_{i:03d}.png") == ("PNG", PANEL_SIZE_PX)
    w, h = PANEL_SIZE_PX
    assert _png_size(out / "grid.png") == ("PNG", (2 * w, 2 * h))  # 3 panels, 2 per row
    assert _png_size(out / "attention.png")[0] == "PNG"
    index = (out / "index.md").read_text()
    assert index.count("![panel](panel_") == 3 and "attention.png" in index and "true ant" not in index
    assert "| ant" in index or "| bee" in index or "| cat" in index


@pytest.mark.parametrize("attention", [a for a in list_attentions() if a != "softmax"] + ["ann"])
def test_explain_works_for_every_mechanism(attention, tmp_path):
    if attention == "ann":
        ckpt = _checkpoint(tmp_path, "softmax", "ann_4_384", embed_dim=32, depth=1, num_heads=2)
    else:
        ckpt = _checkpoint(tmp_path, attention)
    img = tmp_path / "x.png"
    Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(img)  # resized to 32×32 by explain
    out = tmp_path / "out"
    assert main(["explain", str(ckpt), "--images", str(img), str(img), "--out", str(out)]) == 0
    assert _png_size(out / "panel_001.png") == ("PNG", PANEL_SIZE_PX)
    assert (out / "attention.png").exists() == (attention != "identity")
    index = (out / "index.md").read_text()
    # one table row per image: number, file name, a predicted class of the checkpoint, no true label, its panel
    rows = re.findall(r"^\| (\d+) \| x\.png \| (\w+) \| – \| !\[panel\]\((panel_\d{3}\.png)\) \|$", index, re.M)
    assert [(i, panel) for i, _, panel in rows] == [("0", "panel_000.png"), ("1", "panel_001.png")], index
    assert rows[0][1] == rows[1][1] and rows[0][1] in ("ant", "bee", "cat")  # the same image twice
    assert ("## Attention maps: x.png" in index) == (attention != "identity"), index


class _RegionToy(nn.Module):
    """Features per 2×2 patch token: (brightness, darkness). Class 1 reads brightness, class 0 darkness."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))

    def forward_features(self, x):
        p = F.avg_pool2d(x, 2).flatten(1)  # [B, 16] on a 4×4 token grid
        feats = torch.stack([p, 1.0 - p], dim=-1)  # [B, N, 2]
        return feats.unsqueeze(0).expand(3, *feats.shape)  # time-first, T = 3

    def forward_head(self, u):
        return self.head(u.mean(0).mean(1))


@pytest.mark.parametrize("row,col", [(0, 0), (1, 3), (3, 2)])
def test_grad_cam_finds_the_region_that_decides_the_class(row, col):
    img = torch.full((1, 1, 8, 8), 0.2)
    img[..., 2 * row : 2 * row + 2, 2 * col : 2 * col + 2] = 1.0  # the only bright patch
    cams, logits = grad_cam(_RegionToy(), img, target=torch.tensor([1]))
    assert cams.shape == (1, 4, 4) and cams.max() == 1.0 and cams.min() >= 0
    assert divmod(int(cams[0].argmax()), 4) == (row, col)
    # the "dark" class looks everywhere else: its map is lowest on the bright patch
    dark, _ = grad_cam(_RegionToy(), img, target=torch.tensor([0]))
    assert divmod(int(dark[0].argmin()), 4) == (row, col)
    up = upsample(cams, 32)
    assert up.shape == (1, 32, 32)


def test_grad_cam_on_a_real_model_leaves_no_parameter_gradients():
    torch.manual_seed(0)
    m = s2tdpt.create_model("s2tdpt_tiny")
    cams, logits = grad_cam(m, torch.randn(2, 3, 32, 32))
    assert cams.shape == (2, 8, 8) and torch.isfinite(cams).all() and logits.shape == (2, 10)
    assert all(p.grad is None for p in m.parameters())


def test_sfr_map_equals_a_manual_count():
    torch.manual_seed(0)
    m = s2tdpt.create_model("s2tdpt_tiny", depth=2)
    _calibrate_bn(m)
    x = torch.randn(3, 3, 32, 32)
    spikes = []
    handles = [b.attn.in_lif.register_forward_hook(lambda mod, a, out: spikes.append(out.clone())) for b in m.blocks]
    with torch.no_grad():
        m(x)
    for h in handles:
        h.remove()
    manual = torch.zeros(3, 64)
    for s in spikes:  # [T, B, N, D] per block: count spikes per token over T and channels
        manual += s.sum(dim=(0, 3)) / (s.shape[0] * s.shape[3])
    manual /= len(spikes)
    sfr = sfr_map(m, x)
    torch.testing.assert_close(sfr, manual.view(3, 8, 8))
    assert sfr.max() > 0
    assert all(not mod._forward_hooks for mod in m.modules())
