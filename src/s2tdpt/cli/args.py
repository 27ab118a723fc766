"""Turn the fields of a config dataclass into argparse flags (help text from the field metadata)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

import yaml


def _optional(parse):
    """``none`` / ``null`` (and ``off`` for numbers, e.g. ``--clip-grad off``) → None, else ``parse(text)``."""
    from ..engine.config import NULL_WORDS  # here, not at the top: the engine imports PyTorch (see cli/__init__)

    nulls = NULL_WORDS if parse is str else (*NULL_WORDS, "off")

    def convert(text: str):
        return None if text.lower() in nulls else parse(text)

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _mapping(text: str) -> dict:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{num_heads: 8}}', got {text!r}")
    return value


def _floats_or_preset(text: str):
    return text  # parsed after collection: a preset name or numbers (nargs="+")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> list[str]:
    """Add ``--field-name`` for every field; defaults are SUPPRESSed so only given flags reach the namespace."""
    from ..engine.config import split_optional  # here, not at the top: the engine imports PyTorch

    hints = typing.get_type_hints(cls)
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp, optional = split_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "")
        if default not in (None, {}, []) and "default" not in help_text:  # the help may explain the default itself
            help_text += f" (default: {default})"
        kw: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif tp is dict or typing.get_origin(tp) is dict:
            parser.add_argument(flag, type=_mapping, metavar="MAPPING", **kw)
        elif tp is list or typing.get_origin(tp) is list:
            parser.add_argument(flag, nargs="+", metavar="X", **kw)
        else:
            parse = {int: int, float: float, str: str}[tp]
            parser.add_argument(flag, type=_optional(parse) if optional else parse, metavar=tp.__name__.upper(), **kw)
        names.append(flag)
    return names


def normalise_lists(values: dict[str, Any]) -> dict[str, Any]:
    """``--mean 0.5 0.5 0.5`` → floats; ``--mean cifar10`` → the preset name (resolved by the config)."""
    from ..engine.config import NULL_WORDS  # here, not at the top: the engine imports PyTorch

    out = dict(values)
    for key in ("mean", "std"):
        if key in out and isinstance(out[key], list):
            items = out[key]
            if len(items) == 1 and not _is_number(items[0]):
                out[key] = None if items[0].lower() in NULL_WORDS else items[0]
            else:
                try:
                    out[key] = [float(x) for x in items]
                except ValueError as e:
                    raise ValueError(f"--{key} takes numbers or one preset name, got {items}") from e
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class StrictParser(argparse.ArgumentParser):
    """argparse without prefix matching whose 'unrecognized arguments' error lists the valid options."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):  # noqa: D102
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            parser = self  # report against the chosen subcommand, whose options the user meant
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction) and getattr(ns, action.dest, None):
                    parser = action.choices[getattr(ns, action.dest)]
            valid = sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))
            parser.error(f"unknown option(s) {' '.join(extra)}; valid options: {', '.join(valid)}")
        return ns
