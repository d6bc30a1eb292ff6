"""3D-R2N2's part of a model's report section: IoU per class and number of views at the
headline threshold next to the paper's numbers (from summary.json, which the evaluation copies
from the model file), and the mean IoU by threshold.

Files read: iou_by_views.csv (views, threshold, class or __mean__, iou) and per_class.csv
(class, samples, baseline, t=..., an `overall` row), written by stages.families.r2n2.evaluate;
pix3d_iou.csv when it exists (rule evaluate_r2n2_pix3d, the same columns as iou_by_views.csv
plus samples); and, to set the family's variants side by side (r2n2, r2n2_paddle), the
summary.json and per_class.csv of every other 3D-R2N2-family evaluation in the same results
folder.
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
    model, views = evaluation.name, evaluation.data.views
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


PER_CLASS_COLUMNS = ("class", "samples", "baseline")
OVERALL = "overall"


@dataclass(frozen=True)
class Variant:
    """One 3D-R2N2-family evaluation as the variants table shows it: per_class.csv at its
    headline threshold and what its model file publishes (summary.json)."""

    model: str
    threshold: float
    views: int
    measured: dict[str, float]  # class (and "overall") -> IoU at `threshold`, most views
    published: dict[str, float]  # paper.by_class, plus "overall": the published mean
    published_source: str
    baseline: dict[str, float]  # paper.baseline_by_class
    baseline_source: str


@dataclass(frozen=True)
class R2N2Report:
    """What the family's report section shows: this model's view metrics, its variants (this
    model first) and its Pix3D figures (None without pix3d_iou.csv)."""

    views: ViewMetrics
    variants: list[Variant]
    pix3d: ViewMetrics | None = None


def read_per_class(path: Path) -> pd.DataFrame:
    """per_class.csv read and checked: columns class, samples, baseline, t=<threshold>..."""
    table = read_csv(path)
    require_columns(table, PER_CLASS_COLUMNS, path)
    thresholds = [c for c in table.columns if c.startswith("t=")]
    if not thresholds:
        raise ReportInputError(f"{path}: no threshold columns (t=0.30, ...)")
    require_numeric(table, ("samples", "baseline", *thresholds), path)
    table["class"] = table["class"].astype(str)
    return table


def _threshold_of(column: str) -> float:
    return float(column[2:])


def read_variant(summary_path: Path, per_class_path: Path) -> Variant | None:
    """A 3D-R2N2-family evaluation's Variant, None when its summary is not of the family."""
    import json

    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as err:
        raise ReportInputError(f"{summary_path}: unreadable: {err}") from None
    if summary.get("family") != "r2n2":
        return None
    table = read_per_class(per_class_path)
    threshold = float(summary.get("threshold", DEFAULT_THRESHOLD))
    columns = [c for c in table.columns if c.startswith("t=")]
    column = min(columns, key=lambda c: abs(_threshold_of(c) - threshold))
    by_views = {int(k): float(v) for k, v in (summary.get("paper_mean_iou_by_views") or {}).items()}
    views = max(int(v) for v in summary.get("mean_iou_by_views", {1: 0})) if summary.get("mean_iou_by_views") else 1
    published = {str(k): float(v) for k, v in (summary.get("paper_by_class") or {}).items()}
    if views in by_views:
        published[OVERALL] = by_views[views]
    return Variant(
        model=str(summary.get("model", summary_path.parent.name)),
        threshold=_threshold_of(column),
        views=views,
        measured={str(r["class"]): float(r[column]) for _, r in table.iterrows()},
        published=published,
        published_source=str(summary.get("paper_source", "")),
        baseline={str(k): float(v) for k, v in (summary.get("paper_baseline_by_class") or {}).items()},
        baseline_source=str(summary.get("paper_baseline_source", "")),
    )


def read_variants(files: dict[str, Path]) -> list[Variant]:
    """This model's Variant first, then every other 3D-R2N2-family evaluation found next to it
    (results/eval/*/summary.json with a per_class.csv), by name."""
    own = read_variant(files["summary"], files["per_class"]) if Path(files["per_class"]).is_file() else None
    found = [own] if own is not None else []
    eval_dir = files["summary"].parent.parent
    for other in sorted(eval_dir.glob("*/summary.json")):
        if other.parent == files["summary"].parent or not (other.parent / "per_class.csv").is_file():
            continue
        variant = read_variant(other, other.parent / "per_class.csv")
        if variant is not None:
            found.append(variant)
    return found


def variants_table(evaluation: ModelEvaluation) -> str:
    """The family's variants side by side, per class: each one's measured IoU (most views, its
    headline threshold), then the published figures each model file cites, with their sources."""
    report: R2N2Report = evaluation.data
    variants = report.variants
    if not variants:
        return ""
    model = evaluation.name
    classes = sorted({c for v in variants for c in v.measured if c != OVERALL})
    columns = [Column("class", numeric=False)]
    getters = []
    for v in variants:
        columns.append(Column(f"{v.model} IoU (%)", title=f"measured on this run's test split, {v.views} views, "
                                                          f"threshold {v.threshold:g}"))
        getters.append(v.measured)
    sources = []
    for v in variants:
        if v.published:
            columns.append(Column(f"published for {v.model} (%)", title=v.published_source))
            getters.append(v.published)
            sources.append(f"published for {v.model}: {v.published_source}")
        if v.baseline and v.baseline != v.published:
            label = f"baseline of {v.model} (%)"
            columns.append(Column(label, title=v.baseline_source))
            getters.append(v.baseline)
            sources.append(f"{label[:-4]}: {v.baseline_source}")

    def row(key: str, label: str) -> list[Cell]:
        out = [text_cell(label, id=slug(model, "variants", key, "class"), header=True)]
        for i, values in enumerate(getters):
            value = values.get(key, math.nan)
            out.append(number_cell(value, percent(value), slug(model, "variants", key, str(i))))
        return out

    rows = [row(c, c) for c in classes]
    foot = [("overall", row(OVERALL, "overall (all test samples)"))]
    caption = (
        "3D-R2N2 variants: voxel IoU per class with the most views, each at its model file's headline "
        "threshold (" + ", ".join(f"{v.model}: {v.threshold:g}" for v in variants) + "), measured on this run's data; "
        "published figures are for real ShapeNet, not this run's data. Sources: " + "; ".join(sources or ["none given"]) + "."
    )
    return table(slug("variants", model), columns, rows, foot, caption)


def pix3d_table(evaluation: ModelEvaluation) -> str:
    """Pix3D (1 view, real photographs) next to the ShapeNet test split with 1 view, per class,
    at the headline threshold."""
    report: R2N2Report = evaluation.data
    if report.pix3d is None:
        return ""
    model, views, pix3d = evaluation.name, report.views, report.pix3d
    paper_threshold = float(evaluation.summary.extra.get("threshold", DEFAULT_THRESHOLD))
    threshold = min(pix3d.thresholds, key=lambda t: abs(t - paper_threshold))
    samples = {}
    if "samples" in pix3d.table.columns:
        hit = pix3d.table[np.isclose(pix3d.table["threshold"], threshold)]
        samples = {str(r["class"]): float(r["samples"]) for _, r in hit.iterrows()}
    columns = [Column("class", numeric=False), Column("Pix3D photographs"), Column("Pix3D IoU (%)"),
               Column("ShapeNet test IoU (%)", title="this run's test split, 1 view")]

    def row(key: str, label: str) -> list[Cell]:
        iou, test = pix3d.iou(1, threshold, key), views.iou(1, threshold, key)
        count = samples.get(key, math.nan)
        return [text_cell(label, id=slug(model, "pix3d", key, "class"), header=True),
                number_cell(count, "-" if math.isnan(count) else f"{int(count)}", slug(model, "pix3d", key, "n")),
                number_cell(iou, percent(iou), slug(model, "pix3d", key, "iou")),
                number_cell(test, percent(test), slug(model, "pix3d", key, "test"))]

    rows = [row(c, c) for c in pix3d.classes]
    foot = [("mean", row(MEAN, "mean (all samples)"))]
    caption = (f"{model} on Pix3D's real photographs (1 view, cut out over grey 240 and framed around the box as "
               f"Pix2Vox's Pix3D test; canonical-frame ground truth) next to the ShapeNet test split with 1 view, "
               f"at threshold {threshold:g}.")
    return table(slug("pix3d", model), columns, rows, foot, caption)


def read_report(files: dict[str, Path]) -> R2N2Report:
    """iou_by_views.csv, per_class.csv, the sibling variants and pix3d_iou.csv (if present),
    read and checked."""
    # Written by its own rule (evaluate_r2n2_pix3d) when Pix3D is configured, so it is not among
    # the family's outputs (which every eval_<model> target requires).
    pix3d = files.get("pix3d", Path(files["summary"]).parent / "pix3d_iou.csv")
    return R2N2Report(
        views=ViewMetrics.read(files["views"]),
        variants=read_variants(files),
        pix3d=ViewMetrics.read(pix3d) if Path(pix3d).is_file() else None,
    )


def report_section(evaluation: ModelEvaluation) -> str:
    body = views_tables(evaluation) + variants_table(evaluation) + pix3d_table(evaluation)
    return section(slug(evaluation.name, "metrics"), "Metrics per class", body, level=3)
