"""One registry for every token mixer ("attention"); all share one constructor and one tensor contract.

Contract: ``mixer = create_attention(name, dim, num_heads, neuron=factory, grid=(H', W'), **options)`` and
``mixer(u)`` maps the block's real-valued membrane stream ``[T, B, N, D]`` to the sub-block output ``[T, B, N, D]``
that is added back as a membrane-potential residual. The encoder block never asks which mechanism it holds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ..plugins import import_all
from ..snn.registry import NeuronFactory

_ATTENTIONS: dict[str, type[nn.Module]] = {}


def register_attention(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _ATTENTIONS:
            raise ValueError(f"attention {name!r} is already registered")
        _ATTENTIONS[name] = cls
        cls.attention_name = name
        return cls

    return deco


def list_attentions() -> list[str]:
    """Names accepted by ``create_attention`` and ``create_model(..., attention=NAME)``."""
    _load_builtins()
    return sorted(_ATTENTIONS)


def attention_options(name: str) -> list[str]:
    """The keyword options a mechanism accepts beyond ``dim``, ``num_heads``, ``neuron`` and ``grid``: the named
    parameters of its ``__init__`` and of every base class it passes ``**kwargs`` on to."""
    options: list[str] = []
    for klass in get_attention_class(name).__mro__:
        if "__init__" not in vars(klass) or klass is nn.Module:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        options += [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break  # this constructor does not forward options further up
    skip = {"self", "dim", "num_heads", "neuron", "grid"}
    return list(dict.fromkeys(o for o in options if o not in skip))


def get_attention_class(name: str) -> type[nn.Module]:
    _load_builtins()
    if name not in _ATTENTIONS:
        raise ValueError(f"unknown attention {name!r}; available: {', '.join(sorted(_ATTENTIONS))}")
    return _ATTENTIONS[name]


def create_attention(
    name: str, dim: int, num_heads: int, *, neuron: NeuronFactory, grid: tuple[int, int], **options
) -> nn.Module:
    """Build a registered token mixer for a ``grid`` of tokens (N = H'·W'); unknown names or options raise
    ``ValueError`` listing the valid ones."""
    cls = get_attention_class(name)
    valid = attention_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"attention {name!r} does not accept option(s) {unknown}; valid options: {valid}")
    if dim % num_heads:
        raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
    return cls(dim, num_heads, neuron=neuron, grid=grid, **options)


def _load_builtins() -> None:
    # Importing every module of this package runs the @register_attention decorators: a new mechanism is one file.
    import_all(__package__)
