"""S²TDPT: the Spiking STDP Transformer (Mondal & Kumar, arXiv 2511.14691) with exact linear-time STDP attention.

Top-level names are imported lazily, so ``s2tdpt --help`` and the command's start-up do not pay for PyTorch twice.
The named models join timm's registry when timm is imported, before or after this package
(``timm.create_model("s2tdpt_4_384")``; :mod:`s2tdpt.models.timm_models`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_EXPORTS = {
    "S2TDPT": "s2tdpt.models",
    "S2TDPTConfig": "s2tdpt.models",
    "create_model": "s2tdpt.models",
    "list_models": "s2tdpt.models",
    "create_attention": "s2tdpt.attention",
    "list_attentions": "s2tdpt.attention",
    "stdp_attention": "s2tdpt.attention",
    "stdp_attention_dense": "s2tdpt.attention",
    "load_pretrained": "s2tdpt.engine.pretrained",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 's2tdpt' has no attribute {name!r}")


def _register_with_timm() -> None:
    # runs while `import timm` completes: a failure here must not break timm (or training, which imports it)
    try:
        from .models import timm_models

        timm_models.register()
    except Exception as e:  # noqa: BLE001 - any failure is reported, none propagates into timm's import
        import warnings

        warnings.warn(f"s2tdpt could not register its models with timm: {type(e).__name__}: {e}", stacklevel=2)


class _AfterTimmImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on each lookup of ``timm`` it asks the other finders and wraps the loader so that the
    models register once timm has loaded. It stays installed until then: a mere ``find_spec("timm")`` probe (some
    libraries run one) loads nothing and must not use it up."""

    _looking = False

    def find_spec(self, name, path, target=None):
        if name != "timm" or self._looking:
            return None
        self._looking = True  # the lookup below passes through sys.meta_path again
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            self._looking = False
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module) -> None:
            load(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register_with_timm()

        spec.loader.exec_module = exec_module  # on this spec's loader object only
        return spec


if "timm" in sys.modules:
    _register_with_timm()
elif not any(isinstance(f, _AfterTimmImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterTimmImport())
