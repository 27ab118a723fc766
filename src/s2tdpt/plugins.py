"""Loading the members of a registry: every module of a package, imported once, so that a new member is one file."""

from __future__ import annotations

import importlib
import pkgutil

_done: set[str] = set()


def import_all(package: str) -> None:
    """Import every module of ``package`` (running their ``@register_*`` decorators), once per process."""
    if package in _done:
        return
    _done.add(package)
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")
