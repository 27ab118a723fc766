"""Wall-clock budgets, tokenizer pooling placement, decoded image folders, the budget benchmark."""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import Interrupted, step_clock

import s2tdpt
from s2tdpt.bench.budget import main as budget_main
from s2tdpt.cli import main
from s2tdpt.data.datasets import ArrayDataset, FolderDataset, build_datasets
from s2tdpt.engine.checkpoint import load_checkpoint
from s2tdpt.engine.config import build_config, load_yaml
from s2tdpt.engine.train import train
from s2tdpt.models import MODEL_CONFIGS, create_model

REPO = Path(__file__).resolve().parents[1]
BUDGET_S, LR, MIN_LR = 5.0, 3e-3, 1e-5


def _budget_config(data: Path, out: Path):
    """8 training images in batches of 4 (2 steps an epoch), 50 nominal epochs (100 steps), a 5 s budget."""
    return build_config(dict(
        model="s2tdpt_tiny", dataset="imagefolder", data_dir=str(data), limit_train=8, limit_test=6, batch_size=4,
        epochs=50, warmup_epochs=0, lr=LR, min_lr=MIN_LR, time_budget=BUDGET_S, amp="none", out=str(out),
    ))  # fmt: skip


@pytest.fixture(scope="module")
def budget_run(image_folder, tmp_path_factory) -> tuple[Path, int]:
    """A budget run on the simulated clock (1 s per optimiser step): its folder and the steps it took."""
    run = tmp_path_factory.mktemp("budget") / "run"
    with step_clock(1.0) as clock:
        train(_budget_config(image_folder, run), timer=clock)
    return run, clock.steps


def test_time_budget_stops_training_and_spreads_the_schedule(budget_run):
    # Steps are taken at t = 0 … 4 s; before each, the budget check (t ≥ 5 s?) and the schedule position
    # int(t / 5 s · 100 planned steps). Epochs 1–2: 2 steps each; epoch 3 stops after 1 of its 2 steps.
    budget_run, steps = budget_run
    final = json.loads((budget_run / "final.json").read_text())
    assert (final["time_budget"], final["train_seconds"], final["epochs_reached"], final["epochs"]) == (5, 5, 2.5, 3)
    with open(budget_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["train_s"]) for r in rows] == [2.0, 4.0, 5.0]
    assert [float(r["epoch_s"]) for r in rows] == [2.0, 2.0, 1.0]  # evaluation takes no optimiser step
    assert [float(r["images_per_s"]) for r in rows] == [4.0, 4.0, 4.0]
    # the learning rate of each epoch's last step (t = 1, 3, 4 s): the cosine spread over the budget, not 50 epochs
    cosine = [MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * p / 100)) for p in (20, 60, 80)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(cosine, rel=1e-9)
    ckpt = load_checkpoint(budget_run / "last.pt")
    assert (ckpt["epoch"], ckpt["train_seconds"], ckpt["epochs_reached"]) == (3, 5.0, 2.5)
    assert steps == 5


def test_time_budget_resume_continues_the_clock(budget_run, image_folder, tmp_path):
    budget_run, _ = budget_run
    run = tmp_path / "run"
    with step_clock(1.0, fail_at=4) as clock, pytest.raises(Interrupted):  # killed at the 2nd step of epoch 2
        train(_budget_config(image_folder, run), timer=clock)
    assert load_checkpoint(run / "last.pt")["train_seconds"] == 2.0
    with step_clock(1.0) as clock:
        train(_budget_config(image_folder, run), resume=run, timer=clock)
    assert clock.steps == 3  # epoch 2 again, then 1 step of epoch 3: the 2 s of epoch 1 were counted
    for name in ("final.json", "metrics.csv"):
        assert (run / name).read_text() == (budget_run / name).read_text(), name
    a, b = load_checkpoint(run / "last.pt"), load_checkpoint(budget_run / "last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    # extending the budget is not a resumable change: a finished budget run stays finished
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "final.json").read_text() == (budget_run / "final.json").read_text()
    assert load_checkpoint(run / "last.pt")["epoch"] == 3


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
    # 8 training images in batches of 4: 2 steps an epoch; on the simulated clock (1 s a step) a 3 s budget stops
    # each run after 3 steps, 1.5 epochs, on any machine
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(
        model="s2tdpt_tiny", dataset="imagefolder", data_dir=str(image_folder), epochs=10, time_budget=3.0,
        limit_train=8, limit_test=6, batch_size=4, warmup_epochs=0, amp="none",
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
    with step_clock(1.0) as clock:
        assert budget_main(args, timer=clock) == 0
    assert clock.steps == 6
    out = capsys.readouterr().out
    for name in ("stdp", "ann"):  # attention, seed, params, epochs reached, …, images/s (4 images a second)
        assert re.search(rf"^\| {name} \| 0 \| [\d,]+ \| 1\.50 \| .* µJ \| 4 \|$", out, re.M), out
        assert json.loads((tmp_path / "runs" / f"{name}-s0" / "final.json").read_text())["train_seconds"] == 3.0
    finished = {p.name: (p / "final.json").stat().st_mtime for p in (tmp_path / "runs").iterdir()}
    assert set(finished) == {"stdp-s0", "ann-s0"}
    ann_cfg = yaml.safe_load((tmp_path / "runs" / "ann-s0" / "config.yaml").read_text())
    assert ann_cfg["attention"] == "softmax" and ann_cfg["timesteps"] == 1 and ann_cfg["neuron"] == "relu"
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


def test_budget_benchmark_crosses_mechanisms_with_neurons(image_folder, tmp_path, capsys):
    # a recipe that names a neuron: --neurons replaces it for the spiking runs, and the ANN keeps its ReLU
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(
        model="s2tdpt_tiny", dataset="imagefolder", data_dir=str(image_folder), epochs=10, time_budget=1.0,
        limit_train=4, limit_test=4, batch_size=4, warmup_epochs=0, amp="none", neuron="plif",
    )))  # fmt: skip
    args = ["-c", str(recipe), "--out-root", str(tmp_path / "runs"), "--energy-images", "4", "--attentions", "stdp"]
    with pytest.raises(SystemExit, match="unknown --neurons nope; available: .*ilif.*lif.*plif"):
        budget_main([*args, "ann", "--neurons", "ilif", "nope"])
    assert not (tmp_path / "runs").exists()
    with step_clock(1.0) as clock:
        assert budget_main([*args, "ann", "--neurons", "ilif", "lif"], timer=clock) == 0
    runs = {p.name: yaml.safe_load((p / "config.yaml").read_text())["neuron"] for p in (tmp_path / "runs").iterdir()}
    assert runs == {"stdp-ilif-s0": "ilif", "stdp-lif-s0": "lif", "ann-s0": "relu"}
    out = capsys.readouterr().out
    for label in ("stdp \\+ ilif", "stdp \\+ lif", "ann \\+ relu"):
        assert re.search(rf"^\| {label} \| 0 \| [\d,]+ \|", out, re.M), out


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
