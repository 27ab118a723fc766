"""``s2tdpt train``: defaults ← YAML (-c) ← flags; ``--resume RUN_DIR`` continues a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.config import TrainConfig, build_config, config_keys, load_yaml
from .args import add_dataclass_flags, normalise_lists

# What may change when a run is resumed; anything else must match the run's config.yaml.
RESUMABLE_CHANGES = ("epochs", "device", "workers", "download", "data_dir", "lif_backend", "compile")

DESCRIPTION = """Train an S²TDPT model. With no arguments: the embedded quick start — a small S²TDPT on scikit-learn's
8×8 handwritten digits, on the CPU, in under a minute, printing the test accuracy.

Configuration precedence: built-in defaults ← YAML file (-c) ← flags. The run folder (--out) receives config.yaml,
metrics.csv, train.log, final.json, last.pt and best.pt. Under torchrun, each process trains on its shard
(--batch-size is per process) and rank 0 alone writes."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (no arguments: the quick start)", description=DESCRIPTION)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("-c", "--config", metavar="YAML", help="YAML file of config keys (see configs/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    add_dataclass_flags(p, TrainConfig)
    p.set_defaults(func=run)


def resolve(args: argparse.Namespace) -> tuple[TrainConfig, Path | None]:
    flags = normalise_lists({k: v for k, v in vars(args).items() if k in config_keys()})
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").exists() or not (run_dir / "last.pt").exists():
            raise FileNotFoundError(
                f"--resume {run_dir}: no config.yaml and last.pt there (a run folder gets them after its first "
                f"epoch); start a new run instead"
            )
        saved = load_yaml(run_dir / "config.yaml")
        if args.config:
            raise ValueError("--resume takes the run's own config.yaml; do not pass -c as well")
        changed = sorted(k for k, v in flags.items() if k not in RESUMABLE_CHANGES and saved.get(k) != v)
        if changed:
            raise ValueError(
                f"--resume cannot change {changed} (the run was configured with "
                f"{ {k: saved.get(k) for k in changed} }); resumable changes: {list(RESUMABLE_CHANGES)}"
            )
        return build_config(saved, flags), run_dir
    layers = [load_yaml(args.config)] if args.config else []
    return build_config(*layers, flags), None


def run(args: argparse.Namespace) -> int:
    from ..engine.train import train

    cfg, resume = resolve(args)
    result = train(cfg, resume=resume)
    if result.is_main:
        print(
            f"test top-1 {result.final_test_top1:.2f}% (best {result.best_test_top1:.2f}% at epoch "
            f"{result.best_epoch}) · run folder {result.run_dir}"
        )
    return 0
