"""A model's evaluation and training outputs, read and checked into dataclasses.

Every family's evaluation writes (see its `outputs` in stages.families):

    eval/{model}/summary.json            headline numbers and what was evaluated
    eval/{model}/qualitative/*.png       optional: `{index:02d}_{item}.png` grids
    models/{model}/metrics.csv           training log: step, epoch, examples, loss, ...

and files of its own, which its report module reads (`Family.read_report`). A file that exists
but breaks this contract raises ReportInputError naming file and problem.
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

from stages.families import families, family_named
from stages.report.files import GLOBAL, MEAN, VOID, ReportInputError, read_csv, require_columns, require_numeric  # noqa: F401
from stages.report.inputs import check_evaluations
from stages.report.references import paper_mean_iou

TRAINING_COLUMNS = ("step", "epoch", "examples", "loss")
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
        known_families = [f.name for f in families()]
        if data["family"] not in known_families:
            raise ReportInputError(f"{path}: family {data['family']!r} is not one of {', '.join(known_families)}")
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


@dataclass(frozen=True)
class TrainingLog:
    """models/{model}/metrics.csv: one row per logged training step."""

    frame: pd.DataFrame

    @classmethod
    def read(cls, path: Path) -> "TrainingLog":
        frame = read_csv(path)
        require_columns(frame, TRAINING_COLUMNS, path)
        numeric = [c for c in (*TRAINING_COLUMNS, "lr", "examples_per_s", "elapsed_s", "val_iou", "iou") if c in frame]
        require_numeric(frame, [c for c in numeric if frame[c].notna().any()], path)
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
    """One model's outputs: `data` is what its family's `read_report` made of its own files."""

    name: str
    summary: EvalSummary
    training: TrainingLog
    data: object = None
    qualitative: list[QualitativeImage] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.summary.family


def _read_model(results: Path, summary: EvalSummary) -> ModelEvaluation:
    model = summary.model
    family = family_named(summary.family)
    files = family.output_paths(results, model)
    images = sorted((results / "eval" / model / "qualitative").glob("*.png"))
    return ModelEvaluation(
        name=model,
        summary=summary,
        training=TrainingLog.read(files["training"]),
        data=family.read_report(files),
        qualitative=[QualitativeImage.read(p, i) for i, p in enumerate(images)],
    )


def read_models(results: str | os.PathLike, models: list[str]) -> list[ModelEvaluation]:
    """Every listed model's outputs; a missing file of any model fails before the rest is read.

    The summaries come first: a model's family (in its summary) decides which files it needs.
    """
    results = Path(results)
    for model in models:
        path = results / "eval" / model / "summary.json"
        if not path.is_file():
            check_evaluations(results, {model: None})
    summaries = [EvalSummary.read(results / "eval" / m / "summary.json", m) for m in models]
    check_evaluations(results, {s.model: s.family for s in summaries})
    return [_read_model(results, summary) for summary in summaries]
