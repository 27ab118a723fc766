"""The s2tdpt CLI end to end on tiny data: train → eval, config precedence, errors, resume, checkpoints."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from s2tdpt.cli import build_parser, main
from s2tdpt.cli.train_cmd import resolve
from s2tdpt.engine.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint
from s2tdpt.engine.config import config_keys
from s2tdpt.snn import compiled

REPO = Path(__file__).resolve().parents[1]


def tiny_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--model", "s2tdpt_tiny", "--dataset", "imagefolder", "--data-dir", str(data), "--epochs", "2",
        "--batch-size", "4", "--warmup-epochs", "0", "--lr", "5e-3", "--amp", "none", "--out", str(out), *extra,
    ]  # fmt: skip


def test_train_then_eval_reproduces_the_reported_accuracy(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(image_folder, run)) == 0
    printed = capsys.readouterr().out
    assert "test top-1" in printed
    for name in ("config.yaml", "metrics.csv", "final.json", "last.pt", "best.pt", "train.log"):
        assert (run / name).is_file(), name
    final = json.loads((run / "final.json").read_text())
    assert {"final_test_top1", "best_test_top1", "best_epoch", "epochs", "params"} <= set(final)
    assert final["epochs"] == 2 and final["params"] == sum(
        p.numel() for p in load_model_from(run / "last.pt").parameters()
    )
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert set(rows[0]) >= {"lr", "train_loss", "train_top1", "test_top1", "test_top5", "epoch_s", "images_per_s"}
    assert float(rows[-1]["test_top1"]) == pytest.approx(final["final_test_top1"], abs=1e-3)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["model"] == "s2tdpt_tiny" and len(saved["mean"]) == 3

    assert main(["eval", str(run / "last.pt"), "--out", str(tmp_path / "ev")]) == 0
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["top1"] == pytest.approx(final["final_test_top1"], abs=1e-9)
    assert report["images"] == 18 and set(report["per_class_top1"]) == {"ant", "bee", "cat"}
    with open(tmp_path / "ev" / "confusion_matrix.csv") as f:
        cm = list(csv.reader(f))
    assert cm[0] == ["true \\ predicted", "ant", "bee", "cat"]
    assert sum(int(v) for row in cm[1:] for v in row[1:]) == 18
    png = (tmp_path / "ev" / "confusion_matrix.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def load_model_from(path: Path):
    from s2tdpt.models import S2TDPT, S2TDPTConfig

    ckpt = load_checkpoint(path)
    model = S2TDPT(S2TDPTConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model


def test_training_learns_the_tiny_task(image_folder, tmp_path):
    run = tmp_path / "run"
    assert main(tiny_args(image_folder, run, "--epochs", "6")) == 0
    final = json.loads((run / "final.json").read_text())
    assert final["best_test_top1"] > 60.0  # three classes: chance is 33 %


def test_precedence_defaults_yaml_flags(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 7\nlr: 0.1\nmodel_kwargs: {num_heads: 1}\n")
    args = build_parser().parse_args(["train", "-c", str(cfg_file), "--lr", "0.2"])
    cfg, resume = resolve(args)
    assert (cfg.epochs, cfg.lr, cfg.model_kwargs, cfg.batch_size) == (7, 0.2, {"num_heads": 1}, 64)
    assert resume is None


def test_unknown_yaml_key_lists_valid_keys(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochz: 7\n")
    assert main(["train", "-c", str(cfg_file)]) == 1
    err = capsys.readouterr().err
    assert "unknown key(s) ['epochz']" in err and "valid keys: model, attention" in err


def test_unknown_flag_lists_valid_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epoch", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option(s) --epoch 3" in err and "--epochs" in err and "--batch-size" in err


def test_bad_values_are_errors(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--amp", "fp8"]) == 1
    assert "config key 'amp' must be one of" in capsys.readouterr().err
    assert main(["train", "--model-kwargs", "{depht: 2}", "--epochs", "2", "--warmup-epochs", "0"]) == 1
    assert "unknown model option(s) ['depht']" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # a run that fails to start leaves no run folder behind


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for key in config_keys():
        assert "--" + key.replace("_", "-") in text, key
    for flag in ("--resume", "-c"):
        assert flag in text


def test_existing_run_folder_is_not_overwritten(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(image_folder, run, "--epochs", "1")) == 0
    before = (run / "last.pt").read_bytes()
    assert main(tiny_args(image_folder, run, "--epochs", "1")) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "s2tdpt", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def test_killed_run_resumes_to_identical_weights(image_folder, tmp_path):
    epochs = ["--epochs", "4"]
    ref = tmp_path / "ref"
    assert _cli(*tiny_args(image_folder, ref, *epochs)).wait(timeout=300) == 0

    run = tmp_path / "run"
    proc = _cli(*tiny_args(image_folder, run, *epochs))
    deadline = time.time() + 300
    while not (run / "last.pt").exists():  # kill as soon as the first checkpoint lands: mid-way through epoch 2
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(run / "last.pt")["epoch"]
    assert done < 4

    resumed = _cli("train", "--resume", str(run))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resuming {run} after epoch {done}/4" in out

    a, b = load_checkpoint(ref / "last.pt"), load_checkpoint(run / "last.pt")
    assert a["epoch"] == b["epoch"] == 4
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    with open(run / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]


def test_resume_refuses_config_changes(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(image_folder, run, "--epochs", "1")) == 0
    assert main(["train", "--resume", str(run), "--lr", "1.0"]) == 1
    assert "--resume cannot change ['lr']" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 1
    assert "no config.yaml and last.pt" in capsys.readouterr().err
    # extending a finished run is allowed
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    atomic_torch_save({"a": torch.ones(3)}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


def test_corrupted_checkpoint_is_a_clear_error(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(image_folder, run, "--epochs", "1")) == 0
    data = (run / "last.pt").read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupted or not a PyTorch checkpoint"):
        load_checkpoint(bad)
    assert main(["eval", str(bad)]) == 1
    assert "truncated, corrupted" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(CheckpointError, match="not an s2tdpt checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(image_folder, tmp_path, monkeypatch, capsys):
    from s2tdpt.models.s2tdpt import S2TDPT

    calls = {"n": 0}
    original = S2TDPT.forward_head

    def poisoned(self, u):
        calls["n"] += 1 if self.training else 0
        out = original(self, u)
        return out * float("nan") if self.training and calls["n"] > 12 else out  # epoch 1 = 12 steps

    monkeypatch.setattr(S2TDPT, "forward_head", poisoned)
    run = tmp_path / "run"
    assert main(tiny_args(image_folder, run, "--epochs", "3")) == 1
    err = capsys.readouterr().err
    assert "loss became nan at epoch 2, step 1" in err and "last good checkpoint" in err
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


@pytest.mark.skipif(not compiled.available("cpu"), reason="torch.compile does not work here")
def test_compiled_training_and_evaluation_match_eager(image_folder, tmp_path, capsys):
    # the wiring of `--compile on`: one epoch with and without it (same seed, fp32). The losses agree closely, not
    # exactly (AdamW turns rounding-level gradient differences into ±lr steps; test_fast checks one step exactly).
    # Then `eval --compile` (a frozen graph for batches of 4, the last batch of 2 eager) against plain `eval`.
    runs = {}
    for mode in ("off", "on"):
        run = tmp_path / mode
        args = tiny_args(image_folder, run, "--lif-backend", "compiled", "--compile", mode)
        args[args.index("--epochs") + 1] = "1"
        assert main(args) == 0
        assert yaml.safe_load((run / "config.yaml").read_text())["compile"] == mode
        with open(run / "metrics.csv") as f:
            runs[mode] = next(csv.DictReader(f))
    assert "compiled (the first step compiles)" in (tmp_path / "on" / "train.log").read_text()
    for key in ("train_loss", "test_loss"):
        assert float(runs["on"][key]) == pytest.approx(float(runs["off"][key]), rel=0.03), key

    reports = []
    for extra in ([], ["--compile"]):
        out = tmp_path / f"ev{len(extra)}"
        assert main(["eval", str(tmp_path / "on" / "last.pt"), "--batch-size", "4", "--out", str(out), *extra]) == 0
        reports.append(json.loads((out / "eval.json").read_text()))
    assert reports[0]["images"] == reports[1]["images"] == 18
    assert reports[1]["top1"] == reports[0]["top1"]
    assert reports[1]["loss"] == pytest.approx(reports[0]["loss"], rel=1e-5)


def test_quick_start_command_runs(tmp_path):
    # The README's main job, shortened to two epochs: no arguments but those, digits embedded, CPU.
    res = subprocess.run(
        [sys.executable, "-m", "s2tdpt", "train", "--epochs", "2", "--warmup-epochs", "0", "--out", "qs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "test top-1" in res.stdout and "digits" in res.stdout
    assert "it/s" not in res.stderr  # no progress bar when not a terminal
    final = json.loads((tmp_path / "qs" / "final.json").read_text())
    assert final["dataset"] == "digits" and final["final_test_top1"] > 50.0


def test_paper_recipe_config_runs_a_few_steps(image_folder, tmp_path):
    # configs/cifar10_s2tdpt_4_384.yaml on a tiny image folder: the full 4-384 model, the paper's augmentation,
    # mixup and schedule, for one short epoch. Keeps the recipe from rotting.
    run = tmp_path / "paper"
    args = [
        "train", "-c", str(REPO / "configs" / "cifar10_s2tdpt_4_384.yaml"), "--dataset", "imagefolder",
        "--data-dir", str(image_folder), "--mean", "cifar10", "--std", "cifar10", "--epochs", "3",
        "--warmup-epochs", "1", "--cooldown-epochs", "1", "--mixup-off-epoch", "2", "--batch-size", "4",
        "--limit-train", "8", "--limit-test", "4", "--workers", "0", "--out", str(run), "--compile", "off",
    ]  # fmt: skip
    assert main(args) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["aa"] == "rand-m9-n1-mstd0.4-inc1" and cfg["mixup"] == 0.5 and cfg["seed"] == 42
    final = json.loads((run / "final.json").read_text())
    assert final["params"] == 9_317_427  # 4-384 with 3 classes: 9,320,122 − 7 × 385


def test_resume_truncates_metrics_counted_from_1_and_renumbers_older_files(tmp_path):
    from s2tdpt.engine.run import METRIC_COLUMNS, RunDir

    def write(epochs):
        with open(tmp_path / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            w.writeheader()
            w.writerows({"epoch": e, "lr": 0.1} for e in epochs)

    def epochs():
        with open(tmp_path / "metrics.csv", newline="") as f:
            return [int(r["epoch"]) for r in csv.DictReader(f)]

    run = RunDir(tmp_path)
    write([1, 2, 3])  # epoch 3 was logged, then the process died before its checkpoint
    run.truncate_metrics(2)
    assert epochs() == [1, 2]
    write([0, 1, 2])  # a file written when epochs counted from 0
    run.truncate_metrics(2)
    assert epochs() == [1, 2]
