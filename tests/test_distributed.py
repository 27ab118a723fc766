"""DDP: the same `s2tdpt train` under torchrun with 2 gloo processes on the CPU."""

import json
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def test_two_processes_end_with_identical_weights_and_one_run_folder(image_folder, tmp_path):
    runs, dumps = tmp_path / "runs", tmp_path / "dumps"
    dumps.mkdir()
    argv = [
        "train", "--model", "s2tdpt_tiny", "--dataset", "imagefolder", "--data-dir", str(image_folder),
        "--epochs", "2", "--batch-size", "4", "--warmup-epochs", "0", "--amp", "none", "--device", "cpu",
        "--limit-train", "16", "--limit-test", "8", "--out", str(runs / "ddp"),
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    res = subprocess.run(
        [*cmd, str(HERE / "_ddp_worker.py"), str(dumps), *argv], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    a, b = torch.load(dumps / "rank0.pt"), torch.load(dumps / "rank1.pt")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name  # parameters and (broadcast) BN statistics

    assert [p.name for p in runs.iterdir()] == ["ddp"]  # rank 0 alone wrote a run folder
    final = json.loads((runs / "ddp" / "final.json").read_text())
    assert final["world_size"] == 2 and final["epochs"] == 2
    # each rank trained on its half: 16 images / (2 ranks × 4 per batch) = 2 steps per epoch
    log = (runs / "ddp" / "train.log").read_text()
    assert "× 2" in log and "(16 train / 8 test)" in log
    assert res.stdout.count("(best ") == 1  # one summary line: rank 0
