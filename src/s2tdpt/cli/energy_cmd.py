"""``s2tdpt energy``: theoretical compute energy per image (S²TDPT Eq. 29, rules of specs/energy.md §4) and the
memory-aware estimate beside it (``analysis/memory_energy.py``, docs/energy.md)."""

from __future__ import annotations

import argparse
import json

import torch

from ..analysis.energy import E_AC_PJ, E_MAC_PJ, estimate_energy
from ..analysis.firing import measure_rates
from ..analysis.memory_energy import MemoryCosts, break_even, memory_aware_energy
from ..data.datasets import list_datasets
from ..data.loaders import build_test_loader
from ..engine.distributed import resolve_device
from ..models import create_model, list_models
from ..snn.registry import neuron_emits
from .common import checkpoint_test_set, model_from_checkpoint

DESCRIPTION = """Theoretical compute energy per image (45 nm: E_MAC = 4.6 pJ, E_AC = 0.9 pJ) of a model, layer by layer:
MACs for the first conv (T times by default) and the head, synaptic operations rate·T·FLOPs for every spike-driven
conv/linear, and the attention's own operations per mechanism. A spiking model's energy depends on its firing
rates: give a trained --checkpoint (rates are measured on --num-images test images of its dataset, or of
--dataset) or assume one rate everywhere with --assume-rate. The ANN baseline needs neither.

Beside it, a memory-aware estimate (Lemaire et al., ICONIP 2022): arithmetic plus an SRAM access for every weight,
potential, bias and spike read or written, priced by memory size (docs/energy.md), and the break-even spike rate
below which the model would use less energy than the same architecture as an ANN quantised to ceil(log2(T+1))
bits. Both are estimates of a model of a chip, not measurements."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("energy", help="energy per image, per layer: Eq. 29 and memory-aware", description=DESCRIPTION)
    p.add_argument("--model", choices=list_models(), help="named model (default: the checkpoint's)")
    p.add_argument(
        "--checkpoint",
        help="trained checkpoint (or a folder written by s2tdpt export): its model, and its test set for the rates",
    )
    p.add_argument("--num-classes", type=int, help="classes of --model (e.g. 100 for the paper's CIFAR-100 figure)")
    p.add_argument("--attention", help="attention of --model (s2tdpt.list_attentions())")
    p.add_argument("--dataset", choices=list_datasets(), help="measure rates on this dataset's test split")
    p.add_argument("--data-dir", help="dataset folder")
    p.add_argument("--num-images", type=int, default=1000, help="test images to average rates over (default 1000)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size for measuring rates (default 64)")
    p.add_argument("--assume-rate", type=float, help="use this firing rate (in [0, 1]) for every spiking layer instead")
    p.add_argument("--e-mac", type=float, default=E_MAC_PJ, help=f"pJ per multiply-accumulate (default {E_MAC_PJ})")
    p.add_argument("--e-ac", type=float, default=E_AC_PJ, help=f"pJ per accumulate (default {E_AC_PJ})")
    p.add_argument("--first-conv-once", action="store_true", help="charge the first conv once, not T times")
    p.add_argument("--lenient", action="store_true", help="non-spike inputs: AC at their mean value, not MAC × T")
    p.add_argument("--charge-kernel", action="store_true", help="STDP: charge the kernel lookups T·H·N² as AC")
    p.add_argument("--paper-literal", action="store_true", help="STDP: charge W·V only (the paper's FLOPs_attn)")
    p.add_argument(
        "--mem-cost",
        action="append",
        metavar="KEY=VALUE",
        help="override a constant of the memory-aware model (repeatable), e.g. weight_bits=4 or "
        "e_add_pj=0.03; keys: " + ", ".join(f"{k} ({v:g})" for k, v in _defaults().items()),
    )
    p.add_argument("--device", default="cpu", help="device for measuring rates (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def _defaults() -> dict[str, float]:
    from dataclasses import asdict  # noqa: PLC0415

    return asdict(MemoryCosts())


def check_args(args: argparse.Namespace) -> None:
    """Reject values that would give a meaningless energy (a negative rate, no classes) before any work."""
    if args.assume_rate is not None and not 0.0 <= args.assume_rate <= 1.0:
        raise ValueError(
            f"--assume-rate is a firing rate, the fraction of neurons that spike per timestep, so it lies in [0, 1]; "
            f"got {args.assume_rate}"
        )
    for flag, value in (("--num-classes", args.num_classes), ("--num-images", args.num_images),
                        ("--batch-size", args.batch_size)):  # fmt: skip
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be a positive whole number, got {value}")
    for flag, value in (("--e-mac", args.e_mac), ("--e-ac", args.e_ac)):
        if value < 0:
            raise ValueError(f"{flag} is an energy per operation in pJ and cannot be negative, got {value}")
    MemoryCosts.from_overrides(args.mem_cost)  # an unknown key or a bad value fails before any work


def run(args: argparse.Namespace) -> int:
    check_args(args)
    if args.checkpoint:
        if args.model or args.num_classes is not None or args.attention:
            raise ValueError("--checkpoint defines the model; do not combine it with --model/--num-classes/--attention")
        model, ckpt = model_from_checkpoint(args.checkpoint)
    elif args.model:
        given = dict(num_classes=args.num_classes, attention=args.attention)
        overrides = {k: v for k, v in given.items() if v is not None}
        model, ckpt = create_model(args.model, **overrides), None
    else:
        raise ValueError("give --model NAME or --checkpoint PATH")
    cfg = model.config
    device = resolve_device(args.device)
    model.to(device)
    spiking = neuron_emits(cfg.neuron) != "real"
    if spiking and args.assume_rate is None and ckpt is None:
        raise ValueError(
            f"{args.model} is a spiking model: its energy depends on firing rates, and an untrained model has none "
            f"worth reporting. Pass --checkpoint of a trained run (rates measured on its test set) or --assume-rate R."
        )
    if ckpt is not None and args.assume_rate is None:
        test_ds, info = checkpoint_test_set(ckpt, args.dataset, args.data_dir, args.num_images)
        batches = build_test_loader(test_ds, args.batch_size, 0, layout=info.layout)
        source = f"{len(test_ds)} {info.name} test images"
    else:  # shapes only: rates are assumed (or irrelevant, for the ANN)
        batches = [
            (torch.randn(1, cfg.in_chans, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(0)),)
        ]
        source = "assumed rate" if spiking else "no data needed (ANN: every operation is a MAC)"
    monitor = measure_rates(model, batches, device)
    report = estimate_energy(
        model,
        monitor,
        e_mac_pj=args.e_mac,
        e_ac_pj=args.e_ac,
        first_conv_times_t=not args.first_conv_once,
        strict=not args.lenient,
        charge_kernel=args.charge_kernel,
        paper_literal=args.paper_literal,
        assume_rate=args.assume_rate,
    )
    out = report.to_dict()
    out.update(model=args.model or ckpt["train_config"].get("model"), rates_from=source, params=_params(model))
    costs = MemoryCosts.from_overrides(args.mem_cost)
    settings = dict(first_conv_times_t=not args.first_conv_once, strict=not args.lenient)
    memory = memory_aware_energy(model, monitor, costs, assume_rate=args.assume_rate, **settings)
    even = break_even(model, monitor, costs, memory if args.assume_rate is None else None, **settings)
    out.update(memory_aware_mj=memory.mj, memory_aware=memory.to_dict(), break_even_rate=even.pop("break_even_rate"),
               break_even=even)  # fmt: skip
    if args.json:
        print(json.dumps(out))
        return 0
    _print_table(out)
    return 0


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _print_table(r: dict) -> None:
    s, mem = r["settings"], r["memory_aware"]
    print(f"{r['model']} · {r['settings']['attention']} · T = {r['timesteps']} · rates: {r['rates_from']}")
    print(f"Eq. 29: theoretical compute energy (45 nm), E_MAC = {r['e_mac_pj']} pJ, E_AC = {r['e_ac_pj']} pJ; first "
          f"conv charged {'T times' if s['first_conv_times_t'] else 'once'}. memory-aware: arithmetic + SRAM "
          f"accesses (Lemaire et al. 2022; docs/energy.md)")  # fmt: skip
    mem_uj = {x["layer"]: x["uj"] for x in mem["layers"]}
    eq29 = {x["layer"]: x for x in r["layers"]}
    rows = list(eq29) + [name for name in mem_uj if name not in eq29]  # Eq. 29's lines, then neurons and attention
    width = max(len(x) for x in rows)
    print(f"{'layer':<{width}}  kind  {'FLOPs/step':>14}  {'rate':>6}  {'ops':>14}  {'Eq.29 µJ':>9}  {'memory µJ':>10}")
    for name in rows:
        x, m = eq29.get(name), mem_uj.get(name)
        m_txt = f"{m:>10.3f}" if m is not None else f"{'–':>10}"
        if x is None:
            print(f"{name:<{width}}  {'':<4}  {'':>14}  {'':>6}  {'':>14}  {'–':>9}  {m_txt}")
            continue
        rate = f"{x['rate']:.3f}" if x["rate"] is not None else "–"
        print(f"{name:<{width}}  {x['kind']:<4}  {x['flops']:>14,.0f}  {rate:>6}  {x['ops']:>14,.0f}  "
              f"{x['energy_uj']:>9.3f}  {m_txt}")  # fmt: skip
    print(f"Eq. 29 total: {r['mac_ops']:,.0f} MAC + {r['ac_ops']:,.0f} AC = {r['energy_mj']:.4f} mJ per image")
    parts = ", ".join(f"{k} {v:.4f}" for k, v in mem["parts_mj"].items() if v)
    print(f"memory-aware total: {r['memory_aware_mj']:.4f} mJ per image ({parts})")
    even = r["break_even"]
    if r["break_even_rate"] is not None:
        line = (f"break-even spike rate vs the same model as a {even['qnn_activation_bits']}-bit ANN "
                f"({even['qnn_mj']:.4f} mJ): {r['break_even_rate']:.4f}")  # fmt: skip
        if "reason" in even:
            line += f" ({even['reason']})"
        if "effective_rate" in even:
            side = "below" if even["effective_rate"] < r["break_even_rate"] else "above"
            line += (f"; this model's rates amount to a uniform {even['effective_rate']:.4f} ({side} it; mean input "
                     f"spike rate {even['mean_spike_rate']:.4f})")  # fmt: skip
        print(line)
    elif "reason" in even:
        print(f"break-even spike rate: none ({even['reason']})")
    if "stdp_linear_form" in r:
        lf = r["stdp_linear_form"]
        print(f"STDP exact linear form, its own operations: {lf['attention_mac_ops']:,.0f} MAC + "
              f"{lf['attention_ac_ops']:,.0f} AC in attention → {lf['energy_mj']:.4f} mJ per image")  # fmt: skip
