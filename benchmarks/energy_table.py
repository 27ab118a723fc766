"""Energy per image of every attention mechanism on one backbone, from a short training run on real images.

    python benchmarks/energy_table.py --out-root /tmp/energy_runs [--dataset fashion_mnist] [--epochs 3]

Each mechanism (and the ANN: ReLU, softmax, T = 1, same backbone) trains with the same recipe, data and seed;
then firing rates are measured on --rate-images test images and turned into energy by the project's calculator
(specs/energy.md rules: first conv × T, strict binary check). A mechanism whose run folder already holds
final.json is not trained again, so the table can be built in pieces.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from s2tdpt.bench.common import machine

MECHANISMS = ["stdp", "ssa", "sdsa", "qk_token", "a2os2a", "lrf_ssa", "lrf_dyn", "identity", "random_frozen", "ann"]


def run_one(name: str, args) -> dict:
    import torch

    from s2tdpt.analysis.energy import estimate_energy
    from s2tdpt.analysis.firing import measure_rates
    from s2tdpt.cli.common import checkpoint_test_set, model_from_checkpoint
    from s2tdpt.data.loaders import build_test_loader
    from s2tdpt.engine.config import TrainConfig
    from s2tdpt.engine.train import train

    out = Path(args.out_root) / name
    if not (out / "final.json").exists():
        if out.exists():
            import shutil

            shutil.rmtree(out)  # an unfinished run: start it again
        kw = dict(attention=name)
        if name == "ann":
            kw = dict(attention="softmax", timesteps=1, model_kwargs={"neuron": "relu"})
        cfg = TrainConfig(
            model=args.model, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
            limit_train=args.limit_train, limit_test=args.limit_test, batch_size=64, lr=2e-3, warmup_epochs=0.5,
            weight_decay=0.01, seed=args.seed, out=str(out), **kw,
        )  # fmt: skip
        train(cfg)
    final = json.loads((out / "final.json").read_text())
    model, ckpt = model_from_checkpoint(str(out / "last.pt"))
    test_ds, _ = checkpoint_test_set(ckpt, n_images=args.rate_images)
    torch.manual_seed(0)
    mon = measure_rates(model, build_test_loader(test_ds, 100, 0))
    rep = estimate_energy(model, mon)
    ac_layers = [x for x in rep.lines if x.kind == "AC" and x.rate is not None and ".attn " not in x.layer]
    flops = sum(x.flops for x in ac_layers)
    weighted = sum(x.rate * x.flops for x in ac_layers) / flops if flops else None
    branches = {}
    for per_block in mon.attention.values():
        for b, s in per_block.items():
            branches.setdefault(b, []).append(s.rate)
    return dict(
        name=name,
        params=final["params"],
        top1=final["final_test_top1"],
        rate=weighted,
        branches={b: sum(v) / len(v) for b, v in branches.items()},
        mac=rep.mac_ops,
        ac=rep.ac_ops,
        energy_uj=rep.energy_mj * 1e3,
        linear_form_uj=rep.extra.get("stdp_linear_form", {}).get("energy_mj", float("nan")) * 1e3,
        images=mon.images,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-root", required=True, help="folder for the run folders (outside the repository)")
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--model", default="s2tdpt_2_128")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit-train", type=int, default=6144)
    ap.add_argument("--limit-test", type=int, default=2000)
    ap.add_argument("--rate-images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", choices=MECHANISMS, help="run these mechanisms only")
    args = ap.parse_args()

    rows = [run_one(name, args) for name in (args.only or MECHANISMS)]
    print(f"\nMachine: {machine()}")
    print(
        f"Backbone {args.model}, {args.dataset}: {args.epochs} epochs on {args.limit_train} training images, batch 64, "
        f"AdamW 2e-3, seed {args.seed}; top-1 on {args.limit_test} test images; rates and energy on "
        f"{args.rate_images} test images.\n"
    )
    print(
        "| attention | params | test top-1 | input rate (FLOPs-weighted) | Q / K / V rate | MAC | AC | energy / image |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        qkv = " / ".join(f"{r['branches'][b]:.3f}" if b in r["branches"] else "–" for b in ("q", "k", "v"))
        rate = f"{r['rate']:.3f}" if r["rate"] is not None else "– (ANN)"
        energy = f"{r['energy_uj']:.1f} µJ"
        if r["linear_form_uj"] == r["linear_form_uj"]:  # not NaN
            energy += f" (linear form: {r['linear_form_uj']:.1f})"
        print(
            f"| {r['name']} | {r['params']:,} | {r['top1']:.2f} % | {rate} | {qkv} | {r['mac'] / 1e6:.2f} M | "
            f"{r['ac'] / 1e6:.2f} M | {energy} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
