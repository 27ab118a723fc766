"""The ``s2tdpt`` command line: ``s2tdpt train | eval | energy | explain | bench``."""

from __future__ import annotations

import logging
import sys

from .args import StrictParser


def build_parser() -> StrictParser:
    from . import bench_cmd, energy_cmd, eval_cmd, explain_cmd, train_cmd

    parser = StrictParser(
        prog="s2tdpt", description="Spiking STDP Transformer: train, evaluate, estimate energy, explain predictions."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=StrictParser)
    train_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    energy_cmd.add_parser(sub)
    explain_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..data.datasets import DatasetNotFound
    from ..engine.checkpoint import CheckpointError
    from ..engine.train import TrainingDiverged

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, DatasetNotFound, CheckpointError, TrainingDiverged) as e:
        logging.getLogger("s2tdpt").debug("error", exc_info=True)
        print(f"s2tdpt {args.command}: error: {e}", file=sys.stderr)
        return 1
