"""CoReNet's part of a model's report section: per-class IoU, precision and recall next to the
constant-shape baseline and the paper's number, and per-scene IoU (histogram, worst scenes).

Files read (written by stages.families.corenet.evaluate): voxel_metrics.csv and
baseline_metrics.csv (rows iou/precision/recall, columns __void__, classes..., __global__; pandas
to_csv with the row names as unnamed index), scenes.parquet (optional: scene_id, classes, iou,
predicted_voxels, true_voxels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...report.files import GLOBAL, MEAN, VOID, ReportInputError, read_csv, require_columns, require_numeric
from ...report.markup import (
    DASH,
    Cell,
    Column,
    count,
    number_cell,
    paragraph,
    percent,
    points,
    section,
    slug,
    table,
    text_cell,
)
from ...report.plots import histogram
from ...report.references import PAPER_LABEL
from .spec import RELEASED_CHECKPOINT

if TYPE_CHECKING:
    from ...report.evaluations import ModelEvaluation

METRIC_ROWS = ("iou", "precision", "recall")
SCENE_COLUMNS = ("scene_id", "classes", "iou", "predicted_voxels", "true_voxels")
WORST_SCENES = 5


@dataclass(frozen=True)
class ClassMetrics:
    """voxel_metrics.csv (or the baseline's): IoU, precision and recall per class."""

    table: pd.DataFrame  # index: iou, precision, recall; columns: __void__, classes..., __global__

    @classmethod
    def read(cls, path: Path) -> "ClassMetrics":
        table = read_csv(path, index_col=0)
        missing = [row for row in METRIC_ROWS if row not in table.index]
        if missing:
            raise ReportInputError(f"{path}: missing rows {missing} (has {list(table.index)})")
        table = table.loc[list(METRIC_ROWS)]
        require_numeric(table, table.columns, path)
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
class SceneResults:
    """scenes.parquet: IoU and voxel counts of every test scene."""

    frame: pd.DataFrame

    @classmethod
    def read(cls, path: Path) -> "SceneResults":
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise ReportInputError(f"{path}: not a readable Parquet file: {err}") from None
        require_columns(frame, SCENE_COLUMNS, path)
        require_numeric(frame, ("iou", "predicted_voxels", "true_voxels"), path)
        return cls(frame[list(SCENE_COLUMNS)].reset_index(drop=True))


def class_table(evaluation: ModelEvaluation) -> str:
    """CoReNet: per class IoU / precision / recall, the baseline's, and the difference."""
    model, metrics, baseline = evaluation.name, evaluation.data.metrics, evaluation.data.baseline
    columns = [
        Column("class", numeric=False),
        Column("IoU (%)"),
        Column("precision (%)"),
        Column("recall (%)"),
        Column("baseline IoU (%)", title="constant-shape baseline: the same shape for every input"),
        Column("baseline precision (%)"),
        Column("baseline recall (%)"),
        Column("\u0394 IoU (points)", title="model IoU minus baseline IoU, in percentage points"),
    ]

    def cells(row_key: str, label: str, model_values, baseline_values) -> list[Cell]:
        out = [text_cell(label, id=slug(model, row_key, "class"), header=True)]
        for name, value in zip(("iou", "precision", "recall"), model_values):
            out.append(number_cell(value, percent(value), slug(model, row_key, name)))
        for name, value in zip(("iou", "precision", "recall"), baseline_values):
            out.append(number_cell(value, percent(value), slug(model, row_key, "baseline_" + name)))
        delta = model_values[0] - baseline_values[0]
        out.append(number_cell(delta, points(delta), slug(model, row_key, "delta_iou")))
        return out

    def values(source: ClassMetrics | None, column: str) -> list[float]:
        return [source.value(m, column) if source else math.nan for m in ("iou", "precision", "recall")]

    rows = [cells(c, c, values(metrics, c), values(baseline, c)) for c in metrics.classes]
    nan3 = [math.nan] * 3
    mean_row = cells(
        MEAN,
        _class_label(MEAN),
        [metrics.mean_iou, math.nan, math.nan],
        [baseline.mean_iou if baseline else math.nan, math.nan, math.nan],
    )
    foot = [
        ("mean", mean_row),
        ("global", cells(GLOBAL, _class_label(GLOBAL), values(metrics, GLOBAL), values(baseline, GLOBAL))),
        ("void", cells(VOID, _class_label(VOID), values(metrics, VOID), values(baseline, VOID))),
    ]
    paper = evaluation.summary.paper_mean_iou
    paper_source = evaluation.summary.extra.get("paper_source")
    if paper is not None:
        paper_cells = cells("paper", PAPER_LABEL, [paper, *nan3[1:]], nan3)
        paper_cells[0] = text_cell(
            PAPER_LABEL,
            id=slug(model, "paper", "class"),
            header=True,
            title="mean IoU published for this model on real ShapeNet; not measured on this run's data"
            + (f" (source: {paper_source})" if paper_source else ""),
        )
        foot.append(("paper", paper_cells))
    released = evaluation.summary.extra.get("source") == RELEASED_CHECKPOINT
    if released:  # the model's own rows are the original authors' weights, scored by this run
        mean_row[0] = text_cell(f"{_class_label(MEAN)}, {RELEASED_CHECKPOINT}", id=slug(model, MEAN, "class"),
                                header=True, title="the released checkpoint of the original, imported and "
                                "evaluated here (stages.import_checkpoint)")
    caption = (
        f"{model}{f' ({RELEASED_CHECKPOINT})' if released else ''}: voxel IoU, precision and recall per "
        "class on the test split, next to the "
        "constant-shape baseline. Mean IoU skips classes without a true positive (shown as "
        f"{DASH})."
    )
    if paper is not None:
        caption += f" The {PAPER_LABEL} row is the published mean IoU, not a number of this run"
        caption += f" (source: {paper_source})." if paper_source else "."
    return table(slug("classes", model), columns, rows, foot, caption)



def scenes_part(evaluation: ModelEvaluation) -> str:
    model, scenes = evaluation.name, evaluation.data.scenes
    if scenes is None:
        return paragraph("No per-scene results (scenes.parquet) for this model.", "note")
    frame = scenes.frame
    plot = histogram(
        (100 * frame["iou"].astype(float)).tolist(), bins=20, value_range=(0.0, 100.0),
        title=f"{model}: IoU of each test scene", x_label="scene IoU (%)", y_label="test scenes",
    )
    worst = frame.sort_values("iou", kind="stable").head(WORST_SCENES)
    columns = [Column("scene", numeric=False), Column("classes", numeric=False), Column("IoU (%)"),
               Column("predicted voxels"), Column("true voxels")]
    rows = [
        [
            text_cell(r.scene_id, id=slug(model, "scene", r.scene_id), header=True),
            text_cell(r.classes),
            number_cell(float(r.iou), percent(float(r.iou))),
            number_cell(int(r.predicted_voxels), count(r.predicted_voxels)),
            number_cell(int(r.true_voxels), count(r.true_voxels)),
        ]
        for r in worst.itertuples()
    ]
    median = float(frame["iou"].median()) if len(frame) else math.nan
    summary = paragraph(
        f"{len(frame):,} test scenes; median scene IoU {percent(median)} %. The {len(rows)} worst scenes:"
    )
    worst_table = table(slug("worst", model), columns, rows, caption=f"{model}: lowest-IoU test scenes.")
    return f'<div class="plots">{plot}<div>{summary}{worst_table}</div></div>'


@dataclass(frozen=True)
class CorenetReport:
    """What the section shows: the model's and the baseline's class metrics, per-scene IoU."""

    metrics: ClassMetrics
    baseline: ClassMetrics | None
    scenes: SceneResults | None


def read_report(files: dict[str, Path]) -> CorenetReport:
    """The evaluation files by role (metrics, baseline, scenes) read and checked."""
    baseline, scenes = files.get("baseline"), files.get("scenes")
    return CorenetReport(
        metrics=ClassMetrics.read(files["metrics"]),
        baseline=ClassMetrics.read(baseline) if baseline is not None and baseline.is_file() else None,
        scenes=SceneResults.read(scenes) if scenes is not None and scenes.is_file() else None,
    )


def _class_label(column: str) -> str:
    return {VOID: "void (empty space)", GLOBAL: "global (all voxels)", MEAN: "mean over classes"}.get(column, column)


def report_section(evaluation: ModelEvaluation) -> str:
    """Metrics per class, then per-scene IoU."""
    model = evaluation.name
    return (section(slug(model, "metrics"), "Metrics per class", class_table(evaluation), level=3)
            + section(slug(model, "scenes"), "Per-scene IoU", scenes_part(evaluation), level=3))
