"""The ``s2tdpt`` command line: ``s2tdpt train | eval | energy | explain | export | compare | bench``.

Only the chosen command's module is imported, so ``s2tdpt --help`` and ``s2tdpt --version`` need no PyTorch.
A user's mistake or a problem of the environment (missing data, a full disk) is one line, ``s2tdpt CMD: error: ...``,
and exit status 1; Ctrl-C is one line and exit status 130. Under torchrun, a message that every process would print
alike (a config error, an interrupt) is printed by rank 0 only, and each failing process leaves its message in
torchrun's error file, so that torchrun's failure summary shows it instead of a link to its documentation.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import time

from .args import StrictParser

# name: (module, one-line help shown by `s2tdpt --help`)
COMMANDS = {
    "train": ("train_cmd", "train a model (no arguments: the quick start)"),
    "eval": ("eval_cmd", "evaluate a checkpoint: top-1, top-5, per-class accuracy, confusion matrix"),
    "energy": ("energy_cmd", "energy per image, per layer: Eq. 29 and memory-aware, break-even spike rate"),
    "explain": ("explain_cmd", "Grad-CAM and spike-firing-rate maps per image, attention maps"),
    "export": ("export_cmd", "export weights (safetensors + config.json) or an ONNX model"),
    "compare": ("compare_cmd", "compare runs: config differences, top-1, speed, energy; one plot of their curves"),
    "bench": ("bench_cmd", "run a benchmark: train-step, budget"),
}
INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT


def build_parser(only: str | None = None) -> StrictParser:
    """The ``s2tdpt`` parser. ``only``: build that command's options alone (importing its module) and give the
    others a bare entry for the command list; None builds every command."""
    from .. import __version__

    parser = StrictParser(
        prog="s2tdpt", description="Spiking STDP Transformer: train, evaluate, estimate energy, explain predictions."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=StrictParser)
    for name, (module, help_text) in COMMANDS.items():
        if only is None or only == name:
            importlib.import_module(f"{__name__}.{module}").add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command if command in COMMANDS else "")
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return _run(args)
    except KeyboardInterrupt as e:  # Ctrl-C: the training engine says how to continue the run
        return _report(command or "", str(e) or "interrupted", INTERRUPTED, same_on_every_rank=True)


def _run(args) -> int:
    from ..data.datasets import DatasetNotFound
    from ..engine.checkpoint import CheckpointError
    from ..engine.config import ConfigError
    from ..engine.run import RunFolderError
    from ..engine.train import TrainingDiverged

    try:
        return args.func(args)
    except (ValueError, OSError, DatasetNotFound, CheckpointError, RunFolderError, TrainingDiverged) as e:
        logging.getLogger("s2tdpt").debug("error", exc_info=True)
        return _report(args.command, f"error: {e}", 1, same_on_every_rank=isinstance(e, ConfigError))


def _report(command: str, message: str, code: int, same_on_every_rank: bool = False) -> int:
    """Print ``s2tdpt CMD: message`` on stderr (under torchrun: once for a message every rank shares, else with the
    rank) and leave it in torchrun's error file; return ``code``."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    text = f"s2tdpt {command}: " + (f"[rank {rank}] " if world > 1 and not same_on_every_rank else "") + message
    if rank == 0 or not same_on_every_rank:
        print(text, file=sys.stderr)
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:  # torchrun's failure summary ("Root Cause ... traceback :") shows py_callstack
        record = {"message": text, "extraInfo": {"py_callstack": text, "timestamp": str(int(time.time()))}}
        with contextlib.suppress(OSError), open(error_file, "w") as f:
            json.dump({"message": record}, f)
    return code
