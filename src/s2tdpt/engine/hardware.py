"""What the CPU at hand computes natively, read once from ``/proc/cpuinfo``; the ``auto`` settings follow it.

Three kinds matter for this model's speed (BENCHMARKS.md): CPUs with AMX (bf16 matrix tiles: bf16 products ~2.5×
faster than AVX-512's), CPUs with AVX-512 (and AVX512-BF16: bf16 products natively), and CPUs with AVX2 only
(bf16 emulated: ~170× slower than float32 products, so float32 is the only sensible precision).
"""

from __future__ import annotations

import functools

KINDS = ("amx", "avx512_bf16", "avx512", "avx2", "other")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU (empty where ``/proc/cpuinfo`` is not readable, e.g. not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def cpu_kind(flags: frozenset[str] | None = None) -> str:
    """One of :data:`KINDS`, the most capable the flags show."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "other"


def native_bf16_cpu(flags: frozenset[str] | None = None) -> bool:
    """bf16 matrix products run natively (faster than float32) on this CPU."""
    return cpu_kind(flags) in ("amx", "avx512_bf16")
