"""The typed model specification: the sections every family shares, and the typed reader that
turns YAML mappings into a family's section dataclasses (`parse_section`).

`stages.model_config` reads the files; a family (`stages.families`) declares its own sections as
dataclasses and gets them parsed by `parse_section`: an unknown key, a missing one or a value of
the wrong type raises `ModelConfigError` naming the file and the key.
"""


from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any


from .errors import StageError

SCALES = ("paper", "small")
SCHEDULES = ("constant", "cosine", "steps")
OPTIMIZERS = ("adam",)


class ModelConfigError(StageError):
    """A model configuration that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class TrainConfig:
    """The training settings every family shares (one `scale.<scale>.train` block; the keys a
    family adds there go to its own `train_options` section).

    batch_size: per process (per GPU); steps: optimizer steps in total; optimizer: "adam" with
    `lr`, `betas`, `adam_eps` and L2 `weight_decay` (torch.optim.Adam's); schedule: "constant",
    "cosine" (decay to 5 % over the run, after `warmup_steps` of linear warm-up) or "steps"
    (`lr_steps`: {step: lr}); checkpoint_every/log_every: in steps; loader_workers: DataLoader
    worker processes per rank.

    A fine-tuning phase at the end (IOAR's phase 2, lightningmodel.py:FineTuning): the last
    `finetune_share` of the steps (0 = none; `steps - round(steps * finetune_share)` is its first
    step, `finetune_start`, so that --steps keeps the proportion) run at the constant
    `finetune_lr` (0: the schedule's value goes on; a cosine one stays at its floor) with
    `finetune_batch_size` examples per process (0: `batch_size`; a change of batch size starts
    a new epoch at the switch). What else changes there is the family's
    (`TrainingTask.prepare_step`). The schedule of the steps before it ends at `finetune_start`."""

    batch_size: int = 4
    steps: int = 1000
    optimizer: str = "adam"
    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    lr_steps: dict[int, float] = field(default_factory=dict)
    checkpoint_every: int = 1000
    log_every: int = 10
    loader_workers: int = 0
    finetune_share: float = 0.0
    finetune_lr: float = 0.0
    finetune_batch_size: int = 0

    @property
    def finetune_start(self) -> int:
        """The first step of the fine-tuning phase (`steps` when there is none)."""
        return self.steps - round(self.steps * self.finetune_share) if self.finetune_share > 0 else self.steps

    def batch_size_at(self, step: int) -> int:
        """The batch size per process of step `step` (0-based)."""
        if step >= self.finetune_start and self.finetune_batch_size:
            return self.finetune_batch_size
        return self.batch_size

    def __post_init__(self):
        if not 0 <= self.finetune_share < 1:
            raise ValueError(f"finetune_share must be in [0, 1), got {self.finetune_share}")
        for key in ("finetune_lr", "finetune_batch_size"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0 (0: as before the phase), got {getattr(self, key)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for key in ("batch_size", "steps", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class Paper:
    """The paper's headline number for this model (a fraction) and where it is published."""

    mean_iou: float | None = None
    source: str = ""


@dataclass(frozen=True)
class NoOptions:
    """A section a family does not use: it takes no keys."""


@dataclass(frozen=True)
class ModelSpec:
    """One model at one scale. `network`, `train_options`, `eval` and `paper` are instances of
    the family's section dataclasses; `resolution` is the native output grid of a voxel model
    (None where a family has none) and `eval_resolution` the ground truth it is scored on."""

    name: str
    family: str
    task: str
    dataset: str
    realism: str
    scale: str
    resolution: int | None
    eval_resolution: int | None
    input_size: int
    network: Any
    train: TrainConfig
    train_options: Any
    eval: Any
    paper: Any

    @property
    def gt_resolution(self) -> int | None:
        """Ground-truth grids training reads (y1 trains on sub-grids of the fine grid)."""
        return self.eval_resolution

    @property
    def paper_mean_iou(self) -> float | None:
        return self.paper.mean_iou

    @property
    def paper_source(self) -> str:
        return self.paper.source

    def to_dict(self) -> dict:
        """Plain data (dicts, lists, numbers, strings) for checkpoints; `spec_from_saved` reverses it."""
        return dataclasses.asdict(self)


# Typed parsing --------------------------------------------------------------------------------


def parse_section(cls: type, raw: Any, where: str, key: str) -> Any:
    """`raw` (a YAML mapping) as an instance of dataclass `cls`; `key` is its dotted position in
    the file. Raises ModelConfigError naming `where` and the key for an unknown key, a missing
    required key, a wrong type or a value the dataclass refuses."""
    return _typed(cls, {} if raw is None else raw, where, key)


def _typed(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, where, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _typed(option, value, where, key)
            except ModelConfigError as err:
                errors.append(err)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise ModelConfigError(f"{where}: {key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ModelConfigError(f"{where}: {key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ModelConfigError(f"{where}: {key} must have {len(args)} entries, got {len(value)}")
        return tuple(_typed(a, v, where, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ModelConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        kt, vt = args or (Any, Any)
        return {_typed(kt, k, where, f"{key}.{k}"): _typed(vt, v, where, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ModelConfigError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)  # mapping keys written as strings ({"20000": 1e-5} in JSON)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelConfigError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelConfigError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ModelConfigError(f"{where}: {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"model_config cannot parse type {tp!r} (key {key})")


def _dataclass(cls: type, value: Any, where: str, key: str) -> Any:
    if dataclasses.is_dataclass(value) and isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ModelConfigError(f"{where}: {key or 'the file'} must be a mapping, got {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{key}." if key else ""
    for name in value:
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise ModelConfigError(f"{where}: unknown key {prefix}{name} (known keys there: {known})")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _typed(hints[name], value[name], where, prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ModelConfigError(f"{where}: missing key {prefix}{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ModelConfigError(f"{where}: {key or 'the file'}: {err}") from None
