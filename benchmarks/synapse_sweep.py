"""Accuracy of trained checkpoints with the attention's weights on memristive synapses: presets and sweeps.

    python benchmarks/synapse_sweep.py --checkpoint stdp=runs/f-stdp/best.pt \\
        --checkpoint random_frozen=runs/f-rf/best.pt --limit-test 2000 --seeds 0 1 2 \\
        --out docs/synapses-fashion.json --plot docs/synapses-fashion.png --title "Fashion-MNIST"

Each checkpoint is evaluated on its own test set (the first ``--limit-test`` images, evenly spaced) under:
every preset (``s2tdpt.attention.synapse.PRESETS``), ``levels`` 2 … 64 and ideal (a linear device: rounding to the
levels), and write noise (``write_noise`` in steps, at 16 levels). Settings with random parts (write noise,
device draws) run once per seed (``torch.manual_seed(seed)`` before the model is built: the crossbar's draws and
the noise); the others once. ``--as-trained`` checkpoints (fine-tuned on a device) are evaluated under their own
synapse only. Prints a markdown table; writes JSON and, with ``--plot``, one PNG of three panels.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

LEVELS = (2, 4, 8, 16, 32, 64, None)
NOISE = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # write_noise in steps, at 16 levels
PANELS = ["presets", "levels", "write noise"]


def settings() -> list[tuple[str, str, object]]:
    """(panel, label, synapse option) for every evaluation."""
    from s2tdpt.attention.synapse import PRESETS

    rows = [("presets", name, name) for name in PRESETS]
    rows += [("levels", str(n or "ideal"), {"levels": n} if n else "ideal") for n in LEVELS]
    rows += [("write noise", f"{x:g}", {"levels": 16, "write_noise": x}) for x in NOISE]
    return rows


def evaluate_under(path: str, synapse, seed: int, limit_test: int | None, data_dir: str | None) -> float:
    import torch

    from s2tdpt.cli.common import checkpoint_test_set, model_from_checkpoint
    from s2tdpt.data.loaders import build_test_loader
    from s2tdpt.engine.evaluate import evaluate
    from s2tdpt.engine.fast import prepare_inference

    torch.manual_seed(seed)
    model, ckpt = model_from_checkpoint(path, synapse)
    model = prepare_inference(model)
    test_ds, info = checkpoint_test_set(ckpt, None, data_dir, limit_test, download=False)
    loader = build_test_loader(test_ds, 256, 0, layout=info.layout)
    return evaluate(model, loader, torch.device("cpu"), model.config.num_classes, "none").top1


def is_random(synapse) -> bool:
    from s2tdpt.attention.synapse import resolve_synapse

    s = resolve_synapse(synapse)
    return bool(s.write_noise or s.per_position)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", default=[], help="LABEL=PATH (repeatable)")
    ap.add_argument("--replot", help="redraw --plot from this JSON of an earlier run, evaluating nothing")
    ap.add_argument("--as-trained", action="append", default=[], help="LABEL=PATH of a fine-tuned checkpoint")
    ap.add_argument("--limit-test", type=int, default=2000)
    ap.add_argument("--data-dir", help="dataset folder, if not the training run's")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", required=True, help="JSON file for the results")
    ap.add_argument("--plot", help="PNG file for the three panels")
    ap.add_argument("--title", default="")
    ap.add_argument("--panels", nargs="+", default=PANELS, choices=PANELS, help="which settings (default: all)")
    args = ap.parse_args(argv)
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())["results"]
        models = list(dict.fromkeys(r["model"] for r in saved if r["panel"] != "fine-tuned"))
        plot(saved, models, args.plot or args.replot.replace(".json", ".png"), args.title, args.panels)
        return 0
    if not args.checkpoint:
        raise SystemExit("give at least one --checkpoint LABEL=PATH (or --replot JSON)")

    def split(item: str) -> tuple[str, str]:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"expected LABEL=PATH, got {item!r}")
        return label, path

    results = []
    for label, path in map(split, args.checkpoint):
        for panel, name, synapse in (row for row in settings() if row[0] in args.panels):
            seeds = args.seeds if is_random(synapse) else args.seeds[:1]
            accs = [evaluate_under(path, synapse, s, args.limit_test, args.data_dir) for s in seeds]
            results.append(dict(model=label, panel=panel, setting=name, synapse=synapse, top1=accs))
            print(f"{label:>14} {panel:>12} {name:>10}: {statistics.mean(accs):6.2f} % {accs}", flush=True)
    for label, path in map(split, args.as_trained):
        accs = [evaluate_under(path, None, s, args.limit_test, args.data_dir) for s in args.seeds]
        results.append(dict(model=label, panel="fine-tuned", setting="as trained", synapse=None, top1=accs))
        print(f"{label:>14} as trained: {statistics.mean(accs):6.2f} % {accs}", flush=True)

    from s2tdpt.bench.common import machine

    out = dict(machine=machine(), limit_test=args.limit_test, seeds=args.seeds, results=results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    models = list(dict.fromkeys(r["model"] for r in results if r["panel"] != "fine-tuned"))
    print(f"\n| panel | setting | {' | '.join(models)} |\n|---|---|{'---:|' * len(models)}")
    for panel, name, _ in (row for row in settings() if row[0] in args.panels):
        cells = []
        for m in models:
            accs = next(r["top1"] for r in results if (r["model"], r["panel"], r["setting"]) == (m, panel, name))
            spread = f" ({min(accs):.2f}–{max(accs):.2f})" if len(accs) > 1 else ""
            cells.append(f"{statistics.mean(accs):.2f} %{spread}")
        print(f"| {panel} | {name} | {' | '.join(cells)} |")
    if args.plot:
        plot(results, models, args.plot, args.title, args.panels)
    return 0


def plot(results: list[dict], models: list[str], path: str, title: str, panels: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, panel in zip(axes, panels, strict=True):
        for i, m in enumerate(models):
            rows = [r for r in results if r["model"] == m and r["panel"] == panel]
            x = list(range(len(rows)))
            means = [statistics.mean(r["top1"]) for r in rows]
            lo = [mean - min(r["top1"]) for mean, r in zip(means, rows, strict=True)]
            hi = [max(r["top1"]) - mean for mean, r in zip(means, rows, strict=True)]
            shift = (i - (len(models) - 1) / 2) * 0.12  # side by side, so the spreads stay readable
            ax.errorbar([v + shift for v in x], means, yerr=[lo, hi], marker="o", ls="-" if panel != "presets" else "",
                        label=m, capsize=2)  # fmt: skip
            ax.set_xticks(x, [r["setting"] for r in rows])
        ax.set_title(f"{panel}" + (" (steps, at 16 levels)" if panel == "write noise" else ""))
        ax.grid(alpha=0.3)
    for r in results:
        if r["panel"] == "fine-tuned":
            axes[0].axhline(statistics.mean(r["top1"]), ls="--", lw=1, color="k", alpha=0.6)
            axes[0].annotate(r["model"], (0, statistics.mean(r["top1"])), fontsize=7, va="bottom")
    axes[0].set_ylabel("test top-1 (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
