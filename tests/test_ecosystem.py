"""The ecosystem: timm models, exported weights (safetensors, ONNX, the hub), curves, TensorBoard, `s2tdpt compare`
and the GPU check's dry run."""

import importlib.util
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_args
from firing import amplify_qkv, assert_late_neurons_fire, warm_batchnorm

import s2tdpt
from s2tdpt.cli import main
from s2tdpt.cli.common import model_from_checkpoint
from s2tdpt.engine.checkpoint import CheckpointError, load_checkpoint
from s2tdpt.engine.pretrained import load_pretrained
from s2tdpt.models import list_models

PNG = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------- timm


def test_every_named_model_is_a_timm_model():
    import timm

    assert set(timm.list_models("s2tdpt*")) == {n for n in list_models() if n.startswith("s2tdpt")}
    assert "ann_4_384" in timm.list_models()
    model = timm.create_model("s2tdpt_tiny", num_classes=7, in_chans=1, drop_rate=0.0)
    assert isinstance(model, s2tdpt.S2TDPT) and (model.config.num_classes, model.config.in_chans) == (7, 1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    # a timm data pipeline reads the model's input size and normalisation
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (1, 32, 32) and len(data["mean"]) == 1
    with pytest.raises(ValueError, match="no pretrained weights are published"):
        timm.create_model("s2tdpt_tiny", pretrained=True)
    with pytest.raises(ValueError, match="no dropout layers: drop_path_rate must be 0"):
        timm.create_model("s2tdpt_tiny", drop_path_rate=0.1)


def test_importing_s2tdpt_registers_with_timm_when_timm_comes_later():
    # a library's find_spec probe before the import (transformers runs one) must not use the hook up
    code = ("import sys, importlib.util, s2tdpt; assert 'timm' not in sys.modules and 'torch' not in sys.modules; "
            "assert importlib.util.find_spec('timm') is not None; import timm; "
            "print(timm.create_model('s2tdpt_4_384', num_classes=100).config.num_classes)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "100"


# ------------------------------------------------------------------------------------------------- shared weights


def _logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def test_export_writes_weights_without_pickle_and_every_command_takes_the_folder(
    tiny_run, image_folder, tmp_path, capsys
):
    ckpt_path = tiny_run.path / "best.pt"
    out = tmp_path / "weights"
    assert main(["export", str(ckpt_path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["class_names"] and config["dataset"]["mean"] and config["model_config"]["depth"]
    from safetensors.torch import load_file

    tensors = load_file(str(out / "model.safetensors"))  # plain tensors: no optimiser, nothing unpickled
    original, _ = model_from_checkpoint(str(ckpt_path))
    assert set(tensors) == set(original.state_dict())
    assert all(torch.equal(tensors[k], v) for k, v in original.state_dict().items())
    model = load_pretrained(out)
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in model.state_dict().items())
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(_logits(model, x), _logits(original, x))
    # weights trained ideal load onto memristive synapses: the model draws the devices the file does not hold
    on_devices = load_pretrained(out, attn_kwargs={"synapse": "reram_om"})
    assert on_devices.blocks[0].attn.synapse.name == "reram_om"
    assert torch.equal(on_devices.head.weight, original.head.weight)

    results = []
    for source in (ckpt_path, out):
        dest = tmp_path / f"eval-{len(results)}"
        assert main(["eval", str(source), "--data-dir", str(image_folder), "--out", str(dest)]) == 0
        results.append(json.loads((dest / "eval.json").read_text()))
    assert results[1]["top1"] == results[0]["top1"] and results[1]["per_class_top1"] == results[0]["per_class_top1"]
    capsys.readouterr()
    assert (
        main(["energy", "--checkpoint", str(out), "--data-dir", str(image_folder), "--json", "--num-images", "8"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["memory_aware_mj"] > 0
    assert main(["explain", str(out), "--data-dir", str(image_folder), "--num", "1", "--out", str(tmp_path / "x")]) == 0
    assert any(p.suffix == ".png" for p in (tmp_path / "x").rglob("*"))

    # another shape is refused, naming the tensors; an existing folder is not overwritten
    with pytest.raises(CheckpointError, match=r"head\.weight: file \(3, 32\), model \(5, 32\)"):
        load_pretrained(out, num_classes=5)
    assert main(["export", str(ckpt_path), "--out", str(out)]) == 1
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps(config))
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="cannot read .*model.safetensors"):
        load_checkpoint(tmp_path / "broken")


def test_the_hub_fails_clearly_offline_and_push_keeps_the_folder(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="cannot download 'nobody/nothing' from the Hugging Face Hub"):
        load_pretrained("hf-hub:nobody/nothing")
    with pytest.raises(CheckpointError, match="not an exported weights folder"):  # no prefix: a local path, not sent
        load_pretrained("nobody/nothing")

    import huggingface_hub

    uploads = []

    class FakeApi:
        def create_repo(self, repo, exist_ok):
            assert exist_ok

        def upload_folder(self, folder_path, repo_id):
            uploads.append((sorted(p.name for p in Path(folder_path).iterdir()), repo_id))
            return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert main(["export", str(tiny_run.path / "best.pt"), "--out", str(tmp_path / "w"), "--push", "me/tiny"]) == 0
    assert uploads == [(["config.json", "model.safetensors"], "me/tiny")]

    class OfflineApi(FakeApi):
        def create_repo(self, repo, exist_ok):
            raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineApi)
    capsys.readouterr()
    assert main(["export", str(tiny_run.path / "best.pt"), "--out", str(tmp_path / "w2"), "--push", "me/tiny"]) == 1
    err = capsys.readouterr().err
    assert "could not upload" in err and "is complete and can be uploaded later" in err
    assert load_pretrained(tmp_path / "w2").config.num_classes == 3  # the folder is whole


# ------------------------------------------------------------------------------------------------------------ ONNX


def test_onnx_export_without_the_extra_says_what_to_install(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    assert main(["export", str(tiny_run.path / "best.pt"), "--format", "onnx", "--out", str(tmp_path / "o")]) == 1
    assert "pip install 's2tdpt[onnx]'" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_onnx_export_matches_pytorch_on_a_firing_network(tiny_run, tmp_path):
    for name in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(name)
    import onnxruntime

    # a network that fires: BatchNorm statistics warmed, Q/K/V amplified, saved as a checkpoint and exported
    torch.manual_seed(0)
    ckpt = load_checkpoint(tiny_run.path / "best.pt")
    model, _ = model_from_checkpoint(str(tiny_run.path / "best.pt"))
    x = torch.randn(6, 3, 32, 32)
    warm_batchnorm(model, [x])
    amplify_qkv(model)
    model.eval()
    assert_late_neurons_fire(model, x)
    ckpt["model"] = model.state_dict()
    torch.save(ckpt, tmp_path / "firing.pt")
    out = tmp_path / "onnx"
    assert main(["export", str(tmp_path / "firing.pt"), "--format", "onnx", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.onnx"]
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    for batch in (x, x[:1]):  # any batch size
        got = torch.from_numpy(session.run(None, {"images": batch.numpy()})[0])
        want = _logits(model, batch)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        if len(batch) > 1:
            assert want.std(0).max() > 1e-3  # the logits depend on the image: the comparison can fail


# ---------------------------------------------------------------------------------------- curves, TensorBoard, compare


def test_curves_are_drawn_after_the_first_epoch_then_at_most_every_30_s_and_at_the_end(tiny_run, tmp_path):
    assert (tiny_run.path / "curves.png").read_bytes().startswith(PNG)
    from s2tdpt.engine.run import CURVES_EVERY_S, RunDir

    now = [0.0]
    run = RunDir(tmp_path, timer=lambda: now[0])
    picture = tmp_path / "curves.png"

    def epoch_at(t, epoch):  # one epoch's row, appended when the training clock reads t
        now[0] = t
        picture.unlink(missing_ok=True)
        run.append_metrics(dict(epoch=epoch, lr=1e-3, train_loss=2.0 / epoch, train_top1=10.0 * epoch,
                                test_loss=2.1 / epoch, test_top1=9.0 * epoch))  # fmt: skip
        return picture.exists()

    assert CURVES_EVERY_S == 30.0
    assert epoch_at(5.0, 1)  # the first epoch: drawn at once
    assert not epoch_at(20.0, 2)  # 15 s after the last drawing
    assert epoch_at(35.0, 3)  # 30 s after it
    assert not epoch_at(40.0, 4)
    run.draw_curves()  # the end of the run draws the rows not yet shown
    assert picture.read_bytes().startswith(PNG)
    picture.unlink()
    run.draw_curves()  # nothing new since: not drawn again
    assert not picture.exists()


def test_a_resumed_run_redraws_its_curves_and_a_drawing_failure_is_only_a_warning(tmp_path, monkeypatch, caplog):
    from s2tdpt.engine import run as run_module

    now = [0.0]
    run = run_module.RunDir(tmp_path, timer=lambda: now[0])
    for epoch in (1, 2, 3):  # drawn after epoch 1 only: the clock stays within 30 s
        run.append_metrics(dict(epoch=epoch, lr=1e-3, train_loss=1.0, train_top1=50.0, test_loss=1.0, test_top1=50.0))
    drawn = []
    monkeypatch.setattr(run_module, "plot_runs", lambda runs, out, title="": drawn.append(len(runs[title])))
    resumed = run_module.RunDir(tmp_path, timer=lambda: now[0])  # a process resuming after epoch 2's checkpoint
    resumed.truncate_metrics(2)
    resumed.draw_curves()  # the end of a resumed run with nothing left to train
    assert drawn == [2]  # redrawn from the truncated metrics.csv

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_module, "plot_runs", broken)
    monkeypatch.setattr(logging.getLogger("s2tdpt"), "propagate", True)  # a training run in this process turned it off
    with caplog.at_level("WARNING", logger="s2tdpt"):
        run_module.RunDir(tmp_path).append_metrics(dict(epoch=3, lr=1e-3))
    assert "could not draw" in caplog.text and "No space left on device" in caplog.text
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 4  # the row was written all the same


def test_tensorboard_logs_each_epoch_or_says_what_to_install(image_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    assert main(tiny_args(image_folder, tmp_path / "none", "--epochs", "1", "--tensorboard")) == 1
    assert "pip install 's2tdpt[tensorboard]'" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # refused before the run folder was made
    monkeypatch.undo()
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(tiny_args(image_folder, tmp_path / "tb", "--epochs", "2", "--tensorboard", "--limit-train", "8")) == 0
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("test_top1")]
    assert steps == [1, 2] and "train_loss" in events.Tags()["scalars"]


def test_compare_tables_the_differences_and_plots_the_curves(tiny_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(tiny_run.path, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["lr"] = 1e-3
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    (other / "energy.json").write_text(json.dumps({"energy_mj": 0.0123, "memory_aware_mj": 0.456}))
    capsys.readouterr()
    assert main(["compare", str(tiny_run.path), str(other), "--out", str(tmp_path / "cmp")]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("| run"))
    assert header.split(" | ")[1] == "lr"  # the one setting that differs
    final = json.loads((tiny_run.path / "final.json").read_text())
    assert f"{final['final_test_top1']:.2f} %" in table and "12.3 µJ" in table and "456.0 µJ" in table
    assert (tmp_path / "cmp" / "compare.png").read_bytes().startswith(PNG)
    assert (tmp_path / "cmp" / "compare.md").read_text().startswith("| run | lr |")
    assert main(["compare", str(tiny_run.path), str(tmp_path / "nope"), "--out", str(tmp_path / "c2")]) == 1
    assert "is not a run folder" in capsys.readouterr().err and not (tmp_path / "c2").exists()


# ----------------------------------------------------------------------------------------------------------- GPU


def test_gpu_check_dry_run_writes_its_table(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "gpu_check", Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    )
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert (
        gpu_check.main(["--out", str(tmp_path), "--dry-run", "--configs", "reference", "fast"]) == 0
    )  # compiled: tested in test_fast
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {(r["config"], r["mode"]): r for r in report["steps"]}
    assert set(rows) == {(c, m) for c in ("reference", "fast") for m in ("train", "infer")}
    assert all(r["images_per_s"] > 0 for r in rows.values())
    assert report["epoch"]["images_per_s"] > 0 and report["epoch"]["lif_backend"] in ("compiled", "fused")
    assert "| train | reference |" in (tmp_path / "gpu_check.md").read_text()
