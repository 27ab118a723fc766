"""Event data end to end on recordings made in the test: the eventfolder dataset, its frame cache, frame batches
through training, evaluation and energy, Mixup on frames, and the errors for a wrong T or an image-only option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from s2tdpt.cli import main
from s2tdpt.data import build_datasets
from s2tdpt.data.emulate import emulate_events
from s2tdpt.data.events import to_frames
from s2tdpt.data.frames import FrameAugment, collate_frames, mix_frames

SENSOR = 16


def _pattern(label: int, i: int) -> np.ndarray:
    """Class 0: a bright vertical bar, class 1: a horizontal one, at a position that varies with i."""
    img = np.full((SENSOR, SENSOR), 0.1)
    pos = 3 + (i * 3) % 9
    if label == 0:
        img[:, pos : pos + 3] = 0.9
    else:
        img[pos : pos + 3, :] = 0.9
    return img


@pytest.fixture(scope="module")
def event_folder(tmp_path_factory) -> Path:
    """2 classes × 8 training and 4 test recordings of a 16 × 16 sensor, emulated from moving bars."""
    root = tmp_path_factory.mktemp("events")
    for split, n in (("train", 8), ("test", 4)):
        for label, cls in enumerate(("horizontal", "vertical")[::-1]):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                ev = emulate_events(_pattern(label, i + (100 if split == "test" else 0)), amplitude=2.0)
                if i % 2:
                    np.save(root / split / cls / f"{i}.npy", ev)
                else:
                    np.savez(root / split / cls / f"{i}.npz", events=ev)
    return root


def test_eventfolder_serves_cached_frames_and_declares_its_layout(event_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    train, test, info = build_datasets("eventfolder", str(event_folder), timesteps=4, cache_dir=str(cache))
    assert (info.layout, info.timesteps, info.in_chans, info.img_size) == ("frames", 4, 2, SENSOR)
    assert info.sensor_size == (SENSOR, SENSOR) and info.class_names == ("horizontal", "vertical")
    assert (len(train), len(test)) == (16, 8)
    x, label = train[3]
    ev = np.load(event_folder / "train" / "horizontal" / "3.npy")
    np.testing.assert_array_equal(x.numpy(), to_frames(ev, (SENSOR, SENSOR), 4))  # as integrated directly
    assert label == 0 and x.sum() == len(ev)
    import pickle  # data-loading workers started by spawn receive the dataset pickled

    torch.testing.assert_close(pickle.loads(pickle.dumps(train))[3][0], x)
    # the second access reads the cache: integration is not run again
    (key,) = [p.name for p in cache.iterdir()]
    assert key.startswith("eventfolder-T4-number-full-") and (cache / key / "train" / "3.npy").exists()
    monkeypatch.setattr(train, "load", lambda i: (_ for _ in ()).throw(AssertionError("integrated again")))
    torch.testing.assert_close(train[3][0], x)
    # another option, or a changed recording, makes another cache folder
    build_datasets("eventfolder", str(event_folder), timesteps=2, cache_dir=str(cache))[0][0]
    build_datasets("eventfolder", str(event_folder), timesteps=4, size=8, cache_dir=str(cache))[0][0]
    assert len(list(cache.iterdir())) == 3


def test_a_changed_recording_is_not_served_from_a_stale_cache(event_folder, tmp_path):
    root = tmp_path / "copy"
    import shutil

    shutil.copytree(event_folder, root)
    first = build_datasets("eventfolder", str(root), timesteps=4)[0][3][0]
    ev = np.load(root / "train" / "horizontal" / "3.npy")
    np.save(root / "train" / "horizontal" / "3.npy", ev[: len(ev) // 2])
    second = build_datasets("eventfolder", str(root), timesteps=4)[0][3][0]
    assert second.sum() == len(ev) // 2 and first.sum() == len(ev)


def test_frames_batch_time_first_and_mixup_mixes_whole_samples():
    batch = [(torch.full((3, 2, 4, 4), float(i)), i) for i in range(4)]
    frames, labels = collate_frames(batch)
    assert frames.shape == (3, 4, 2, 4, 4) and labels.tolist() == [0, 1, 2, 3]
    assert torch.equal(frames[:, 2], torch.full((3, 2, 4, 4), 2.0))

    def mixup(x, y):  # timm's rule on a 4-D batch: lam · x + (1 − lam) · x.flip(0), here with lam 0.25
        return 0.25 * x + 0.75 * x.flip(0), y

    mixed, _ = mix_frames(mixup, frames, labels)
    # written out: sample b at every step mixes with sample B − 1 − b at the same step
    for t in range(3):
        for b in range(4):
            torch.testing.assert_close(mixed[t, b], 0.25 * frames[t, b] + 0.75 * frames[t, 3 - b])


def test_frame_augmentation_flips_and_translates_every_step_alike():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 2, 4, 4)
    assert torch.equal(FrameAugment(hflip=1.0)(x), x.flip(-1))
    torch.manual_seed(3)
    y = FrameAugment(hflip=0.0, translate=1)(x.clone())
    # the same shift at both steps: their difference is the shifted difference of the inputs (a constant 32 where
    # not zeroed)
    diff = y[1] - y[0]
    assert set(diff.unique().tolist()) <= {0.0, 32.0}
    # and it did move: written out, the input rolled by some (dy, dx) in -1..1 with the wrapped rows/columns zeroed
    moved = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    assert not torch.equal(y, x)

    def shifted(dy: int, dx: int) -> torch.Tensor:
        z = torch.zeros_like(x)
        h, w = x.shape[-2:]
        z[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
            ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        return z

    assert any(torch.equal(y, shifted(dy, dx)) for dy, dx in moved)


def _train(run: Path, event_folder: Path, *extra: str) -> int:
    return main([
        "train", "--dataset", "eventfolder", "--data-dir", str(event_folder), "--dataset-kwargs", "{timesteps: 2}",
        "--model", "s2tdpt_tiny", "--epochs", "1", "--batch-size", "4", "--warmup-epochs", "0", "--amp", "none",
        "--lif-backend", "fused", "--compile", "off", "--out", str(run), *extra,
    ])  # fmt: skip


def test_frames_train_evaluate_and_measure_energy_through_the_cli(event_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, event_folder, "--mixup", "0.5", "--cutmix", "1.0", "--hflip", "0.5", "--crop-pad", "1") == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["dataset_kwargs"]["timesteps"] == 2 and saved["dataset_kwargs"]["split_by"] == "number"
    model_cfg = torch.load(run / "last.pt", weights_only=False)["model_config"]
    assert (model_cfg["timesteps"], model_cfg["in_chans"], model_cfg["img_size"]) == (2, 2, SENSOR)
    capsys.readouterr()
    assert main(["eval", str(run / "last.pt")]) == 0
    assert "top-1" in capsys.readouterr().out
    assert main(["energy", "--checkpoint", str(run / "last.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images"] == 8 and report["energy_mj"] > 0
    # the first conv reads event counts: charged as accumulates at the mean count, not as MACs
    stem = next(line for line in report["layers"] if line["layer"].endswith("stem_conv"))
    assert stem["kind"] == "AC" and stem["rate"] > 0, stem
    # explain: Grad-CAM and SFR maps of recordings, drawn as ON/OFF pictures, and the attention maps of one
    out = tmp_path / "explain"
    assert main(["explain", str(run / "last.pt"), "--num", "2", "--out", str(out)]) == 0
    index = (out / "index.md").read_text()
    assert index.count("panel_") == 2 and "horizontal" in index and (out / "attention.png").exists()
    assert main(["explain", str(run / "last.pt"), "--images", "x.png", "--out", str(out)]) != 0
    assert "reads event frames, not image files" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--timesteps", "3"], "--timesteps 3 but dataset_kwargs sets timesteps: 2 frames"),
        (["--mean", "cifar10", "--std", "cifar10"], "mean does not apply to the event dataset"),
        (["--dataset-kwargs", "{frames: 2}"], "dataset 'eventfolder' takes no option(s) ['frames']"),
    ],
)
def test_a_wrong_frame_option_is_named_before_the_run_folder_is_written(event_folder, tmp_path, flags, message, capsys):
    assert _train(tmp_path / "run", event_folder, *flags) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_image_dataset_becomes_an_event_folder(tmp_path):
    from s2tdpt.data.emulate import write_event_folder

    out = write_event_folder("digits", tmp_path / "digit-events", limit=3)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert len(files) == 60 and all(f.split("/")[0] in ("train", "test") for f in files)
    train, test, info = build_datasets("eventfolder", str(out), timesteps=2)
    assert info.sensor_size == (8, 8) and train[0][0].shape == (2, 2, 8, 8) and train[0][0].sum() > 0
    before = {f: (out / f).stat().st_mtime_ns for f in files}
    write_event_folder("digits", out, limit=3)  # started again: what exists is kept
    assert {f: (out / f).stat().st_mtime_ns for f in files} == before
