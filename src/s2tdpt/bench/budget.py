"""Every attention mechanism, the controls and the ANN, trained for the same wall-clock budget on the same data.

    s2tdpt bench budget -c configs/cpu_fashion_s2tdpt_cpu.yaml --out-root runs/budget-fashion
    s2tdpt bench budget -c configs/cpu_cifar10jpeg_s2tdpt_cpu.yaml --data-dir cifar10-jpeg \\
        --out-root runs/budget-cifar --attentions stdp ssa identity --seeds 0 1
    s2tdpt bench budget -c configs/cpu_cifar10jpeg_s2tdpt_cpu.yaml --data-dir cifar10-jpeg \\
        --out-root runs/neurons --attentions stdp identity --neurons lif plif ilif --seeds 0 1

Each (mechanism, seed) trains in its own run folder ``<out-root>/<mechanism>-s<seed>`` with the recipe's settings
and its ``time_budget`` (training seconds; evaluation excluded); with ``--neurons``, each (mechanism, neuron, seed)
in ``<mechanism>-<neuron>-s<seed>`` (the ANN keeps its ReLU: one run per seed). A finished run (final.json) is not
repeated and an interrupted one is resumed from its last checkpoint, so a long comparison can be run in pieces.
Before its budget starts, each run (fresh or resumed) is warmed up: one forward and backward pass of its model on
one batch compiles, outside the budget, what the first training step would otherwise compile inside it. Without
that, the first mechanism of a call would pay for compiling the shared LIF kernels and the others would not. After
training, firing rates and energy per image (the project's calculator) are measured on ``--energy-images`` test
images.
Prints one row per run and one per mechanism (mean and spread over seeds).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_ATTENTIONS = ["stdp", "ssa", "sdsa", "qk_token", "lrf_dyn", "identity", "random_frozen", "ann"]


def _overrides(name: str, neuron: str | None) -> dict:
    if name == "ann":  # the same backbone with ReLU, softmax attention and one time step
        return {"attention": "softmax", "timesteps": 1, "neuron": "relu", "neuron_kwargs": {}}
    return {"attention": name} if neuron is None else {"attention": name, "neuron": neuron}


def run_names(attentions: list[str], neurons: list[str] | None) -> list[tuple[str, str | None]]:
    """The (mechanism, neuron) pairs to run, in order; neuron None means the recipe's own, and the ANN has none."""
    return [(a, n) for a in attentions for n in ([None] if a == "ann" or not neurons else neurons)]


def warm_up(cfg) -> None:
    """One forward and backward pass of ``cfg``'s model on one training batch, outside its time budget.

    A process compiles what it runs compiled at the first training step that needs it: the LIF kernels
    (``lif_backend`` compiled or auto) and, with ``compile`` on, the whole model. Inside a budget that cost would
    fall on whichever mechanism runs first (its first step alone can outlast a short budget), so every run is
    warmed up the same way before its clock starts. No optimiser step is taken and the model is discarded: the
    run itself starts from its own seeded initialisation, as without the warm-up.
    """
    import torch
    import torch.nn.functional as F

    from ..data.loaders import build_loaders
    from ..engine.distributed import resolve_device
    from ..engine.evaluate import autocast, resolve_amp
    from ..engine.fast import compile_training
    from ..engine.train import configured_neuron, model_config_for, resolve_compile, resolve_lif_backend
    from ..models import S2TDPT

    device = resolve_device(cfg.device)
    lif_backend = resolve_lif_backend(cfg.lif_backend, device, configured_neuron(cfg))
    cfg = cfg.replace(  # as train() resolves them; one batch of training data
        lif_backend=lif_backend,
        amp=resolve_amp(cfg.amp, device),
        compile=resolve_compile(cfg.compile, lif_backend, device),
        limit_train=cfg.batch_size,
        limit_test=1,
    )
    data = build_loaders(cfg)
    net = S2TDPT(model_config_for(cfg, data)).to(device).train()
    if cfg.compile == "on":
        net = compile_training(net)
    images, labels = next(iter(data.train_loader))
    with autocast(device, cfg.amp):
        logits = net(images.to(device))
    F.cross_entropy(logits.float(), labels.to(device)).backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(
    name: str, seed: int, recipe: dict, args, timer: Callable[[], float] = time.perf_counter, neuron: str | None = None
) -> dict:
    """Train (or resume, or reuse) one run and measure its energy; ``timer`` is the clock its budget is read on."""
    from ..analysis.energy import estimate_energy
    from ..analysis.firing import measure_rates
    from ..analysis.memory_energy import break_even, memory_aware_energy
    from ..cli.common import checkpoint_test_set, model_from_checkpoint
    from ..data.loaders import build_test_loader
    from ..engine.config import build_config
    from ..engine.train import train

    out = Path(args.out_root) / (f"{name}-s{seed}" if neuron is None else f"{name}-{neuron}-s{seed}")
    if not (out / "final.json").exists():
        layers = {"out": str(out), "seed": seed, **_overrides(name, neuron)}
        if args.data_dir:  # a resumed run too reads its data from --data-dir, not from the recipe's folder
            layers["data_dir"] = args.data_dir
        cfg = build_config(recipe, layers)
        resume = out if (out / "last.pt").exists() else None
        print(f"[budget] warming up, then {'resuming' if resume else 'training'} {out}", flush=True)
        warm_up(cfg)  # compiling happens here, outside the budget, for every run alike
        train(cfg, resume=resume, timer=timer)
    final = json.loads((out / "final.json").read_text())
    energy_file = out / "energy.json"
    if not energy_file.exists():
        model, ckpt = model_from_checkpoint(str(out / "last.pt"))
        test_ds, info = checkpoint_test_set(ckpt, n_images=args.energy_images)
        monitor = measure_rates(model, build_test_loader(test_ds, 100, 0, layout=info.layout))
        rep, memory = estimate_energy(model, monitor), memory_aware_energy(model, monitor)
        even = break_even(model, monitor, measured=memory)
        energy_file.write_text(json.dumps({
            "energy_mj": rep.energy_mj, "mac_ops": rep.mac_ops, "ac_ops": rep.ac_ops, "images": rep.images,
            "memory_aware_mj": memory.mj, "break_even_rate": even["break_even_rate"],
            "effective_rate": even.get("effective_rate"),
        }))  # fmt: skip
    energy = json.loads(energy_file.read_text())
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    throughput = statistics.median(float(r["images_per_s"]) for r in rows[1:] or rows)  # epoch 1 includes compiling
    return dict(
        name=name,
        neuron="relu" if name == "ann" else neuron,  # None: the recipe's own
        seed=seed,
        params=final["params"],
        epochs=final.get("epochs_reached", final["epochs"]),
        top1=final["final_test_top1"],
        best=final["best_test_top1"],
        energy_uj=energy["energy_mj"] * 1e3,
        images_per_s=throughput,
        train_s=final.get("train_seconds"),
    )


def main(argv: list[str] | None = None, timer: Callable[[], float] = time.perf_counter) -> int:
    """Run the comparison; ``timer`` is the clock the training budgets are read on (a simulated one in tests)."""
    from ..engine.config import load_yaml

    ap = argparse.ArgumentParser(prog="s2tdpt bench budget", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("-c", "--config", required=True, help="the recipe (YAML with time_budget)")
    ap.add_argument("--out-root", required=True, help="folder for the run folders")
    ap.add_argument("--data-dir", help="dataset folder, overriding the recipe's")
    ap.add_argument("--attentions", nargs="+", default=DEFAULT_ATTENTIONS,
                    help="mechanisms, s2tdpt.list_attentions() ('ann' = the ANN; 'all' = every registered one and "
                    "the ANN)")  # fmt: skip
    ap.add_argument("--neurons", nargs="+", help="neurons to cross with every mechanism, s2tdpt.snn.list_neurons() "
                    "(default: the recipe's own; the ANN keeps ReLU)")  # fmt: skip
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per mechanism and seed (default: 0)")
    ap.add_argument("--time-budget", type=float, help="training seconds per run, overriding the recipe's")
    ap.add_argument("--energy-images", type=int, default=1000, help="test images for rates and energy")
    args = ap.parse_args(argv)
    recipe = load_yaml(args.config)
    if args.time_budget is not None:
        if args.time_budget <= 0:
            raise SystemExit(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
        recipe["time_budget"] = args.time_budget
    if not recipe.get("time_budget"):
        raise SystemExit(f"{args.config} sets no time_budget; this benchmark compares at equal wall-clock budgets")
    from ..attention import list_attentions

    if "all" in args.attentions:
        args.attentions = [*list_attentions(), "ann"]
    unknown = [a for a in args.attentions if a not in [*list_attentions(), "ann"]]
    if unknown:
        raise SystemExit(f"unknown --attentions {', '.join(unknown)}; available: {', '.join(list_attentions())}, ann")
    if args.neurons:
        from ..snn import list_neurons

        unknown = [n for n in args.neurons if n not in list_neurons()]
        if unknown:
            raise SystemExit(f"unknown --neurons {', '.join(unknown)}; available: {', '.join(list_neurons())}")
    pairs = run_names(args.attentions, args.neurons)
    t0 = time.time()
    rows = [run_one(name, seed, recipe, args, timer, neuron) for name, neuron in pairs for seed in args.seeds]
    minutes, took = recipe["time_budget"] / 60, (time.time() - t0) / 60
    print(f"\nRecipe {args.config}: model {recipe.get('model')}, dataset {recipe.get('dataset')}, "
          f"{minutes:g} min of training per run ({took:.0f} min this call)\n")  # fmt: skip
    # with --neurons the first column names both, e.g. "stdp + plif"
    label = (lambda r: f"{r['name']} + {r['neuron']}") if args.neurons else (lambda r: r["name"])
    print("| attention | seed | params | epochs reached | final test top-1 | best | energy / image | images/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {label(r)} | {r['seed']} | {r['params']:,} | {r['epochs']:.2f} | {r['top1']:.2f} % | "
              f"{r['best']:.2f} % | {r['energy_uj']:.1f} µJ | {r['images_per_s']:.0f} |")  # fmt: skip
    if len(args.seeds) > 1:
        print("\n| attention | seeds | final test top-1, mean | min – max | energy / image, mean |")
        print("|---|---:|---:|---:|---:|")
        for name, neuron in pairs:
            group = [r for r in rows if r["name"] == name and (neuron is None or r["neuron"] == neuron)]
            accs = [r["top1"] for r in group]
            print(f"| {label(group[0])} | {len(accs)} | {statistics.mean(accs):.2f} % | {min(accs):.2f} – "
                  f"{max(accs):.2f} % | {statistics.mean(r['energy_uj'] for r in group):.1f} µJ |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
