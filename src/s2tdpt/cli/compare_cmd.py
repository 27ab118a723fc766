"""``s2tdpt compare RUN... [--out DIR]``: a table of runs and one plot of their curves."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

DESCRIPTION = """Compare training runs: the settings in which their configs differ, final and best test top-1,
epochs, training speed (median images/s over epochs) and energy per image where measured (energy.json, written by
`s2tdpt bench budget`: Eq. 29 and the memory-aware estimate). With --out DIR, also DIR/compare.png (loss, top-1
and learning rate of every run against epoch) and DIR/compare.md (the table)."""

IGNORED_KEYS = ("out",)  # differs between any two runs, says nothing


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare runs: table and curves", description=DESCRIPTION)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (each with config.yaml and metrics.csv)")
    p.add_argument("--out", help="folder for compare.png and compare.md")
    p.set_defaults(func=run)


def load_run(folder: Path) -> dict[str, Any]:
    """What a run folder says about itself; ``ValueError`` naming the folder when it is not a run."""
    import yaml

    from ..engine.curves import read_metrics

    if not (folder / "config.yaml").exists():
        raise ValueError(f"{folder} is not a run folder (no config.yaml); pass folders written by `s2tdpt train`")

    def read(name: str, parse) -> dict:
        path = folder / name
        if not path.exists():
            return {}
        try:
            value = parse(path.read_text())
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is damaged ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{path} is damaged: it does not hold a mapping")
        return value

    return dict(
        name=folder.name,
        config=read("config.yaml", yaml.safe_load),
        final=read("final.json", json.loads),
        energy=read("energy.json", json.loads),
        metrics=read_metrics(folder / "metrics.csv"),
    )


def differences(configs: list[dict[str, Any]]) -> list[str]:
    """Config keys whose values are not the same in every run, in the order of the first config."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [
        k for k in keys if k not in IGNORED_KEYS and len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1
    ]


def table(runs: list[dict[str, Any]]) -> str:
    keys = differences([r["config"] for r in runs])
    memory = any("memory_aware_mj" in r["energy"] for r in runs)  # bench budget writes it beside Eq. 29
    head = ["run", *keys, "final top-1", "best top-1", "epochs", "images/s", "energy / image (Eq. 29)"]
    head += ["memory-aware / image"] if memory else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(keys + ["run"]) + "---:|" * (5 + memory)]
    for r in runs:
        final, m = r["final"], r["metrics"]
        top1 = final.get("final_test_top1", m[-1].get("test_top1") if m else None)
        best = final.get("best_test_top1", max((x["test_top1"] for x in m if "test_top1" in x), default=None))
        epochs = final.get("epochs_reached", m[-1]["epoch"] if m else None)
        speed = [x["images_per_s"] for x in m if "images_per_s" in x]
        energy, mem = r["energy"].get("energy_mj"), r["energy"].get("memory_aware_mj")
        cells = [r["name"], *(_cell(r["config"].get(k)) for k in keys), _pct(top1), _pct(best),
                 "–" if epochs is None else f"{epochs:g}", f"{statistics.median(speed):.0f}" if speed else "–",
                 "–" if energy is None else f"{energy * 1e3:.1f} µJ"]  # fmt: skip
        if memory:
            cells.append("–" if mem is None else f"{mem * 1e3:.1f} µJ")
        lines.append("| " + " | ".join(cells) + " |")
    if not keys:
        lines.append("\n(the runs' configs are the same, apart from their folders)")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "–" if value is None else (json.dumps(value) if isinstance(value, (dict, list)) else str(value))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} %"


def run(args: argparse.Namespace) -> int:
    folders = [Path(p) for p in args.runs]
    runs = [load_run(f) for f in folders]  # every folder checked before anything is written
    names = [r["name"] for r in runs]
    if len(set(names)) < len(names):  # same folder names under different parents: label by path
        for r, f in zip(runs, folders, strict=True):
            r["name"] = str(f)
    text = table(runs)
    print(text)
    if args.out:
        from ..engine.checkpoint import atomic_write
        from ..engine.curves import plot_runs

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plot_runs({r["name"]: r["metrics"] for r in runs}, out / "compare.png", title=f"{len(runs)} runs")
        atomic_write(out / "compare.md", lambda f: f.write((text + "\n").encode()))
        print(f"wrote {out / 'compare.png'} and {out / 'compare.md'}")
    return 0
