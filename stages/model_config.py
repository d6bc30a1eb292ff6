"""Model configurations: `config/models/<name>.yaml` read, once, into typed objects.

A model file names its family, the data it trains on (dataset, realism), the task, the paper's
numbers for it, the family's evaluation settings, and one block per scale ("paper": the
published set-up; "small": what trains on a laptop CPU inside the embedded default). Every
section is a dataclass: the common ones here, the family's own (network, training extras,
evaluation, paper numbers) declared by the family (`stages.families`). Every key is checked
against those dataclasses: an unknown key, a missing one or a value of the wrong type raises
`ModelConfigError` naming the file and the key. See config/README.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from .families import family_named
from .model_spec import (  # noqa: F401  (re-exported: the names a model file is read into)
    SCALES,
    ModelConfigError,
    ModelSpec,
    TrainConfig,
    _typed,  # noqa: F401
    parse_section,
)

# Model files ----------------------------------------------------------------------------------

TOP_KEYS = ("name", "family", "task", "dataset", "realism", "paper", "eval", "scale")
SCALE_KEYS = ("resolution", "eval_resolution", "input_size", "network", "train")


def model_config_path(name: str, root: str | Path = "config/models") -> Path:
    return Path(root) / f"{name}.yaml"


def read_model_file(path: str | Path) -> dict:
    """The YAML mapping of a model file; ModelConfigError for a missing or unparsable file."""
    path = Path(path)
    if not path.is_file():
        raise ModelConfigError(f"{path}: no such model config")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ModelConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(raw, dict):
        raise ModelConfigError(f"{path}: expected a mapping at the top level")
    return raw


def load_model_spec(path: str | Path, scale: str) -> ModelSpec:
    """The model of file `path` at `scale` ("paper" or "small"), fully checked."""
    return spec_from_dict(read_model_file(path), scale, str(path))


def spec_from_dict(raw: dict, scale: str, where: str = "model config") -> ModelSpec:
    """A ModelSpec from a model file's mapping (see the module docstring for the checks)."""
    for key in raw:
        if key not in TOP_KEYS:
            raise ModelConfigError(f"{where}: unknown key {key} (known keys there: {', '.join(TOP_KEYS)})")
    for key in ("name", "family", "scale"):
        if key not in raw:
            raise ModelConfigError(f"{where}: missing key {key}")
    family = family_named(raw["family"], where)
    if scale not in SCALES:
        raise ModelConfigError(f"{where}: scale must be one of {SCALES}, got {scale!r}")
    scales = raw["scale"]
    if not isinstance(scales, dict):
        raise ModelConfigError(f"{where}: scale must be a mapping of {', '.join(SCALES)}")
    for name in scales:
        if name not in SCALES:
            raise ModelConfigError(f"{where}: unknown key scale.{name} (known keys there: {', '.join(SCALES)})")
    if scale not in scales:
        raise ModelConfigError(f"{where}: missing key scale.{scale}")
    block = scales[scale] or {}
    ctx = f"scale.{scale}"
    for key in block:
        if key not in SCALE_KEYS:
            raise ModelConfigError(f"{where}: unknown key {ctx}.{key} (known keys there: {', '.join(SCALE_KEYS)})")
    train_raw = dict(block.get("train") or {})
    common = {f.name for f in dataclasses.fields(TrainConfig)}
    own = {f.name for f in dataclasses.fields(family.train_options)}
    for key in train_raw:
        if key not in common | own:
            known = ", ".join([f.name for f in dataclasses.fields(TrainConfig)] + sorted(own))
            raise ModelConfigError(f"{where}: unknown key {ctx}.train.{key} (known keys there: {known})")
    train = parse_section(TrainConfig, {k: v for k, v in train_raw.items() if k in common}, where, f"{ctx}.train")
    options = parse_section(family.train_options, {k: v for k, v in train_raw.items() if k not in common},
                            where, f"{ctx}.train")
    resolution = _typed(int | None, block.get("resolution"), where, f"{ctx}.resolution")
    eval_resolution = _typed(int | None, block.get("eval_resolution", resolution), where, f"{ctx}.eval_resolution")
    if resolution is not None and eval_resolution is not None and eval_resolution % resolution:
        raise ModelConfigError(f"{where}: {ctx}.eval_resolution {eval_resolution} is not a multiple of {resolution}")
    spec = ModelSpec(
        name=_typed(str, raw["name"], where, "name"),
        family=family.name,
        task=_typed(str, raw.get("task", family.default_task), where, "task"),
        dataset=_typed(str, raw.get("dataset", family.default_dataset), where, "dataset"),
        realism=_typed(str, raw.get("realism", "low"), where, "realism"),
        scale=scale,
        resolution=resolution,
        eval_resolution=eval_resolution,
        input_size=_typed(int, block.get("input_size", 128), where, f"{ctx}.input_size"),
        network=parse_section(family.network, block.get("network"), where, f"{ctx}.network"),
        train=train,
        train_options=options,
        eval=parse_section(family.evaluation, raw.get("eval"), where, "eval"),
        paper=parse_section(family.paper, raw.get("paper"), where, "paper"),
    )
    try:
        family.check_spec(spec)
    except ValueError as err:
        raise ModelConfigError(f"{where}: {err}") from None
    return spec


def spec_from_saved(data: dict, where: str = "checkpoint") -> ModelSpec:
    """Rebuild a ModelSpec from `ModelSpec.to_dict()` (as stored in checkpoints)."""
    if not isinstance(data, dict) or "family" not in data:
        raise ModelConfigError(f"{where}: the stored model spec is not a mapping with a family")
    family = family_named(data["family"], where)
    sections = {
        "network": family.network,
        "train": TrainConfig,
        "train_options": family.train_options,
        "eval": family.evaluation,
        "paper": family.paper,
    }
    missing = [f.name for f in dataclasses.fields(ModelSpec) if f.name not in data]
    if missing:
        raise ModelConfigError(f"{where}: the stored model spec lacks {', '.join(missing)} (written by an older version?)")
    values = {k: (parse_section(sections[k], v, where, k) if k in sections else v) for k, v in data.items()
              if k in {f.name for f in dataclasses.fields(ModelSpec)}}
    return ModelSpec(**values)
