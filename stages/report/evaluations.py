"""A model's evaluation and training outputs, read and checked into dataclasses.

The files (written by the eval and train stages; see stages.report.inputs for which are required):

    eval/{model}/summary.json            headline numbers and what was evaluated
    eval/{model}/voxel_metrics.csv       CoReNet: rows iou/precision/recall, columns __void__,
                                         classes..., __global__ (pandas to_csv, unnamed index)
    eval/{model}/baseline_metrics.csv    the same for the constant-shape baseline
    eval/{model}/iou_by_views.csv        3D-R2N2: views, threshold, class (or __mean__), iou
    eval/{model}/scenes.parquet          optional: per test scene IoU and voxel counts
    eval/{model}/qualitative/*.png       optional: `{index:02d}_{scene_id}.png` grids
    models/{model}/metrics.csv           training log: step, epoch, examples, loss, ...

A file that exists but breaks this contract raises ReportInputError naming file and problem.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from stages.report.inputs import FAMILIES, ReportInputError, check_evaluations, evaluation_files
from stages.report.references import paper_mean_iou

VOID = "__void__"
GLOBAL = "__global__"
MEAN = "__mean__"
METRIC_ROWS = ("iou", "precision", "recall")
TRAINING_COLUMNS = ("step", "epoch", "examples", "loss")
SCENE_COLUMNS = ("scene_id", "classes", "iou", "predicted_voxels", "true_voxels")
VIEW_COLUMNS = ("views", "threshold", "class", "iou")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _number(value, path: Path, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportInputError(f"{path}: {key} must be a number or null, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class EvalSummary:
    """summary.json: what was evaluated and the headline numbers (IoUs as fractions)."""

    model: str
    family: str
    mean_iou: float | None
    task: str | None = None
    dataset: str | None = None
    realism: str | None = None
    scale: str | None = None
    native_resolution: int | None = None
    eval_resolution: int | None = None
    global_iou: float | None = None
    baseline_mean_iou: float | None = None
    baseline_global_iou: float | None = None
    paper_mean_iou: float | None = None
    test_scenes: int | None = None
    checkpoint_step: int | None = None
    examples_seen: int | None = None
    extra: dict = field(default_factory=dict)

    FLOATS = ("mean_iou", "global_iou", "baseline_mean_iou", "baseline_global_iou")
    INTS = ("native_resolution", "eval_resolution", "test_scenes", "checkpoint_step", "examples_seen")
    TEXTS = ("task", "dataset", "realism", "scale")

    @classmethod
    def read(cls, path: Path, model: str) -> "EvalSummary":
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ReportInputError(f"{path}: not readable JSON: {err}") from None
        if not isinstance(data, dict):
            raise ReportInputError(f"{path}: expected a JSON object")
        for key in ("model", "family", "mean_iou"):
            if key not in data:
                raise ReportInputError(f"{path}: missing key {key!r}")
        if data["model"] != model:
            raise ReportInputError(f"{path}: says model {data['model']!r}, but lies in the folder of {model!r}")
        if data["family"] not in FAMILIES:
            raise ReportInputError(f"{path}: family {data['family']!r} is not one of {', '.join(FAMILIES)}")
        values = {key: _number(data.get(key), path, key) for key in cls.FLOATS}
        for key in cls.INTS:
            number = _number(data.get(key), path, key)
            values[key] = None if number is None or math.isnan(number) else int(number)
        for key in cls.TEXTS:
            values[key] = None if data.get(key) is None else str(data[key])
        values["paper_mean_iou"] = paper_mean_iou(
            model, _number(data.get("paper_mean_iou"), path, "paper_mean_iou"), "paper_mean_iou" in data
        )
        known = {"model", "family", "paper_mean_iou", *cls.FLOATS, *cls.INTS, *cls.TEXTS}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(model=model, family=data["family"], extra=extra, **values)


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ReportInputError(f"{path}: not a readable CSV: {err}") from None


def _require_columns(frame: pd.DataFrame, columns, path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportInputError(f"{path}: missing columns {missing} (has {list(frame.columns)})")


def _require_numeric(frame: pd.DataFrame, columns, path: Path) -> None:
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ReportInputError(f"{path}: column {column!r} is not numeric")


@dataclass(frozen=True)
class ClassMetrics:
    """voxel_metrics.csv (or the baseline's): IoU, precision and recall per class."""

    table: pd.DataFrame  # index: iou, precision, recall; columns: __void__, classes..., __global__

    @classmethod
    def read(cls, path: Path) -> "ClassMetrics":
        table = _read_csv(path, index_col=0)
        missing = [row for row in METRIC_ROWS if row not in table.index]
        if missing:
            raise ReportInputError(f"{path}: missing rows {missing} (has {list(table.index)})")
        table = table.loc[list(METRIC_ROWS)]
        _require_numeric(table, table.columns, path)
        return cls(table.astype("float64"))

    @property
    def classes(self) -> list[str]:
        return [c for c in self.table.columns if c not in (VOID, GLOBAL)]

    def value(self, metric: str, column: str) -> float:
        if column not in self.table.columns:
            return math.nan
        return float(self.table.at[metric, column])

    @property
    def mean_iou(self) -> float:
        """Mean IoU over classes, skipping classes with no true positive (NaN)."""
        values = self.table.loc["iou", self.classes].to_numpy(dtype="float64")
        values = values[~np.isnan(values)]
        return float(values.mean()) if len(values) else math.nan


@dataclass(frozen=True)
class ViewMetrics:
    """iou_by_views.csv (3D-R2N2): IoU per number of views, threshold and class."""

    table: pd.DataFrame

    @classmethod
    def read(cls, path: Path) -> "ViewMetrics":
        table = _read_csv(path)
        _require_columns(table, VIEW_COLUMNS, path)
        _require_numeric(table, ("views", "threshold", "iou"), path)
        table = table.assign(views=table["views"].astype("int64"), threshold=table["threshold"].round(6))
        table["class"] = table["class"].astype(str)
        duplicated = table.duplicated(["views", "threshold", "class"])
        if duplicated.any():
            row = table[duplicated].iloc[0]
            raise ReportInputError(
                f"{path}: more than one row for views={row['views']}, threshold={row['threshold']}, class={row['class']}"
            )
        return cls(table)

    @property
    def views(self) -> list[int]:
        return sorted(int(v) for v in self.table["views"].unique())

    @property
    def thresholds(self) -> list[float]:
        return sorted(float(t) for t in self.table["threshold"].unique())

    @property
    def classes(self) -> list[str]:
        return sorted(c for c in self.table["class"].unique() if c != MEAN)

    def iou(self, views: int, threshold: float, cls: str) -> float:
        t = self.table
        hit = t[(t["views"] == views) & (np.isclose(t["threshold"], threshold)) & (t["class"] == cls)]
        return float(hit["iou"].iloc[0]) if len(hit) else math.nan


@dataclass(frozen=True)
class TrainingLog:
    """models/{model}/metrics.csv: one row per logged training step."""

    frame: pd.DataFrame

    @classmethod
    def read(cls, path: Path) -> "TrainingLog":
        frame = _read_csv(path)
        _require_columns(frame, TRAINING_COLUMNS, path)
        numeric = [c for c in (*TRAINING_COLUMNS, "lr", "examples_per_s", "elapsed_s", "val_iou", "iou") if c in frame]
        _require_numeric(frame, [c for c in numeric if frame[c].notna().any()], path)
        return cls(frame.sort_values("examples", kind="stable").reset_index(drop=True))

    def column(self, name: str) -> pd.Series | None:
        if name not in self.frame or not self.frame[name].notna().any():
            return None
        return self.frame[name].astype("float64")

    def last(self, name: str) -> float:
        values = self.column(name)
        values = values.dropna() if values is not None else None
        return float(values.iloc[-1]) if values is not None and len(values) else math.nan

    def best(self, name: str) -> float:
        values = self.column(name)
        return float(values.max()) if values is not None else math.nan


@dataclass(frozen=True)
class SceneResults:
    """scenes.parquet: IoU and voxel counts of every test scene."""

    frame: pd.DataFrame

    @classmethod
    def read(cls, path: Path) -> "SceneResults":
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise ReportInputError(f"{path}: not a readable Parquet file: {err}") from None
        _require_columns(frame, SCENE_COLUMNS, path)
        _require_numeric(frame, ("iou", "predicted_voxels", "true_voxels"), path)
        return cls(frame[list(SCENE_COLUMNS)].reset_index(drop=True))


@dataclass(frozen=True)
class QualitativeImage:
    """One qualitative grid: input | prediction from 3 views | ground truth from 3 views."""

    index: int
    scene_id: str
    png: bytes
    width: int
    height: int

    NAME = re.compile(r"^(\d+)_(.+)\.png$")

    @classmethod
    def read(cls, path: Path, position: int) -> "QualitativeImage":
        data = path.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            raise ReportInputError(f"{path}: not a PNG file")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Exception as err:  # PIL raises many types for broken files
            raise ReportInputError(f"{path}: PNG does not decode: {err}") from None
        match = cls.NAME.match(path.name)
        index, scene_id = (int(match[1]), match[2]) if match else (position, path.stem)
        return cls(index=index, scene_id=scene_id, png=data, width=width, height=height)


@dataclass(frozen=True)
class ModelEvaluation:
    name: str
    summary: EvalSummary
    training: TrainingLog
    metrics: ClassMetrics | None = None
    baseline: ClassMetrics | None = None
    views: ViewMetrics | None = None
    scenes: SceneResults | None = None
    qualitative: list[QualitativeImage] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.summary.family


def _read_model(results: Path, summary: EvalSummary) -> ModelEvaluation:
    model = summary.model
    files = evaluation_files(results, model, summary.family)
    evaluation = results / "eval" / model
    baseline_file = evaluation / "baseline_metrics.csv"
    scenes_file = evaluation / "scenes.parquet"
    images = sorted((evaluation / "qualitative").glob("*.png"))
    return ModelEvaluation(
        name=model,
        summary=summary,
        training=TrainingLog.read(files["training"]),
        metrics=ClassMetrics.read(files["metrics"]) if "metrics" in files else None,
        baseline=ClassMetrics.read(baseline_file) if baseline_file.is_file() else None,
        views=ViewMetrics.read(files["views"]) if "views" in files else None,
        scenes=SceneResults.read(scenes_file) if scenes_file.is_file() else None,
        qualitative=[QualitativeImage.read(p, i) for i, p in enumerate(images)],
    )


def read_models(results: str | os.PathLike, models: list[str]) -> list[ModelEvaluation]:
    """Every listed model's outputs; a missing file of any model fails before the rest is read.

    The summaries come first: a model's family (in its summary) decides which files it needs.
    """
    results = Path(results)
    check_evaluations(results, models, roles=("summary",))
    summaries = [EvalSummary.read(evaluation_files(results, m)["summary"], m) for m in models]
    check_evaluations(results, models, {s.model: s.family for s in summaries})
    return [_read_model(results, summary) for summary in summaries]
