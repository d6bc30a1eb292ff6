"""Model configurations: `config/models/<name>.yaml` read into typed objects.

A model file names its family, the data it trains on (dataset, realism), the task, the paper's
number for it on real ShapeNet, and one block per scale ("paper": the published set-up; "small":
what trains on a laptop CPU inside the embedded default). See config/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

FAMILIES = ("corenet", "r2n2")
SCALES = ("paper", "small")


class ModelConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TrainConfig:
    """batch_size: per process (per GPU); steps: optimizer steps in total; schedule: "constant"
    or "cosine" (decay to 5% over the run, after `warmup_steps` of linear warm-up);
    checkpoint_every/log_every: in steps; object_weight: cross-entropy weight of object voxels
    relative to void (semantic task); loader_workers: DataLoader worker processes per rank."""

    batch_size: int = 4
    lr: float = 4e-4
    adam_eps: float = 1e-4
    steps: int = 1000
    schedule: str = "constant"
    warmup_steps: int = 0
    lr_steps: dict = field(default_factory=dict)  # {step: lr} for a "steps" schedule
    checkpoint_every: int = 1000
    log_every: int = 10
    object_weight: float = 1.0
    loader_workers: int = 0
    max_views: int = 5


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    task: str
    dataset: str
    realism: str
    scale: str
    resolution: int  # native
    eval_resolution: int  # ground truth the model is scored against
    input_size: int
    network: dict  # family-specific network parameters
    train: TrainConfig
    paper_mean_iou: float | None
    paper_source: str
    eval: dict

    @property
    def gt_resolution(self) -> int:
        """Ground-truth grids training reads (y1 trains on sub-grids of the fine grid)."""
        return self.eval_resolution

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def model_config_path(name: str, root: str | Path = "config/models") -> Path:
    return Path(root) / f"{name}.yaml"


def load_model_spec(path: str | Path, scale: str) -> ModelSpec:
    path = Path(path)
    if not path.is_file():
        raise ModelConfigError(f"{path}: no such model config")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ModelConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ModelConfigError(f"{path}: expected a mapping at the top level")
    return spec_from_dict(raw, scale, str(path))


def spec_from_dict(raw: dict, scale: str, where: str = "model config") -> ModelSpec:
    def need(mapping, key, ctx):
        if key not in mapping:
            raise ModelConfigError(f"{where}: missing key {ctx}{key}")
        return mapping[key]

    family = need(raw, "family", "")
    if family not in FAMILIES:
        raise ModelConfigError(f"{where}: family must be one of {FAMILIES}, got {family!r}")
    if scale not in SCALES:
        raise ModelConfigError(f"{where}: scale must be one of {SCALES}, got {scale!r}")
    block = need(need(raw, "scale", ""), scale, "scale.")
    train = dict(block.get("train", {}))
    try:
        train_config = TrainConfig(**train)
    except TypeError as err:
        raise ModelConfigError(f"{where}: scale.{scale}.train: {err}") from None
    if train_config.schedule not in ("constant", "cosine", "steps"):
        raise ModelConfigError(f"{where}: schedule must be constant, cosine or steps")
    resolution = int(need(block, "resolution", f"scale.{scale}."))
    eval_resolution = int(block.get("eval_resolution", resolution))
    if eval_resolution % resolution:
        raise ModelConfigError(f"{where}: eval_resolution {eval_resolution} is not a multiple of {resolution}")
    paper = raw.get("paper") or {}
    return ModelSpec(
        name=need(raw, "name", ""),
        family=family,
        task=raw.get("task", "fg_bg"),
        dataset=raw.get("dataset", "single"),
        realism=raw.get("realism", "low"),
        scale=scale,
        resolution=resolution,
        eval_resolution=eval_resolution,
        input_size=int(block.get("input_size", 128)),
        network=dict(block.get("network", {})),
        train=train_config,
        paper_mean_iou=paper.get("mean_iou"),
        paper_source=paper.get("source", ""),
        eval=dict(raw.get("eval", {})),
    )


def spec_from_saved(data: dict) -> ModelSpec:
    """Rebuild a ModelSpec from `ModelSpec.to_dict()` (as stored in checkpoints)."""
    data = dict(data)
    data["train"] = TrainConfig(**data["train"])
    return ModelSpec(**data)
