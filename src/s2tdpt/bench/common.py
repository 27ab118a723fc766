"""Helpers shared by the benchmark scripts: machine description, medians, isolated worker processes."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

# the glibc setting the CLI starts with (keeps freed memory in the heap; see BENCHMARKS.md)
from ..cli.launch import TUNED_MALLOC


def machine(tuned_malloc: bool | None = None) -> str:
    """One line describing this machine; ``tuned_malloc`` None reads the allocator setting of this process."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if tuned_malloc is None:
        tuned_malloc = os.environ.get("GLIBC_TUNABLES") == TUNED_MALLOC
    malloc = "tuned glibc malloc" if tuned_malloc else "default glibc malloc"
    from ..engine.hardware import cpu_kind

    return (
        f"{cpu} ({cpu_kind()}), {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"python {platform.python_version()}, {malloc}"
    )


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, else a usage error that says so."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def peak_rss_mb() -> float:
    """Peak resident memory of this process image in MB.

    Reads VmHWM from /proc (per address space). ``ru_maxrss`` is not used on Linux because it survives
    fork + exec: a worker would report its launcher's size when that was larger.
    """
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_median(fn: Callable[[], object], reps: int, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def run_worker(argv: list[str], tuned_malloc: bool, timeout: float = 900, tunables: str | None = None) -> dict:
    """Run ``python <argv>`` in a fresh process; it must print one JSON object on its last stdout line.

    The process gets the CLI's allocator setting (``tuned_malloc``), glibc's default, or ``tunables`` if given.
    """
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if tunables or tuned_malloc:
        env["GLIBC_TUNABLES"] = tunables or TUNED_MALLOC
    res = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=timeout)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


class TrainingStep:
    """A seeded model with random images and labels of its input size and AdamW: the benchmarks' training step.

    ``loss()`` is the forward (under bf16 autocast unless ``amp=False``), ``step()`` a whole step (forward,
    backward, optimiser); scripts that time the phases separately call ``loss()``, ``backward`` and
    ``optimizer.step()`` themselves.
    """

    def __init__(self, model_name: str, batch: int, lif_backend: str = "compiled", amp: bool | None = None) -> None:
        """``amp`` None: bf16 autocast where the CPU computes bf16 natively (as ``--amp auto``), else fp32."""
        import torch

        from s2tdpt import create_model

        from ..engine.hardware import native_bf16_cpu

        amp = native_bf16_cpu() if amp is None else amp
        torch.manual_seed(0)
        self.model = create_model(model_name, lif_backend=lif_backend)
        cfg = self.model.config
        self.images = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size)
        self.labels = torch.randint(0, cfg.num_classes, (batch,))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.amp = amp

    def loss(self):
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            return torch.nn.functional.cross_entropy(self.model(self.images).float(), self.labels)

    def step(self) -> None:
        loss = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
