"""Wall-clock budgets, tokenizer pooling placement, decoded image folders, the budget benchmark."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import s2tdpt
from s2tdpt.bench.budget import main as budget_main
from s2tdpt.cli import main
from s2tdpt.data.datasets import ArrayDataset, FolderDataset, build_datasets
from s2tdpt.engine.checkpoint import load_checkpoint
from s2tdpt.engine.config import build_config, load_yaml
from s2tdpt.models import MODEL_CONFIGS, create_model

REPO = Path(__file__).resolve().parents[1]


def _tiny(data, out, *extra):
    return [
        "train", "--model", "s2tdpt_tiny", "--dataset", "imagefolder", "--data-dir", str(data), "--batch-size", "4",
        "--warmup-epochs", "0", "--amp", "none", "--out", str(out), *extra,
    ]  # fmt: skip


def test_time_budget_stops_training_and_spreads_the_schedule(image_folder, tmp_path):
    run = tmp_path / "run"
    assert main(_tiny(image_folder, run, "--epochs", "50", "--time-budget", "2.5", "--min-lr", "1e-6")) == 0
    final = json.loads((run / "final.json").read_text())
    assert final["time_budget"] == 2.5
    assert 2.5 <= final["train_seconds"] < 2.5 + 15.0  # stops at the first step past the budget (loose: shared CPU)
    assert 0 < final["epochs_reached"] < 50
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[-1] < lrs[0] and lrs[-1] < 1e-4  # the cosine reached its end with the budget
    assert [float(r["train_s"]) for r in rows] == sorted(float(r["train_s"]) for r in rows)
    assert load_checkpoint(run / "last.pt")["train_seconds"] == pytest.approx(final["train_seconds"], abs=0.1)


def test_time_budget_resume_continues_the_clock(image_folder, tmp_path):
    run = tmp_path / "run"
    assert main(_tiny(image_folder, run, "--epochs", "50", "--time-budget", "1.0")) == 0
    spent = json.loads((run / "final.json").read_text())["train_seconds"]
    # extending the budget is not a resumable change: a finished budget run stays finished
    assert main(["train", "--resume", str(run)]) == 0
    again = json.loads((run / "final.json").read_text())
    assert again["train_seconds"] == pytest.approx(spent, abs=0.1)


def test_pool_placement():
    paper = s2tdpt.create_model("s2tdpt_tiny")
    early = s2tdpt.create_model("s2tdpt_tiny", pool_at=(1, 2))
    assert paper.config.pool_stages == (2, 3) and early.config.pool_stages == (1, 2)
    assert early.config.num_tokens == paper.config.num_tokens == 64
    pools = [type(s.pool).__name__ for s in early.patch_embed.stages]
    assert pools == ["Identity", "ChannelsLastMaxPool2d", "ChannelsLastMaxPool2d", "Identity"]
    assert early(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="'pool_at'"):
        s2tdpt.create_model("s2tdpt_tiny", pool_at=(4,))
    with pytest.raises(ValueError, match="'img_size'"):
        s2tdpt.create_model("s2tdpt_tiny", pool_at=(0, 1, 2), img_size=28)
    cfg = s2tdpt.S2TDPTConfig.from_dict(early.config.to_dict() | {"pool_at": [2, 1]})  # lists from YAML
    assert cfg.pool_at == (1, 2)


def test_image_folder_is_decoded_once(image_folder):
    train, test, info = build_datasets("imagefolder", str(image_folder))
    assert isinstance(train, ArrayDataset) and train.images.shape == (48, 32, 32, 3)
    lazy = FolderDataset(image_folder / "train", list(info.class_names))
    for i in (0, 20, 47):
        assert np.array_equal(np.asarray(train[i][0]), np.asarray(lazy[i][0])) and train[i][1] == lazy[i][1]


def test_budget_benchmark_runs_resumes_and_reports(image_folder, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(
        model="s2tdpt_tiny", dataset="imagefolder", data_dir=str(image_folder), epochs=10, time_budget=1.5,
        batch_size=4, warmup_epochs=0, amp="none",
    )))  # fmt: skip
    args = [
        "-c",
        str(recipe),
        "--out-root",
        str(tmp_path / "runs"),
        "--attentions",
        "stdp",
        "ann",
        "--energy-images",
        "6",
    ]
    assert budget_main(args) == 0
    out = capsys.readouterr().out
    assert "| stdp | 0 |" in out and "| ann | 0 |" in out and "µJ" in out
    finished = {p.name: (p / "final.json").stat().st_mtime for p in (tmp_path / "runs").iterdir()}
    assert set(finished) == {"stdp-s0", "ann-s0"}
    ann_cfg = yaml.safe_load((tmp_path / "runs" / "ann-s0" / "config.yaml").read_text())
    assert (
        ann_cfg["attention"] == "softmax" and ann_cfg["timesteps"] == 1 and ann_cfg["model_kwargs"]["neuron"] == "relu"
    )
    assert budget_main(args) == 0  # a second call reuses finished runs
    assert {p.name: (p / "final.json").stat().st_mtime for p in (tmp_path / "runs").iterdir()} == finished
    recipe.write_text(yaml.safe_dump(dict(model="s2tdpt_tiny", dataset="imagefolder", data_dir=str(image_folder))))
    with pytest.raises(SystemExit, match="no time_budget"):
        budget_main(args)
    with pytest.raises(SystemExit, match="positive number of seconds"):
        budget_main([*args, "--time-budget", "0"])
    # --time-budget supplies the budget the recipe lacks; finished runs are still reused
    assert budget_main([*args, "--time-budget", "1.5"]) == 0
    assert {p.name: (p / "final.json").stat().st_mtime for p in (tmp_path / "runs").iterdir()} == finished


@pytest.mark.parametrize("recipe", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(recipe):
    cfg = build_config(load_yaml(recipe), {"out": "unused"})
    assert cfg.model in MODEL_CONFIGS
    if recipe.name.startswith("cpu_"):
        assert cfg.time_budget and cfg.model == "s2tdpt_cpu"


def test_cpu_model_tokenizes_32px_into_64_tokens():
    model = create_model("s2tdpt_cpu").eval()
    assert model.config.pool_stages == (1, 2) and model.config.timesteps == 2
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.config.token_grid == (8, 8)
