"""What a new user ran into with the data, eval, energy, explain and bench tools: each case ends in a clear error
(what was expected, what was given, what to do) or in correct output, and writes nothing half-done."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder, pattern_images, step_clock
from PIL import Image

import s2tdpt
from s2tdpt import __version__
from s2tdpt.analysis.plots import PANEL_SIZE_PX, plot_explanation_panel
from s2tdpt.bench import budget, train_step
from s2tdpt.cli import main
from s2tdpt.cli.explain_cmd import block_label, spread_over_classes
from s2tdpt.data.datasets import DatasetNotFound, ImageFileError, build_datasets
from s2tdpt.engine.checkpoint import FORMAT, atomic_torch_save
from s2tdpt.engine.config import build_config
from s2tdpt.engine.evaluate import evaluate

CLASSES = ("ant", "bee", "cat")


def _strict_json(text: str):
    """json.loads that refuses NaN / Infinity, as strict JSON readers (browsers, jq, other languages) do."""

    def refuse(token: str):
        raise ValueError(f"not valid JSON: {token}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------------------------ image folders


def test_a_colour_folder_whose_first_image_is_grey_stays_rgb(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "data", train=2, test=1, size=8)
    first = root / "train" / "ant" / "0000.png"  # the first image in sorted order
    grey = pattern_images(1, 0, 8, 1, seed=7)[0]
    Image.fromarray(grey).save(first)  # mode L
    colour = np.asarray(Image.open(root / "train" / "cat" / "0001.png"))
    for decode_bytes in (2**31, 0):  # decoded into memory, and read lazily (a folder too large to decode)
        monkeypatch.setattr("s2tdpt.data.imagefolder.DECODE_BYTES", decode_bytes)
        train, test, info = build_datasets("imagefolder", str(root))
        assert info.in_chans == 3
        assert np.array_equal(np.asarray(train[0][0]), np.stack([grey] * 3, axis=-1))  # R = G = B = the grey value
        assert np.array_equal(np.asarray(train[5][0]), colour)  # colour images keep their colours
    # a folder of grey images only is read with one channel
    grey_root = make_image_folder(tmp_path / "grey", train=2, test=1, size=8, channels=1)
    train, _, info = build_datasets("imagefolder", str(grey_root))
    assert info.in_chans == 1 and np.asarray(train[0][0]).shape == (8, 8)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_truncated_image_is_named_and_no_run_folder_is_left(tmp_path, suffix, capsys):
    root = make_image_folder(tmp_path / "data", train=2, test=1, size=8)
    broken = root / "train" / "bee" / f"0001{suffix}"
    Image.fromarray(pattern_images(1, 1, 8, 3, seed=0)[0]).save(broken)
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(ImageFileError, match=rf"cannot decode image {broken}.*damaged.*Replace it"):
        build_datasets("imagefolder", str(root))
    run = tmp_path / "run"
    args = ["train", "--dataset", "imagefolder", "--data-dir", str(root), "--model", "s2tdpt_tiny", "--out", str(run)]
    assert main([*args, "--epochs", "2", "--warmup-epochs", "0", "--batch-size", "2"]) == 1
    assert f"error: cannot decode image {broken}" in capsys.readouterr().err
    assert not run.exists()


def test_a_class_missing_from_test_is_allowed_and_named(tmp_path, caplog):
    root = make_image_folder(tmp_path / "data", classes=("ant", "bee", "truck"), train=2, test=1, size=8)
    for f in (root / "test" / "truck").iterdir():
        f.unlink()
    (root / "test" / "truck").rmdir()
    with caplog.at_level(logging.WARNING, logger="s2tdpt"):
        train, test, info = build_datasets("imagefolder", str(root))
    assert info.class_names == ("ant", "bee", "truck") and len(train) == 6 and len(test) == 2
    assert sorted(test.labels.tolist()) == [0, 1]
    assert "classes ['truck'] have training images but no test images" in caplog.text
    # a class only in test is a mistake (a typo?): named, with the train classes
    (root / "test" / "Truck").mkdir()
    Image.fromarray(pattern_images(1, 2, 8, 3, seed=0)[0]).save(root / "test" / "Truck" / "0.png")
    with pytest.raises(ValueError, match=r"test classes \['Truck'\] .* \(train classes: \['ant', 'bee', 'truck'\]\)"):
        build_datasets("imagefolder", str(root))


def test_a_test_folder_without_images_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "data", train=2, test=1, size=8)
    for f in (root / "test").glob("*/*.png"):
        f.unlink()
    with pytest.raises(DatasetNotFound, match=r"no images with extensions .* under '.*test'"):
        build_datasets("imagefolder", str(root))


def test_an_oversized_image_is_named(tmp_path, monkeypatch, capsys):
    # Pillow refuses images over 2 × MAX_IMAGE_PIXELS (a 15000² photo by default); lowered here to 32² / 2 - 1
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 511)
    root = make_image_folder(tmp_path / "data", train=1, test=1, size=8)
    big = root / "train" / "cat" / "big.png"
    Image.fromarray(pattern_images(1, 2, 32, 3, seed=0)[0]).save(big)
    with pytest.raises(ImageFileError, match=rf"image {big} is too large to decode safely.*Downscale it"):
        build_datasets("imagefolder", str(root))
    ckpt = _checkpoint(tmp_path / "ckpt.pt", root)
    assert main(["explain", str(ckpt), "--images", str(big), "--out", str(tmp_path / "ex")]) == 1
    assert f"error: image {big} is too large to decode safely" in capsys.readouterr().err
    assert not (tmp_path / "ex").exists()


# ------------------------------------------------------------------------------------------------ checkpoints


def _checkpoint(path: Path, data: Path, depth: int = 1) -> Path:
    """A checkpoint in the format `s2tdpt train` writes, of an untrained s2tdpt_tiny on the 3-class folder."""
    torch.manual_seed(0)
    m = s2tdpt.create_model("s2tdpt_tiny", num_classes=3, depth=depth)
    ckpt = dict(
        format=FORMAT, version=__version__, model_config=m.config.to_dict(), model=m.state_dict(), epoch=1,
        train_config={"dataset": "imagefolder", "data_dir": str(data), "batch_size": 4, "amp": "none"},
        dataset=dict(name="toy", class_names=list(CLASSES), num_classes=3, img_size=32, mean=[0.5] * 3,
                     std=[0.25] * 3),
    )  # fmt: skip
    atomic_torch_save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """3 classes, 2 training and 3 test images each, 32×32 (class-sorted: test images 0-2 ant, 3-5 bee, 6-8 cat)."""
    return make_image_folder(tmp_path_factory.mktemp("data"), train=2, test=3)


@pytest.fixture(scope="module")
def ckpt(folder, tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "two_blocks.pt", folder, depth=2)


# ------------------------------------------------------------------------------------------------ eval


def test_eval_rejects_an_empty_test_subset(ckpt, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", str(ckpt), "--limit-test", "0", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error: --limit-test must be at least 1 image, got 0; leave it out" in err
    assert not out.exists()


def test_eval_json_is_valid_when_a_class_has_no_test_image(ckpt, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", str(ckpt), "--limit-test", "2", "--out", str(out)]) == 0  # test images 0 and 4: ant, bee
    report = _strict_json((out / "eval.json").read_text())
    assert report["images"] == 2 and report["per_class_top1"]["cat"] is None
    assert all(isinstance(report["per_class_top1"][c], float) for c in ("ant", "bee"))
    with open(out / "per_class.csv") as f:
        rows = {r["class"]: r for r in csv.DictReader(f)}
    assert rows["cat"]["images"] == "0" and rows["cat"]["top1"] == ""
    assert "cat" in capsys.readouterr().out


def test_evaluate_refuses_an_empty_loader():
    model = s2tdpt.create_model("s2tdpt_tiny", num_classes=3)
    with pytest.raises(ValueError, match="the test set is empty"):
        evaluate(model, [], torch.device("cpu"), 3)


# ------------------------------------------------------------------------------------------------ energy


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--num-classes", "0"], "--num-classes must be a positive whole number, got 0"),
        (["--assume-rate", "-1"], r"--assume-rate is a firing rate.*lies in \[0, 1\]; got -1.0"),
        (["--assume-rate", "1.5"], r"lies in \[0, 1\]; got 1.5"),
        (["--assume-rate", "nan"], r"lies in \[0, 1\]; got nan"),
        (["--num-images", "0"], "--num-images must be a positive whole number, got 0"),
        (["--e-ac", "-0.9"], "--e-ac is an energy per operation in pJ and cannot be negative, got -0.9"),
    ],
)
def test_energy_rejects_impossible_values(flags, message, capsys):
    args = ["energy", "--model", "s2tdpt_tiny", "--assume-rate", "0.1", *flags]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("s2tdpt energy: error: ") and re.search(message, err), err


@pytest.mark.parametrize("rate", ["0", "1"])
def test_energy_takes_the_bounds_and_one_class(rate, capsys):
    assert main(["energy", "--model", "s2tdpt_tiny", "--num-classes", "1", "--assume-rate", rate, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    head = next(x for x in out["layers"] if x["layer"] == "head")
    assert head["flops"] == 32 * 1  # embed_dim 32 → 1 class: --num-classes 1 is kept, not replaced by 10


# ------------------------------------------------------------------------------------------------ explain


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--num", "0"], r"--num must be at least 1 \(the number of test images to explain\), got 0"),
        (["--block", "5"], r"--block 5 does not exist: the model has 2 block\(s\), numbered 0 to 1"),
        (["--block", "-3"], r"--block -3 does not exist"),
        (["--num", "2", "--attention-image", "2"], r"--attention-image 2 does not exist: 2 image\(s\) are explained"),
    ],
)
def test_explain_rejects_what_does_not_exist_before_writing(ckpt, flags, message, tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["explain", str(ckpt), *flags, "--out", str(out)]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_explain_names_the_real_block_and_covers_the_classes(ckpt, tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["explain", str(ckpt), "--num", "3", "--out", str(out)]) == 0
    index = (out / "index.md").read_text()
    assert "block -1" not in index and "## Attention maps: test image 0, block 1 (the last, of 0–1)" in index
    rows = [line.split(" | ") for line in index.splitlines() if line.startswith("| ") and "panel_" in line]
    assert [r[1] for r in rows] == ["test image 0", "test image 3", "test image 6"]  # one per class
    assert {r[3].split()[0] for r in rows} == set(CLASSES)  # the true classes
    assert block_label(0, 2) == "block 0 (of 0–1)" and block_label(0, 1) == "block 0 (the only block)"


def test_default_explain_images_take_each_class_in_turn():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    assert spread_over_classes(labels, 7, 4) == [0, 1, 4, 6]  # 1st of each class, then the 2nd of class 0
    assert spread_over_classes(labels, 7, 6) == [0, 1, 2, 4, 5, 6]
    assert spread_over_classes(labels, 7, 99) == list(range(7))
    assert spread_over_classes(None, 10, 4) == [0, 2, 5, 7]  # no labels: evenly spaced


def test_panel_colour_bar_labels_fit_inside_the_panel(tmp_path):
    rng = np.random.default_rng(0)
    img, cam = rng.random((32, 32, 3)), rng.random((32, 32))
    path = tmp_path / "panel.png"
    plot_explanation_panel(img, cam, rng.random((32, 32)) * 0.0123, "predicted ant (37 %)", path, False)
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("L"))
    assert pixels.shape[::-1] == PANEL_SIZE_PX
    # labels such as 0.012 cut off at the right edge leave dark pixels there; a fitting layout leaves a margin
    assert pixels[:, -3:].min() > 200


# ------------------------------------------------------------------------------------------------ bench


def _parser_of(main_fn, monkeypatch) -> argparse.ArgumentParser:
    """The parser ``main_fn`` builds (stopped before it runs anything)."""

    class Built(Exception):
        pass

    def capture(self, args=None, namespace=None):
        raise Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(Built) as e:
        main_fn([])
    monkeypatch.undo()
    return e.value.args[0]


@pytest.mark.parametrize("bench", [train_step, budget], ids=["train-step", "budget"])
def test_every_bench_option_has_help(bench, monkeypatch):
    parser = _parser_of(bench.main, monkeypatch)
    missing = [a.dest for a in parser._actions if a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert missing == []


def test_bench_train_step_rejects_bad_counts_and_models(capsys, monkeypatch):
    def started(argv, tuned):
        raise AssertionError(f"the benchmark started a worker {argv} instead of rejecting its options")

    monkeypatch.setattr(train_step, "_worker", started)
    for argv, message in ((["--steps", "0"], "expected a whole number >= 1, got '0'"),
                          (["--model", "s2tdpt_nope"], "unknown --model 's2tdpt_nope'; available: ")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            train_step.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_budget_warms_every_run_up_outside_its_budget_and_resumes_with_its_data_dir(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: s2tdpt_tiny\ndataset: imagefolder\ndata_dir: /nowhere\ntime_budget: 5\n")
    root = tmp_path / "runs"
    (root / "stdp-s0").mkdir(parents=True)
    (root / "stdp-s0" / "last.pt").write_bytes(b"interrupted run")
    (root / "ssa-s0").mkdir()
    calls = []

    def fake_train(cfg, resume=None, timer=None):
        calls.append(("train", cfg, resume))
        out = Path(cfg.out)
        out.mkdir(exist_ok=True)
        (out / "final.json").write_text(json.dumps(dict(params=1, epochs=1, final_test_top1=1.0, best_test_top1=1.0)))
        (out / "energy.json").write_text(json.dumps(dict(energy_mj=1.0, mac_ops=1, ac_ops=1, images=1)))
        (out / "metrics.csv").write_text("epoch,images_per_s\n1,10\n")

    fake_train(build_config({"out": str(root / "ssa-s0")}))  # a finished run: neither warmed up nor trained again
    calls.clear()
    monkeypatch.setattr("s2tdpt.engine.train.train", fake_train)
    monkeypatch.setattr(budget, "warm_up", lambda cfg: calls.append(("warm-up", cfg, None)))
    args = ["-c", str(recipe), "--out-root", str(root), "--data-dir", "/data/here"]
    args += ["--attentions", "stdp", "ssa", "ann"]
    assert budget.main(args) == 0
    assert [(kind, Path(cfg.out).name, resume) for kind, cfg, resume in calls] == [
        ("warm-up", "stdp-s0", None),
        ("train", "stdp-s0", root / "stdp-s0"),  # resumed ...
        ("warm-up", "ann-s0", None),
        ("train", "ann-s0", None),
    ]
    assert all(cfg.data_dir == "/data/here" for _, cfg, _ in calls)  # ... with --data-dir, not the recipe's folder
    assert calls[0][1] == calls[1][1] and calls[2][1] == calls[3][1]  # each warm-up runs the run's own config


def test_warm_up_runs_one_forward_and_backward_and_trains_nothing(folder, monkeypatch):
    seen = []

    def record(module, args, out):
        if isinstance(module, s2tdpt.S2TDPT):
            seen.append((module, module.training, torch.is_grad_enabled()))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    cfg = build_config(dict(model="s2tdpt_tiny", attention="ssa", dataset="imagefolder", data_dir=str(folder),
                            batch_size=4, amp="none", lif_backend="fused", out="unused"))  # fmt: skip
    try:
        with step_clock() as clock:
            budget.warm_up(cfg)
    finally:
        handle.remove()
    assert clock.steps == 0  # no optimiser step
    assert len(seen) == 1 and seen[0][1:] == (True, True)  # one training-mode forward with gradients
    model = seen[0][0]
    assert model.config.attention == "ssa" and model.config.num_classes == 3
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())  # and its backward
    assert not Path("unused").exists()
