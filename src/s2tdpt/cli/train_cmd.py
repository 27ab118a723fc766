"""``s2tdpt train``: defaults ← YAML (-c) ← flags; ``--resume RUN_DIR`` continues a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.config import ConfigError, TrainConfig, build_config, config_keys, load_yaml
from .args import add_dataclass_flags, normalise_lists

# What may change when a run is resumed; anything else must match the run's config.yaml. lr, clip_grad and amp are
# the remedies for a diverged run; a change is recorded in config.yaml and train.log.
RESUMABLE_CHANGES = (
    "epochs", "device", "workers", "download", "data_dir", "lif_backend", "compile", "lr", "clip_grad", "amp",
)  # fmt: skip

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
    """The run's config and, with --resume, its folder; every check that needs no data runs here, before any work."""
    flags = normalise_lists({k: v for k, v in vars(args).items() if k in config_keys()})
    if args.resume:
        return _resolve_resume(Path(args.resume), flags, args.config), Path(args.resume)
    layers = [load_yaml(args.config)] if args.config else []
    return build_config(*layers, flags), None


def _resolve_resume(run_dir: Path, flags: dict, config_file: str | None) -> TrainConfig:
    """The config of a resumed run: its config.yaml with the allowed changes. Values are compared as the config
    resolves them, so giving the same value in another form (``--mean cifar10``, ``--lr 5e-3``) is not a change."""
    from ..engine.run import RunDir

    if config_file:
        raise ConfigError("--resume takes the run's own config.yaml; do not pass -c as well")
    RunDir.check_resumable(run_dir)
    saved_file = run_dir / "config.yaml"
    saved = load_yaml(saved_file)
    try:
        base = build_config(saved)
    except ConfigError as e:
        raise ConfigError(f"{saved_file}: {e}") from None
    out = flags.pop("out", None)
    if out is not None and Path(out).resolve() != run_dir.resolve():
        raise ConfigError(f"--resume continues the run in {run_dir}; drop --out {out}")
    cfg = build_config(saved, flags)
    changed = sorted(k for k in flags if k not in RESUMABLE_CHANGES and getattr(cfg, k) != getattr(base, k))
    if changed:
        raise ConfigError(
            f"--resume cannot change {changed} (the run was configured with "
            f"{ {k: getattr(base, k) for k in changed} }); resumable changes: {list(RESUMABLE_CHANGES)}; to train "
            f"with other settings, start a new run: s2tdpt train -c {saved_file} --out NEW ..."
        )
    return cfg


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
