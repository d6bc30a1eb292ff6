"""3D-R2N2's part of a model's report section: IoU per class and number of views at the
headline threshold next to the paper's numbers (from summary.json, which the evaluation copies
from the model file), and the mean IoU by threshold.

File read: iou_by_views.csv (views, threshold, class or __mean__, iou), written by
stages.families.r2n2.evaluate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...report.files import MEAN, ReportInputError, read_csv, require_columns, require_numeric
from ...report.markup import Cell, Column, number_cell, percent, section, slug, table, text_cell
from ...report.references import PAPER_LABEL

if TYPE_CHECKING:
    from ...report.evaluations import ModelEvaluation

VIEW_COLUMNS = ("views", "threshold", "class", "iou")
DEFAULT_THRESHOLD = 0.4  # the released test code's TEST.VOXEL_THRESH, for summaries that do not say


@dataclass(frozen=True)
class ViewMetrics:
    """iou_by_views.csv (3D-R2N2): IoU per number of views, threshold and class."""

    table: pd.DataFrame

    @classmethod
    def read(cls, path: Path) -> "ViewMetrics":
        table = read_csv(path)
        require_columns(table, VIEW_COLUMNS, path)
        require_numeric(table, ("views", "threshold", "iou"), path)
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


def views_tables(evaluation: ModelEvaluation) -> str:
    """3D-R2N2: IoU per class and number of views at the paper's threshold; mean IoU per threshold."""
    model, views = evaluation.name, evaluation.data
    extra = evaluation.summary.extra
    paper_threshold = float(extra.get("threshold", DEFAULT_THRESHOLD))
    paper_by_views = {int(k): float(v) for k, v in (extra.get("paper_mean_iou_by_views") or {}).items()}
    thresholds = views.thresholds
    threshold = min(thresholds, key=lambda t: abs(t - paper_threshold)) if thresholds else paper_threshold
    view_counts = views.views
    columns = [Column("class", numeric=False)] + [Column(f"{v} view{'s' if v > 1 else ''} IoU (%)") for v in view_counts]

    def row(key: str, label: str, values: list[float], title=None) -> list[Cell]:
        out = [text_cell(label, id=slug(model, key, "class"), header=True, title=title)]
        out += [number_cell(v, percent(v), slug(model, key, f"v{n}")) for n, v in zip(view_counts, values)]
        return out

    rows = [row(c, c, [views.iou(n, threshold, c) for n in view_counts]) for c in views.classes]
    # 3D-R2N2's __mean__ is the mean over all test samples (the paper's figure), not over classes.
    foot = [("mean", row(MEAN, "mean (all test samples)", [views.iou(n, threshold, MEAN) for n in view_counts]))]
    base = evaluation.summary.baseline_mean_iou
    if base is not None:
        foot.append(("baseline", row("baseline", "constant-shape baseline (mean)", [base] * len(view_counts),
                                     title="the same shape for every input; independent of the number of views")))
    foot.append(("paper", row(
        "paper", PAPER_LABEL, [paper_by_views.get(n, math.nan) for n in view_counts],
        title="3D-R2N2 (Res3D-GRU-3) mean IoU published for real ShapeNet; not measured on this run's data",
    )))
    note = "" if math.isclose(threshold, paper_threshold) else (
        f" (the evaluation has no threshold {paper_threshold}; shown at the closest, {threshold:g})"
    )
    caption = (
        f"{model}: voxel IoU per class by number of input views, at occupancy threshold {threshold:g}{note}. "
        f"The {PAPER_LABEL} row is 3D-R2N2's published mean IoU at threshold {paper_threshold:g}."
    )
    by_view = table(slug("views", model), columns, rows, foot, caption)

    threshold_columns = [Column("threshold", numeric=True)] + columns[1 : 1 + len(view_counts)]
    threshold_rows = [
        [Cell(f"{t:g}", sort=t, id=slug(model, f"t{t:g}", "threshold"), header=True)]
        + [number_cell(views.iou(n, t, MEAN), percent(views.iou(n, t, MEAN)), slug(model, f"t{t:g}", f"v{n}")) for n in view_counts]
        for t in thresholds
    ]
    by_threshold = table(
        slug("thresholds", model), threshold_columns, threshold_rows,
        caption=f"{model}: mean IoU over all test samples (%) by occupancy threshold and number of views.",
    )
    return by_view + by_threshold


def read_report(files: dict[str, Path]) -> ViewMetrics:
    """iou_by_views.csv read and checked."""
    return ViewMetrics.read(files["views"])


def report_section(evaluation: ModelEvaluation) -> str:
    return section(slug(evaluation.name, "metrics"), "Metrics per class", views_tables(evaluation), level=3)
