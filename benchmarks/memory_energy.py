"""Eq. 29 and the memory-aware estimate side by side, with the break-even spike rate, as Markdown table rows.

    python benchmarks/memory_energy.py --paper                        # Table 3's models at the paper's implied rates
    python benchmarks/memory_energy.py --runs runs/b-fashion/*/ [--num-images 1000]   # trained run folders

Every figure comes from ``s2tdpt energy --json`` (rates measured on the run's own test set, or assumed), so the
table is what a user gets from the command. Estimates of a model of a chip, not measurements.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

from s2tdpt.cli import main as cli

#: S²TDPT Table 3 (CIFAR-100, 4-384) and the average input rate each figure implies (specs/energy.md)
PAPER_ROWS = [
    ("ANN Transformer", 4.25, "ann_4_384", None, None),
    ("Spikformer (SSA)", 0.79, "s2tdpt_4_384", "ssa", 0.23),
    ("S-Transformer (SDSA)", 0.6177, "s2tdpt_4_384", "sdsa", 0.18),
    ("S²TDPT (STDP)", 0.49, "s2tdpt_4_384", "stdp", 0.14),
]


def energy_json(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(["energy", *argv, "--json"])
    if code != 0:
        raise SystemExit(f"s2tdpt energy {' '.join(argv)} failed")
    return json.loads(out.getvalue())


def _parts(r: dict) -> str:
    p, total = r["memory_aware"]["parts_mj"], r["memory_aware_mj"]
    return (
        f"{100 * p['weights'] / total:.0f} / {100 * p['potentials'] / total:.0f} / {100 * p['attention'] / total:.1f}"
    )


def _rate(x) -> str:
    return "–" if x is None else f"{x:.4f}"


HEADER = ("| model | paper (mJ) | rate | Eq. 29 (mJ) | memory-aware (mJ) | weights / potentials / attention % | "
          "QNN bits | QNN (mJ) | break-even rate |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip


def paper_rows() -> None:
    print(HEADER)
    for label, paper, model, attention, rate in PAPER_ROWS:
        argv = ["--model", model, "--num-classes", "100"]
        if attention:
            argv += ["--attention", attention, "--assume-rate", str(rate)]
        r = energy_json(argv)
        even = r["break_even"]
        bits, qnn = (even["qnn_activation_bits"], f"{even['qnn_mj']:.2f}") if "qnn_mj" in even else ("–", "–")
        name = f"`{model}`" + (f" {attention}" if attention else "")
        print(f"| {label}: {name} | {paper} | {_rate(rate)} | {r['energy_mj']:.4f} | {r['memory_aware_mj']:.2f} | "
              f"{_parts(r)} | {bits} | {qnn} | {_rate(r['break_even_rate'])} |")  # fmt: skip


def run_rows(runs: list[str], num_images: int, data_dir: str | None = None) -> None:
    print(
        "| run | attention | neuron | test top-1 | Eq. 29 (µJ) | memory-aware (µJ) | weights / potentials / "
        "attention % | QNN (µJ) | break-even rate | effective rate | mean input spike rate |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        folder = Path(run)
        ckpt = folder / "best.pt" if (folder / "best.pt").exists() else folder / "last.pt"
        r = energy_json(["--checkpoint", str(ckpt), "--num-images", str(num_images)]
                        + (["--data-dir", data_dir] if data_dir else []))  # fmt: skip
        final = json.loads((folder / "final.json").read_text()) if (folder / "final.json").exists() else {}
        top1 = final.get("final_test_top1")
        even = r["break_even"]
        cfg = r["settings"]
        neuron = _neuron(folder)
        qnn = f"{even['qnn_mj'] * 1e3:.1f}" if "qnn_mj" in even else "–"
        print(f"| {folder.name} | {cfg['attention']} | {neuron} | {'–' if top1 is None else f'{top1:.2f} %'} | "
              f"{r['energy_mj'] * 1e3:.2f} | {r['memory_aware_mj'] * 1e3:.1f} | {_parts(r)} | {qnn} | "
              f"{_rate(r['break_even_rate'])} | {_rate(even.get('effective_rate'))} | "
              f"{_rate(even.get('mean_spike_rate'))} |")  # fmt: skip


def _neuron(folder: Path) -> str:
    import yaml

    cfg = folder / "config.yaml"
    if not cfg.exists():
        return "?"
    saved = yaml.safe_load(cfg.read_text())
    return saved.get("neuron") or (saved.get("model_kwargs") or {}).get("neuron") or "lif"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paper", action="store_true", help="Table 3's models at the paper's implied rates")
    ap.add_argument("--runs", nargs="*", default=[], help="run folders (best.pt or last.pt, final.json)")
    ap.add_argument("--num-images", type=int, default=1000, help="test images to measure rates on (default 1000)")
    ap.add_argument("--data-dir", help="the runs' dataset folder, where it moved since training")
    args = ap.parse_args()
    if args.paper:
        paper_rows()
    if args.runs:
        run_rows(sorted(args.runs), args.num_images, args.data_dir)


if __name__ == "__main__":
    main()
