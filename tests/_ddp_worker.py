"""Run ``s2tdpt train`` under torchrun (as the CLI does) and save this rank's final weights for the test."""

import os
import sys

import torch

import s2tdpt.engine.train as engine_train
from s2tdpt.cli import main

captured = {}
_train = engine_train.train


def capturing_train(*args, **kwargs):
    captured["result"] = _train(*args, **kwargs)
    return captured["result"]


engine_train.train = capturing_train  # the CLI imports train at call time, so it gets this wrapper

dump_dir, argv = sys.argv[1], sys.argv[2:]
code = main(argv)
if code == 0:
    torch.save(captured["result"].model.state_dict(), os.path.join(dump_dir, f"rank{os.environ['RANK']}.pt"))
sys.exit(code)
