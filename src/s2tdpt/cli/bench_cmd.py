"""``s2tdpt bench NAME [options]``: the benchmarks that ship with the package (see BENCHMARKS.md)."""

from __future__ import annotations

import argparse

BENCHMARKS = {"train-step": "s2tdpt.bench.train_step", "budget": "s2tdpt.bench.budget"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark: " + ", ".join(BENCHMARKS),
        description="Run a benchmark; `s2tdpt bench NAME --help` lists its options.",
        add_help=True,
    )
    p.add_argument(
        "name", choices=list(BENCHMARKS), help="train-step: time, FLOP/s and memory of a training step and of "
        "inference per setting; budget: every attention mechanism trained for the same time budget",
    )  # fmt: skip
    p.add_argument("options", nargs=argparse.REMAINDER, help="options of that benchmark (s2tdpt bench NAME --help)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib

    return importlib.import_module(BENCHMARKS[args.name]).main(args.options)
