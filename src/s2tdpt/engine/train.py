"""Training: ``train → train_one_epoch → evaluate``, the same code under ``python`` and ``torchrun``."""

from __future__ import annotations

import itertools
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import __version__
from ..data.frames import mix_frames
from ..data.loaders import DataBundle, build_loaders
from ..models import S2TDPT, S2TDPTConfig, resolve_config
from ..models.factory import with_synapse
from .checkpoint import FORMAT, load_initial_weights, rng_state, set_rng_state
from .config import TrainConfig
from .distributed import DistContext, all_reduce_sum, broadcast_buffers, cleanup, init_distributed
from .evaluate import autocast, evaluate, resolve_amp
from .fast import compile_training
from .run import RunDir, TrainingInterrupted, continue_hint, divergence_advice, run_folder, setup_logging


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without overwriting its last good checkpoint."""


@dataclass
class TrainResult:
    final_test_top1: float
    best_test_top1: float
    best_epoch: int
    epochs: int
    params: int
    run_dir: Path
    model: S2TDPT
    summary: dict[str, Any]
    is_main: bool = True  # rank 0 (or a single process)


def seed_everything(*key: int) -> None:
    """Seed python, numpy and torch from a tuple such as (seed, epoch, rank): reproducible, independent streams."""
    s = int(np.random.SeedSequence(list(key)).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def resolve_lif_backend(name: str, device: torch.device, neuron: str = "lif") -> str:
    """``auto``: the neuron's own choice (``Neuron.auto_backend``: ``compiled`` unless a hand-written pair was measured
    faster), falling back to ``fused`` where ``torch.compile`` does not work; any other name as given."""
    if name != "auto":
        return name
    from ..snn import compiled
    from ..snn.registry import neuron_auto_backend

    preferred = neuron_auto_backend(neuron)
    return "fused" if preferred == "compiled" and not compiled.available(device.type) else preferred


def _flag_overrides(cfg: TrainConfig) -> dict[str, Any]:
    """The model fields set by their own flags (``--attention``, ``--neuron``, ``--neuron-kwargs``), which win over
    the same keys in ``model_kwargs``."""
    return {key: getattr(cfg, key) for key in ("attention", "neuron", "neuron_kwargs") if getattr(cfg, key)}


def configured_neuron(cfg: TrainConfig) -> str:
    """The neuron the run's model will have: ``--neuron``, else ``model_kwargs``' neuron, else the named model's."""
    return {**cfg.model_kwargs, **_flag_overrides(cfg)}.get("neuron") or resolve_config(cfg.model).neuron


#: CPU kinds (:func:`~s2tdpt.engine.hardware.cpu_kind`) on which whole-model compile of the training step was
#: measured faster than the eager fast path (BENCHMARKS.md): AVX512-BF16 (2.61–2.78 vs 2.85–2.91 s per step of
#: s2tdpt_4_384, bf16). Slower on AMX (2.93–3.02 vs 2.79 s, issue 20's measurement) and on AVX2 only (float32:
#: 16.6 vs 10.2 s); not measured on AVX-512 without BF16, so off there, and on CUDA and under DDP.
COMPILE_FASTER_ON = ("avx512_bf16",)


def resolve_compile(
    mode: str, lif_backend: str, device: torch.device, world_size: int = 1, kind: str | None = None,
    amp: str = "bf16",
) -> str:  # fmt: skip
    """``auto`` compiles where it was measured to help: one process with the compiled LIF and bf16 autocast (the
    precision of that measurement) on a CPU of a kind in :data:`COMPILE_FASTER_ON` (``kind``: this CPU's)."""
    from ..snn import compiled
    from .hardware import cpu_kind

    if mode == "off":
        return "off"
    if mode == "on":
        compiled.require(device.type, "--compile on")
        return "on"
    kind = cpu_kind() if kind is None else kind
    wanted = (
        device.type == "cpu" and kind in COMPILE_FASTER_ON and amp == "bf16" and lif_backend == "compiled"
        and world_size == 1
    )  # fmt: skip
    return "on" if wanted and compiled.available(device.type) else "off"


def model_config_for(cfg: TrainConfig, data: DataBundle) -> S2TDPTConfig:
    """The named model with the dataset's classes / channels / size and the config's overrides."""
    overrides = dict(cfg.model_kwargs)
    derived = dict(num_classes=data.info.num_classes, in_chans=data.info.in_chans, img_size=data.img_size)
    if data.info.timesteps:  # event frames: one model step per frame
        derived["timesteps"] = data.info.timesteps
    for key, value in derived.items():
        if key in overrides and overrides[key] != value:
            raise ValueError(f"model_kwargs sets {key}={overrides[key]} but dataset {data.info.name} needs {value}")
        overrides[key] = value
    overrides.update(_flag_overrides(cfg))
    if cfg.timesteps:
        overrides["timesteps"] = cfg.timesteps
    overrides["lif_backend"] = cfg.lif_backend
    model_cfg = resolve_config(cfg.model, **overrides)
    if cfg.synapse is not None:
        model_cfg = with_synapse(model_cfg, cfg.synapse)
    return model_cfg


def train(
    cfg: TrainConfig, resume: str | Path | None = None, timer: Callable[[], float] = time.perf_counter
) -> TrainResult:
    """Train (or, with ``resume=RUN_DIR``, continue) a run; returns its summary and the trained model.

    ``timer`` (seconds, any origin) measures the training time: ``train_seconds`` and the ``time_budget``. Tests
    pass a simulated clock so that a budget run stops at the same step on any machine.
    """
    ctx = init_distributed(cfg.device)
    run_path = run_folder(cfg, resume)
    try:
        return _train(cfg.replace(out=str(run_path)), resume, ctx, timer)
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"interrupted; {continue_hint(run_path)}") from None
    finally:
        cleanup(ctx)


def _train(
    cfg: TrainConfig, resume: str | Path | None, ctx: DistContext, timer: Callable[[], float] = time.perf_counter
) -> TrainResult:
    device = ctx.device
    run_path = run_folder(cfg, resume)
    lif_backend = resolve_lif_backend(cfg.lif_backend, device, configured_neuron(cfg))
    amp = resolve_amp(cfg.amp, device)
    cfg = cfg.replace(
        out=str(run_path),
        amp=amp,
        lif_backend=lif_backend,
        compile=resolve_compile(cfg.compile, lif_backend, device, ctx.world_size, amp=amp),
    )
    ckpt = RunDir.prepare(run_path, bool(resume), ctx.is_main)  # checks only; None: a new run or no checkpoint yet
    if cfg.tensorboard:
        RunDir.check_tensorboard()

    # --- data, model, optimisation (the run folder is created once they were built without error)
    seed_everything(cfg.seed, 0)  # identical initialisation on every rank
    data = build_loaders(cfg, ctx.rank, ctx.world_size)
    cfg = cfg.replace(dataset_kwargs=data.dataset_kwargs)  # every dataset option, defaults included
    if data.mean is not None:  # record the normalisation actually used (frames have none)
        cfg = cfg.replace(mean=list(data.mean), std=list(data.std))
    model_cfg = model_config_for(cfg, data)
    model = S2TDPT(model_cfg).to(device)
    if cfg.init and not ckpt:  # a resumed run continues from its own checkpoint instead
        load_initial_weights(model, cfg.init)
    run = RunDir.start(run_path, cfg, model_cfg.to_dict(), ckpt, resume=bool(resume), is_main=ctx.is_main, timer=timer)
    if cfg.tensorboard:
        run.log_to_tensorboard(ckpt["epoch"] if ckpt else 0)
    log = setup_logging(run, ctx.is_main)
    params = sum(p.numel() for p in model.parameters())
    net = model
    if ctx.enabled:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile == "on":
        net = compile_training(net)  # training steps only; evaluation and checkpoints use `model` as it is
    optimizer = create_optimizer_v2(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(data.train_loader)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=(cfg.epochs - cfg.cooldown_epochs) * steps_per_epoch,
        lr_min=cfg.min_lr,
        warmup_t=round(cfg.warmup_epochs * steps_per_epoch),
        warmup_lr_init=cfg.warmup_lr,
        t_in_epochs=False,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    mixup = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            label_smoothing=cfg.smoothing,
            num_classes=model_cfg.num_classes,
        )
    if mixup:
        criterion: nn.Module = SoftTargetCrossEntropy()
    elif cfg.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(cfg.smoothing)
    else:
        criterion = nn.CrossEntropyLoss()

    # `epoch`, `best_epoch` count from 0 here (best_epoch also in checkpoints); metrics.csv, final.json, log: from 1
    start_epoch, best_top1, best_epoch, train_seconds = 0, -1.0, -1, 0.0
    if ckpt:
        # the scheduler's state is not restored: the schedule is a function of the step, rebuilt above from the
        # config, so a run resumed with more epochs (or a new --lr) follows the new schedule
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scaler"]:  # empty when the run had no fp16 scaler (an --amp change on resume)
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        start_epoch, best_top1, best_epoch = ckpt["epoch"], ckpt["best_top1"], ckpt["best_epoch"]
        train_seconds = ckpt.get("train_seconds", 0.0)
        epochs_done = ckpt.get("epochs_reached", float(start_epoch))
    if run.start_note:
        log.info(run.start_note)
    log.info(
        f"{model_cfg.attention} · {cfg.model} · {params:,} params · {data.info.name} "
        f"({len(data.train_loader.dataset)} train / {len(data.test_loader.dataset) * ctx.world_size} test) · "
        f"{device} × {ctx.world_size} · amp {cfg.amp} · {model_cfg.neuron} {cfg.lif_backend} · lr {cfg.lr:g}, warm-up "
        f"{cfg.warmup_epochs:g} epoch(s)"
        f"{' · compiled (the first step compiles)' if cfg.compile == 'on' else ''} · run folder {run_path}"
    )

    # --- epochs (with a time budget: until the budget is spent, the schedule following the elapsed time)
    planned = cfg.epochs * steps_per_epoch
    clock = BudgetClock(cfg.time_budget, planned, train_seconds, timer) if cfg.time_budget else None
    epochs = itertools.count(start_epoch) if clock else range(start_epoch, cfg.epochs)
    test, epochs_reached = None, (epochs_done if ckpt else 0.0)
    try:
        for epoch in epochs:
            if clock and clock.spent():
                break
            seed_everything(cfg.seed, 1, epoch, ctx.rank)  # data order, augmentation and mixup depend on (seed, epoch)
            data.train_sampler.set_epoch(epoch)
            if mixup and cfg.mixup_off_epoch is not None and epoch >= cfg.mixup_off_epoch:
                mixup.mixup_enabled = False
            t0 = timer()
            stats = train_one_epoch(
                net, data.train_loader, optimizer, scheduler, scaler, criterion, mixup, epoch, cfg, ctx, clock
            )
            train_s = timer() - t0
            train_seconds += train_s
            if clock:
                clock.used = train_seconds
            epochs_reached = epoch + stats["fraction"]
            broadcast_buffers(model, ctx)
            test = evaluate(model, data.test_loader, device, model_cfg.num_classes, cfg.amp, ctx)
            is_best = test.top1 > best_top1
            if is_best:
                best_top1, best_epoch = test.top1, epoch
            row = dict(
                epoch=epoch + 1,  # counted from 1, as in train.log
                lr=stats["lr"],
                train_loss=round(stats["loss"], 5),
                train_top1=round(stats["top1"], 3),
                test_loss=round(test.loss, 5),
                test_top1=round(test.top1, 3),
                test_top5=round(test.top5, 3),
                epoch_s=round(timer() - t0, 2),
                images_per_s=round(stats["images"] / train_s, 1),
                train_s=round(train_seconds, 1),
            )
            log.info(
                f"epoch {epoch + 1}{'' if clock else f'/{cfg.epochs}'}  lr {row['lr']:.2e}  "
                f"train loss {row['train_loss']:.4f} "
                f"top-1 {row['train_top1']:.2f}%  |  test top-1 {row['test_top1']:.2f}% top-5 {row['test_top5']:.2f}%  "
                f"|  {row['epoch_s']:.1f} s, {row['images_per_s']:.0f} img/s"
            )
            run.append_metrics(row)
            state = dict(
                format=FORMAT,
                version=__version__,
                model_config=model_cfg.to_dict(),
                train_config=cfg.to_dict(),
                dataset=dict(
                    name=data.info.name,
                    layout=data.info.layout,
                    class_names=list(data.info.class_names),
                    num_classes=data.info.num_classes,
                    img_size=data.img_size,
                    mean=data.mean and list(data.mean),
                    std=data.std and list(data.std),
                ),
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                epoch=epoch + 1,
                train_seconds=train_seconds,
                epochs_reached=epochs_reached,
                best_top1=best_top1,
                best_epoch=best_epoch,
                test_top1=test.top1,
                test_top5=test.top5,
                rng=rng_state(),
            )
            run.save_checkpoint(state, is_best)
    finally:  # curves.png is drawn at most every 30 s: show every epoch, also when the run stops early
        run.draw_curves()

    # a resumed run with nothing left to do reports what its checkpoint says
    final_top1 = test.top1 if test is not None else (ckpt or {}).get("test_top1", float("nan"))
    final_top5 = test.top5 if test is not None else (ckpt or {}).get("test_top5", float("nan"))
    summary = dict(
        final_test_top1=final_top1,
        final_test_top5=final_top5,
        best_test_top1=best_top1,
        best_epoch=best_epoch + 1,  # counted from 1, as in train.log and metrics.csv
        epochs=cfg.epochs if not clock else math.ceil(epochs_reached),
        epochs_reached=round(epochs_reached, 3),
        train_seconds=round(train_seconds, 1),
        time_budget=cfg.time_budget,
        params=params,
        model=cfg.model,
        attention=model_cfg.attention,
        dataset=data.info.name,
        world_size=ctx.world_size,
    )
    run.save_final(summary)
    return TrainResult(
        final_top1, best_top1, best_epoch + 1, summary["epochs"], params, run_path, model, summary, ctx.is_main
    )


class BudgetClock:
    """Training time against a budget; maps elapsed time to a position on a schedule of ``planned_steps``.

    ``timer`` is the clock the training loop reads (seconds, any origin): ``time.perf_counter``, or a simulated
    clock in tests.
    """

    def __init__(
        self,
        budget_s: float,
        planned_steps: int,
        used_s: float = 0.0,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.budget, self.planned, self.used, self.timer = budget_s, planned_steps, used_s, timer

    def spent(self, extra_s: float = 0.0) -> bool:
        return self.used + extra_s >= self.budget

    def step(self, extra_s: float) -> int:
        return min(int((self.used + extra_s) / self.budget * self.planned), self.planned)


def train_one_epoch(
    net: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler: CosineLRScheduler,
    scaler: torch.amp.GradScaler,
    criterion: nn.Module,
    mixup: Mixup | None,
    epoch: int,
    cfg: TrainConfig,
    ctx: DistContext,
    clock: BudgetClock | None = None,
) -> dict[str, float]:
    net.train()
    device = ctx.device
    steps = len(loader)
    totals = torch.zeros(3, dtype=torch.float64)  # loss·n, top-1 hits, n
    show = ctx.is_main and sys.stderr.isatty()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}" + ("" if clock else f"/{cfg.epochs}"), leave=False, disable=not show)
    start, done = clock.timer() if clock else 0.0, steps
    for i, (images, labels) in enumerate(bar):
        if clock:
            elapsed = clock.timer() - start
            stop = torch.tensor(float(clock.spent(elapsed)))  # ranks agree: the slowest rank's clock decides
            if all_reduce_sum(stop, ctx).item() > 0:
                done = i
                break
            scheduler.step_update(clock.step(elapsed))  # learning rate at this point of the budget
        else:
            scheduler.step_update(epoch * steps + i)  # learning rate of this step
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        targets = labels
        if mixup:  # frames [T, B, C, H, W] are mixed per sample, one box for all their steps
            images, targets = mix_frames(mixup, images, labels) if images.dim() == 5 else mixup(images, labels)
        with autocast(device, cfg.amp):
            logits = net(images)
        loss = criterion(logits.float(), targets)

        # every rank must take the same decision, so check the all-reduced loss
        loss_value = all_reduce_sum(loss.detach().reshape(1).clone(), ctx).item() / ctx.world_size
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"the training loss became {loss_value} at epoch {epoch + 1}, step {i + 1}; the run stopped. "
                + divergence_advice(Path(cfg.out), epoch, cfg.lr)
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)
        scaler.step(optimizer)
        scaler.update()

        n = labels.numel()
        totals += torch.tensor([loss_value * n, (logits.argmax(1) == labels).sum().item(), n], dtype=torch.float64)
        if show:
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    all_reduce_sum(totals, ctx)
    n = max(totals[2].item(), 1.0)
    return dict(
        loss=totals[0].item() / n,
        top1=100.0 * totals[1].item() / n,
        images=totals[2].item(),
        lr=optimizer.param_groups[0]["lr"],
        fraction=done / steps,
    )


logging.getLogger("s2tdpt").addHandler(logging.NullHandler())
