"""What a new user ran into with `s2tdpt train`: each case ends in a clear message, loses nothing, and can go on.

Runs are in-process on a few embedded digits with a tiny model (2 steps per epoch); disk-full and kills are simulated.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from s2tdpt.cli import build_parser, main
from s2tdpt.cli.launch import only_help
from s2tdpt.cli.train_cmd import resolve
from s2tdpt.engine import checkpoint as checkpoint_module
from s2tdpt.engine import run as run_module
from s2tdpt.engine.checkpoint import load_checkpoint
from s2tdpt.engine.config import ConfigError, TrainConfig
from s2tdpt.engine.run import RunDir
from s2tdpt.snn import list_neurons, neuron_emits

LR, MIN_LR, STEPS_PER_EPOCH = 3e-3, 1e-5, 2  # TINY: 32 images, batch 16
TINY = [
    "train", "--model-kwargs", "{embed_dim: 16, num_heads: 1, mlp_ratio: 1.0}", "--timesteps", "1",
    "--limit-train", "32", "--limit-test", "16", "--batch-size", "16", "--amp", "none", "--lif-backend", "fused",
    "--compile", "off", "--device", "cpu", "--lr", str(LR), "--min-lr", str(MIN_LR),
]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors this small gain nothing from threads, and on a busy machine waiting for threads costs 10×."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(out: Path, *extra: str, epochs: int = 1, warmup: str = "0") -> int:
    return main([*TINY, "--epochs", str(epochs), "--warmup-epochs", warmup, "--out", str(out), *extra])


def metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def files(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir())


def interrupt_in_epoch(monkeypatch, epoch: int) -> None:
    """Ctrl-C in the evaluation of epoch ``epoch`` (counted from 1): that epoch's checkpoint is never written."""
    import s2tdpt.engine.train as engine_train

    calls, evaluate = [], engine_train.evaluate

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(engine_train, "evaluate", interrupted)


def drop_from_checkpoint(run: Path, key: str, *sections: str) -> None:
    """Rewrite ``run/last.pt`` without ``key`` in the given config sections, as an earlier version saved it."""
    ckpt = torch.load(run / "last.pt", weights_only=False)
    for section in sections:
        del ckpt[section][key]
    torch.save(ckpt, run / "last.pt")


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the process catches it, no `finally` of the writer runs after it."""


class FullDisk:
    """A file whose disk fills up after ``room`` bytes: the next write raises ENOSPC, as the kernel does."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.f.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def fill_disk_when_writing(monkeypatch, name: str) -> None:
    """Every atomic write of ``name`` (its temporary file) runs out of space after 100 bytes."""

    def fake_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return FullDisk(f, 100) if Path(path).name.startswith(f".{name}.tmp") else f

    monkeypatch.setattr(checkpoint_module, "open", fake_open, raising=False)


# --- data lost or damaged


def test_run_killed_in_its_first_checkpoint_write_can_be_started_again(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"

    def killed_save(obj, path):  # the kill lands after part of the temporary file was written
        Path(path).with_name(f".{Path(path).name}.tmp-99999").write_bytes(b"partial")
        raise Killed

    monkeypatch.setattr(run_module, "atomic_torch_save", killed_save)
    with pytest.raises(Killed):
        train(run, epochs=2)
    monkeypatch.undo()
    assert files(run) == [".last.pt.tmp-99999", "config.yaml", "curves.png", "metrics.csv", "train.log"]

    assert train(run, epochs=2) == 1  # the same command again: not over a run's files, and it says what to do
    err = capsys.readouterr().err
    assert "stopped before its first checkpoint" in err and f"s2tdpt train --resume {run}" in err

    assert main(["train", "--resume", str(run)]) == 0  # the advice works: the run starts again from epoch 1
    assert "has no checkpoint yet: training it again from epoch 1" in capsys.readouterr().out
    assert files(run) == ["best.pt", "config.yaml", "curves.png", "final.json", "last.pt", "metrics.csv", "train.log"]
    assert [r["epoch"] for r in metrics(run)] == ["1", "2"]
    fresh = tmp_path / "fresh"
    assert train(fresh, epochs=2) == 0
    a, b = load_checkpoint(run / "last.pt")["model"], load_checkpoint(fresh / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same run as if nothing had happened


def test_disk_full_in_the_first_checkpoint_says_so_and_the_run_can_start_again(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    fill_disk_when_writing(monkeypatch, "last.pt")
    assert train(run) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing {run / 'last.pt'}; free space and start it again with" in err
    assert "enforce fail" not in err and "Traceback" not in err
    assert files(run) == ["config.yaml", "curves.png", "metrics.csv", "train.log"]  # no temporary file left behind
    monkeypatch.undo()
    assert main(["train", "--resume", str(run)]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


def test_disk_full_while_writing_best_pt_keeps_best_pt_and_final_json_consistent(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    fill_disk_when_writing(monkeypatch, "best.pt")
    assert train(run) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing {run / 'best.pt'}; free space and resume with" in err
    assert files(run) == ["config.yaml", "curves.png", "last.pt", "metrics.csv", "train.log"]  # no .best.pt.tmp left
    monkeypatch.undo()
    assert main(["train", "--resume", str(run)]) == 0  # nothing left to train: best.pt is restored
    final = json.loads((run / "final.json").read_text())
    assert load_checkpoint(run / "best.pt")["epoch"] == final["best_epoch"] == 1


def test_new_run_refuses_a_folder_with_another_runs_best_pt(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"precious weights")
    (run / "final.json").write_text("{}")
    assert train(run) == 1
    err = capsys.readouterr().err
    assert "already holds final.json, best.pt of another run" in err and "choose another --out" in err
    assert files(run) == ["best.pt", "final.json"] and (run / "best.pt").read_bytes() == b"precious weights"


def test_resume_with_another_lif_backend_works_and_a_model_change_is_named_before_writing(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2", "--lif-backend", "torch"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["lif_backend"] == "torch"
    assert "with changes: epochs 1 → 2, lif_backend 'fused' → 'torch'" in capsys.readouterr().out

    from s2tdpt.engine.train import train as engine_train

    before = {name: (run / name).read_bytes() for name in ("config.yaml", "metrics.csv", "last.pt")}
    cfg, _ = resolve(build_parser().parse_args(["train", "--resume", str(run), "--epochs", "3"]))
    with pytest.raises(ConfigError, match=r"different model \(embed_dim 16 → 24\)"):
        engine_train(cfg.replace(model_kwargs={"embed_dim": 24, "num_heads": 1, "mlp_ratio": 1.0}), resume=run)
    assert {name: (run / name).read_bytes() for name in before} == before  # refused before anything was written


def test_resuming_a_run_whose_named_model_was_redefined_says_so_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import dataclasses

    from s2tdpt.models import config as model_configs

    run = tmp_path / "run"
    assert train(run) == 0
    drop_from_checkpoint(run, "neuron_kwargs", "train_config")  # saved before that key existed: counts as its default
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "metrics.csv", "last.pt")}
    named = model_configs.MODEL_CONFIGS["s2tdpt_digits"]
    monkeypatch.setitem(model_configs.MODEL_CONFIGS, "s2tdpt_digits", dataclasses.replace(named, depth=2))
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "as an earlier version of s2tdpt defined it (depth 1 → 2)" in err and "--init" in err
    assert {name: (run / name).read_bytes() for name in before} == before
    monkeypatch.undo()

    from s2tdpt.engine.train import train as engine_train

    cfg, _ = resolve(build_parser().parse_args(["train", "--resume", str(run), "--epochs", "2"]))
    with pytest.raises(ConfigError, match=r"trained on other data \(img_size 8 → 16\): resume with the data"):
        engine_train(cfg.replace(img_size=16), resume=run)


def test_a_checkpoint_without_the_fields_later_versions_added_resumes(tmp_path):
    run = tmp_path / "run"
    assert train(run) == 0
    drop_from_checkpoint(run, "neuron_kwargs", "model_config", "train_config")  # the key was added on 2026-12-01
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


# --- silent wrong training


@pytest.mark.parametrize("value", ["-1", "0"])
def test_clip_grad_must_be_positive_or_off(tmp_path, value, capsys):
    assert train(tmp_path / "run", "--clip-grad", value) == 1
    assert f"config key 'clip_grad' must be > 0 (or null/off), got {float(value)}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    args = build_parser().parse_args([*TINY, "--clip-grad", "off"])
    assert resolve(args)[0].clip_grad is None
    assert TrainConfig(clip_grad=False).clip_grad is None  # `clip_grad: off` in YAML


def test_resume_with_more_epochs_follows_the_longer_schedule(tmp_path):
    def cosine(step: int, total_steps: int) -> float:  # timm's cosine without warm-up, at 0-based step `step`
        return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * step / total_steps))

    def lr_at_end_of(epoch: int, epochs: int) -> float:  # metrics.csv records the last step's learning rate
        return cosine(epoch * STEPS_PER_EPOCH - 1, epochs * STEPS_PER_EPOCH)

    run = tmp_path / "run"
    assert train(run, epochs=2) == 0
    assert main(["train", "--resume", str(run), "--epochs", "4"]) == 0
    lrs = [float(r["lr"]) for r in metrics(run)]
    assert lrs[:2] == pytest.approx([lr_at_end_of(e, 2) for e in (1, 2)], rel=1e-9)
    assert lrs[2:] == pytest.approx([lr_at_end_of(e, 4) for e in (3, 4)], rel=1e-9)  # as a fresh 4-epoch run
    assert min(lrs[2:]) > 10 * MIN_LR  # not stuck at the end of the old 2-epoch schedule


def test_timesteps_zero_is_an_error_not_the_models_default(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("timesteps: 0\n")
    assert main(["train", "-c", str(cfg_file)]) == 1
    assert "config key 'timesteps' must be >= 1 (or null for the default), got 0" in capsys.readouterr().err
    assert TrainConfig(timesteps=None).timesteps is None


# --- tracebacks for a user's mistake


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("lr: 5e-4", "lr", 5e-4),
        ("hflip: '0.5'", "hflip", 0.5),
        ("workers: 2.0", "workers", 2),
        ("seed: '3'", "seed", 3),
    ],
)
def test_unambiguous_yaml_values_are_coerced(tmp_path, text, key, value):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(text + "\n")
    cfg, _ = resolve(build_parser().parse_args(["train", "-c", str(cfg_file)]))
    assert getattr(cfg, key) == value and type(getattr(cfg, key)) is type(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time_budget: abc", "config key 'time_budget' must be a number or null, got 'abc'"),
        ("seed: 1.5", "config key 'seed' must be an integer (a whole number), got 1.5"),
        ("workers: 1.5", "config key 'workers' must be an integer (a whole number), got 1.5"),
        ("lr: [1]", "config key 'lr' must be a number, got [1]"),
        ("download: maybe", "config key 'download' must be true or false, got 'maybe'"),
    ],
)
def test_bad_yaml_values_name_key_value_and_type(tmp_path, monkeypatch, text, message, capsys):
    monkeypatch.chdir(tmp_path)
    Path("c.yaml").write_text(text + "\n")
    assert main(["train", "-c", "c.yaml"]) == 1
    assert message in capsys.readouterr().err
    assert files(tmp_path) == ["c.yaml"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--smoothing", "1.0"], "config key 'smoothing' must lie in [0, 1)"),
        (["--aa", "garbage"], "config key 'aa' must be a timm RandAugment policy such as rand-m9-n1-mstd0.4-inc1"),
        (["--mixup", "0.5", "--batch-size", "15"], "batch_size must be even, got 15: use --batch-size 14 or 16"),
        (["--device", "tpu"], "config key 'device' must be auto, cpu, cuda or cuda:N (a PyTorch device), got 'tpu'"),
        (["--lr", "nan"], "config key 'lr' must be a finite number, got nan"),
        (["--epochs", "2", "--warmup-epochs", "2"], "use --warmup-epochs 0 (no warm-up) or a value below 2"),
    ],
)
def test_bad_values_fail_before_the_run_folder_is_made(tmp_path, flags, message, capsys):
    assert main([*TINY, "--out", str(tmp_path / "run"), *flags]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_out_that_cannot_be_a_run_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("x")
    assert train(tmp_path / "afile") == 1
    assert "--out " + str(tmp_path / "afile") + " is a file, not a folder" in capsys.readouterr().err
    assert train(tmp_path / "afile" / "run") == 1
    assert f"{tmp_path / 'afile'} is a file; choose another --out" in capsys.readouterr().err
    monkeypatch.setattr(run_module.os, "access", lambda *a, **k: False)  # a read-only folder (tests may run as root)
    assert train(tmp_path / "ro" / "run") == 1
    assert f"cannot write run folder {tmp_path / 'ro' / 'run'}: {tmp_path} is not writable" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "x"


def test_ctrl_c_is_one_line_with_how_to_resume_and_status_130(tmp_path, monkeypatch, capsys):
    interrupt_in_epoch(monkeypatch, 2)
    run = tmp_path / "run"
    assert train(run, epochs=2) == 130
    err = capsys.readouterr().err
    assert err == f"s2tdpt train: interrupted; resume with `s2tdpt train --resume {run}`\n"
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


def test_a_run_that_stops_early_still_draws_every_epoch_it_logged(tmp_path, monkeypatch):
    interrupt_in_epoch(monkeypatch, 3)
    monkeypatch.setattr(run_module, "CURVES_EVERY_S", float("inf"))  # however long an epoch takes: no redraw
    drawn = []
    monkeypatch.setattr(run_module, "plot_runs", lambda runs, out, title="": drawn.append(len(runs[title])))
    assert train(tmp_path / "run", epochs=3) == 130
    assert drawn[0] == 1  # after the first epoch
    assert drawn[-1] == 2  # the last drawing, as the run stopped, shows both epochs in metrics.csv


# --- unclear messages


def test_one_epoch_smoke_run_just_works(tmp_path):
    run = tmp_path / "run"
    assert main([*TINY, "--epochs", "1", "--out", str(run)]) == 0  # the default warm-up of 1 epoch would not fit
    assert yaml.safe_load((run / "config.yaml").read_text())["warmup_epochs"] == 0.5
    assert "warm-up 0.5 epoch(s)" in (run / "train.log").read_text()


def test_under_torchrun_a_config_error_is_printed_once_and_lands_in_torchruns_summary(tmp_path, monkeypatch, capsys):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        assert main(["train", "--lr", "nan"]) == 1
        message = json.loads(error_file.read_text())["message"]["extraInfo"]["py_callstack"]
        assert message == "s2tdpt train: error: config key 'lr' must be a finite number, got nan"
    assert capsys.readouterr().err == message + "\n"  # rank 0 only
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 1  # not a config error: each rank says it
    assert capsys.readouterr().err.startswith("s2tdpt train: [rank 1] error: --resume")


def _poison_training(monkeypatch, from_step: int) -> None:
    """The training loss is NaN from training step ``from_step`` (1-based, counted over the whole run) on."""
    from s2tdpt.models.s2tdpt import S2TDPT

    steps, original = [0], S2TDPT.forward_head

    def poisoned(self, u):
        steps[0] += 1 if self.training else 0
        out = original(self, u)
        return out * float("nan") if self.training and steps[0] >= from_step else out

    monkeypatch.setattr(S2TDPT, "forward_head", poisoned)


@pytest.mark.parametrize("diverges_in_epoch", [1, 2])
def test_nan_advice_can_be_followed(tmp_path, monkeypatch, capsys, diverges_in_epoch):
    run = tmp_path / "run"
    _poison_training(monkeypatch, from_step=(diverges_in_epoch - 1) * STEPS_PER_EPOCH + 1)
    assert train(run, epochs=2) == 1
    err = capsys.readouterr().err
    assert f"loss became nan at epoch {diverges_in_epoch}, step 1" in err
    if diverges_in_epoch == 1:
        assert "No checkpoint was written yet" in err and "last.pt" not in err
    else:
        assert f"last good checkpoint ({run / 'last.pt'}, end of epoch 1) is untouched" in err
    advice = f"s2tdpt train --resume {run} --lr {LR / 10:g}"
    assert advice in err
    monkeypatch.undo()
    assert main(advice.split()[1:]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["lr"] == pytest.approx(LR / 10)
    assert "lr 0.003 → 0.0003" in (run / "train.log").read_text()  # the change is on record


def test_relative_data_dir_is_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, _ = resolve(build_parser().parse_args(["train", "--data-dir", "data"]))
    assert cfg.data_dir == str(tmp_path / "data")


def test_resume_compares_resolved_values(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    cfg, _ = resolve(build_parser().parse_args([*TINY, "--mean", "0.3054", "--std", "0.376", "--out", str(run)]))
    RunDir(run).save_config(cfg)
    (run / "last.pt").write_bytes(b"")  # resolve only checks that it exists
    same = ["--mean", "digits", "--std", "digits", "--limit-train", "32", "--timesteps", "1", "--amp", "auto"]
    resolved, _ = resolve(build_parser().parse_args(["train", "--resume", str(run), *same]))
    assert resolved.mean == [0.3054]  # the same values in other forms are not changes (--amp may change anyway)
    before = (run / "config.yaml").read_bytes()
    assert main(["train", "--resume", str(run), "--batch-size", "8"]) == 1
    err = capsys.readouterr().err
    assert "--resume cannot change ['batch_size'] (the run was configured with {'batch_size': 16})" in err
    assert (run / "config.yaml").read_bytes() == before


def test_model_kwargs_that_are_not_yaml_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--model-kwargs", "{embed_dim:"])
    assert e.value.code == 2 and "expected a mapping such as" in capsys.readouterr().err


# --- papercuts


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\nfrom s2tdpt.cli import main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print([m for m in ('torch', 'timm', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "COMMAND" in out and "train a model" in out and "s2tdpt 0.1.0" in out
    assert out.strip().endswith("[]")
    assert only_help(["train", "--help"]) and only_help([]) and not only_help(["train"])


def test_train_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    options = text.split("\n  --")[1:]
    assert len(options) > 30
    for option in options:
        assert " ".join(option.split()).count("default") <= 1, option
    assert "(default: None)" not in text and "(default: {})" not in text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--neuron", "glif"], "config field 'neuron' must be one of ['ilif', 'lif', 'plif', 'relu'], got 'glif'"),
        (["--neuron", "ilif", "--neuron-kwargs", "{D: 2}"], "neuron 'ilif' does not accept option(s) ['D']"),
        (["--neuron", "plif", "--model-kwargs", "{lif_beta: 0.7}"], "'lif_beta' (0.7) has no meaning for neuron"),
    ],
)
def test_a_bad_neuron_is_named_before_the_run_folder_is_written(tmp_path, flags, message, capsys):
    assert train(tmp_path / "run", *flags) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_chosen_neuron_trains_and_is_recorded(tmp_path):
    assert train(tmp_path / "run", "--neuron", "ilif", "--neuron-kwargs", "{max_count: 2}") == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["neuron"], saved["neuron_kwargs"]) == ("ilif", {"max_count": 2})
    model_cfg = load_checkpoint(tmp_path / "run" / "last.pt")["model_config"]
    assert (model_cfg["neuron"], model_cfg["neuron_kwargs"]) == ("ilif", {"max_count": 2})


@pytest.mark.parametrize("neuron", list_neurons())
def test_energy_of_a_checkpoint_of_every_neuron(tmp_path, neuron, capsys):
    # a real-valued neuron (the ANN's ReLU) cannot feed the spike-only STDP attention: softmax there
    attention = "softmax" if neuron_emits(neuron) == "real" else "stdp"
    assert train(tmp_path / "run", "--neuron", neuron, "--attention", attention) == 0
    capsys.readouterr()
    assert main(["energy", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["energy_mj"] > 0 and report["images"] > 0
    # the memory-aware estimate counts this neuron's declared update in every neuron layer
    neurons = [x for x in report["memory_aware"]["layers"] if x["kind"] == "neuron"]
    assert neurons and all(x["parts_uj"]["arithmetic"] > 0 for x in neurons)
    assert report["memory_aware_mj"] > report["energy_mj"]
    assert (report["break_even_rate"] is None) == (neuron_emits(neuron) == "real")
