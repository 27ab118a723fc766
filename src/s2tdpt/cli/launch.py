"""Process start-up for the ``s2tdpt`` command: glibc allocator settings, then the CLI.

With glibc's default allocator every large tensor PyTorch frees is returned to the kernel and the next one
page-faults in again; on a small CPU that costs about as much as the arithmetic (BENCHMARKS.md: 1.3–3× on the
training and inference steps). ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=…`` keeps
freed memory in the process. glibc reads it only at start-up (setting the same values later with ``mallopt``
was measured to fragment more: 4.6 vs 3.9 GiB peak), so the command re-executes itself once with it set.

Skipped when not on Linux/glibc, when ``GLIBC_TUNABLES`` is already set, or with ``S2TDPT_MALLOC=default``.
The price: a process keeps its peak memory until it exits — fine for a training or evaluation run.
"""

from __future__ import annotations

import os
import platform
import sys

TUNED_MALLOC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def wants_tuned_malloc(environ=os.environ) -> bool:
    if environ.get("S2TDPT_MALLOC", "tuned") == "default" or "GLIBC_TUNABLES" in environ:
        return False
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def only_help(argv: list[str]) -> bool:
    """A command line that only prints help or the version: no work for a tuned allocator to speed up."""
    return not argv or any(a in ("-h", "--help", "--version") for a in argv)


def run() -> None:
    """Console-script entry: re-exec with the allocator setting if wanted, then run the CLI."""
    if wants_tuned_malloc() and not only_help(sys.argv[1:]):
        env = dict(os.environ, GLIBC_TUNABLES=TUNED_MALLOC)
        try:
            os.execve(sys.executable, [sys.executable, "-m", "s2tdpt", *sys.argv[1:]], env)
        except OSError:
            pass  # cannot re-exec (unusual sandbox): run with the default allocator
    from . import main

    sys.exit(main())
