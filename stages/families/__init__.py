"""The registry of model families: a family name (the `family:` of a model file) -> the one
object implementing `stages.families.base.Family` for it.

Adding a family: write `stages/families/<family>/` (its Family subclass in `__init__.py`, the
rest in modules it imports when needed), its `config/models/*.yaml` and its network modules
under `stages/models/`, and add it to `_FAMILIES` below. Nothing else in the project names
families (tests/test_architecture.py checks that).
"""

from __future__ import annotations

import argparse
from typing import Mapping, Sequence

from ..model_spec import ModelConfigError
from .base import DataLayout, EvalOptions, Family, OutputFile, Prediction  # noqa: F401
from .corenet import CORENET
from .ioar import IOAR
from .r2n2 import R2N2
from .umr import UMR

_FAMILIES: dict[str, Family] = {f.name: f for f in (CORENET, R2N2, UMR, IOAR)}


def families() -> tuple[Family, ...]:
    """Every registered family, in registration order."""
    return tuple(_FAMILIES.values())


def family_named(name: object, where: str = "model config") -> Family:
    """The family called `name`; ModelConfigError naming `where` for an unknown name."""
    family = _FAMILIES.get(name) if isinstance(name, str) else None
    if family is None:
        raise ModelConfigError(f"{where}: family must be one of {', '.join(_FAMILIES)}, got {name!r}")
    return family


def option(role: str) -> str:
    """The command-line option of an input role: `train_scenes` -> `--train-scenes`."""
    return "--" + role.replace("_", "-")


def input_arguments(parser: argparse.ArgumentParser, family: Family, roles: Sequence[str]) -> None:
    """Add one required `--<role> PATH...` option per input role of `family`."""
    group = parser.add_argument_group(f"{family.title} data")
    for role in roles:
        group.add_argument(option(role), dest=role, nargs="+", required=True, metavar="PATH")


def inputs_from_args(args: argparse.Namespace, roles: Sequence[str]) -> dict[str, list[str]]:
    """The input files by role, as parsed by `input_arguments`."""
    return {role: list(getattr(args, role)) for role in roles}


def input_options(inputs: Mapping[str, object]) -> str:
    """Shell text `--<role> PATH ...` of input files by role (paths quoted), for the rules."""
    import shlex

    parts = []
    for role, paths in inputs.items():
        paths = [paths] if isinstance(paths, str) else list(paths)
        parts.append(" ".join([option(role), *map(shlex.quote, map(str, paths))]))
    return " ".join(parts)
