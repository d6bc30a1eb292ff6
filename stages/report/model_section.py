"""One model's section: what was evaluated, per-class (or per-view) metrics next to the
constant-shape baseline and the paper's number, per-scene IoU, and the qualitative grids.

Cell ids follow `{model}-{row}-{column}` (see `slug`), so tests and readers can link to a value.
"""

from __future__ import annotations

import math

from stages.report.evaluations import GLOBAL, MEAN, VOID, ClassMetrics, ModelEvaluation
from stages.report.markup import (
    DASH,
    Cell,
    Column,
    count,
    definitions,
    esc,
    number_cell,
    paragraph,
    percent,
    png_image,
    points,
    section,
    slug,
    table,
    text_cell,
)
from stages.report.plots import histogram
from stages.report.references import (
    PAPER_LABEL,
    R2N2_MEAN_IOU_BY_VIEWS,
    R2N2_PAPER_THRESHOLD,
)

FAMILY_NAMES = {"corenet": "CoReNet", "r2n2": "3D-R2N2"}
WORST_SCENES = 5


def model_anchor(model: str) -> str:
    return slug("model", model)


def describe(evaluation: ModelEvaluation) -> str:
    s = evaluation.summary
    family = FAMILY_NAMES.get(s.family, s.family)
    parts = [family + (f", {s.task}" if s.task else "")]
    if s.dataset:
        parts.append(f"{s.dataset} scenes" + (f", {s.realism} realism" if s.realism else ""))
    if s.scale:
        parts.append(f"{s.scale} scale")
    return "; ".join(parts)


def _resolution(value: int | None) -> str:
    return DASH if value is None else f"{value}\u00b3"


def facts(evaluation: ModelEvaluation) -> str:
    s = evaluation.summary
    items = [
        ("family", FAMILY_NAMES.get(s.family, s.family)),
        ("task", s.task or DASH),
        ("data", f"{s.dataset or DASH} scenes, {s.realism or DASH} realism"),
        ("scale", s.scale or DASH),
        ("resolution", f"{_resolution(s.native_resolution)} native, {_resolution(s.eval_resolution)} evaluated"),
        ("checkpoint", f"step {count(s.checkpoint_step)}, {count(s.examples_seen)} examples seen"),
        ("test scenes", count(s.test_scenes)),
        ("mean IoU", f"{percent(s.mean_iou)} % (baseline {percent(s.baseline_mean_iou)} %)"),
    ]
    items += [(str(k), str(v)) for k, v in sorted(s.extra.items())]
    return definitions(items)


def _class_label(column: str) -> str:
    return {VOID: "void (empty space)", GLOBAL: "global (all voxels)", MEAN: "mean over classes"}.get(column, column)


def class_table(evaluation: ModelEvaluation) -> str:
    """CoReNet: per class IoU / precision / recall, the baseline's, and the difference."""
    model, metrics, baseline = evaluation.name, evaluation.metrics, evaluation.baseline
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
    caption = (
        f"{model}: voxel IoU, precision and recall per class on the test split, next to the "
        "constant-shape baseline. Mean IoU skips classes without a true positive (shown as "
        f"{DASH})."
    )
    if paper is not None:
        caption += f" The {PAPER_LABEL} row is the published mean IoU, not a number of this run"
        caption += f" (source: {paper_source})." if paper_source else "."
    return table(slug("classes", model), columns, rows, foot, caption)


def views_tables(evaluation: ModelEvaluation) -> str:
    """3D-R2N2: IoU per class and number of views at the paper's threshold; mean IoU per threshold."""
    model, views = evaluation.name, evaluation.views
    thresholds = views.thresholds
    threshold = min(thresholds, key=lambda t: abs(t - R2N2_PAPER_THRESHOLD)) if thresholds else R2N2_PAPER_THRESHOLD
    view_counts = views.views
    baseline = evaluation.baseline
    columns = [Column("class", numeric=False)] + [Column(f"{v} view{'s' if v > 1 else ''} IoU (%)") for v in view_counts]
    if baseline is not None:
        columns.append(Column("baseline IoU (%)", title="constant-shape baseline"))

    def row(key: str, label: str, values: list[float], baseline_value: float | None = None, title=None) -> list[Cell]:
        out = [text_cell(label, id=slug(model, key, "class"), header=True, title=title)]
        out += [number_cell(v, percent(v), slug(model, key, f"v{n}")) for n, v in zip(view_counts, values)]
        if baseline is not None:
            out.append(number_cell(baseline_value, percent(baseline_value), slug(model, key, "baseline_iou")))
        return out

    def baseline_of(cls: str) -> float | None:
        return baseline.value("iou", cls) if baseline is not None else None

    rows = [row(c, c, [views.iou(n, threshold, c) for n in view_counts], baseline_of(c)) for c in views.classes]
    # 3D-R2N2's __mean__ is the mean over all test samples (the paper's figure), not over classes.
    foot = [("mean", row(MEAN, "mean (all test samples)", [views.iou(n, threshold, MEAN) for n in view_counts],
                         baseline.mean_iou if baseline is not None else None))]
    base = evaluation.summary.baseline_mean_iou
    if base is not None:
        foot.append(("baseline", row("baseline", "constant-shape baseline (mean)", [base] * len(view_counts),
                                     title="the same shape for every input; independent of the number of views")))
    foot.append(("paper", row(
        "paper", PAPER_LABEL, [R2N2_MEAN_IOU_BY_VIEWS.get(n, math.nan) for n in view_counts],
        title="3D-R2N2 (Res3D-GRU-3) mean IoU published for real ShapeNet; not measured on this run's data",
    )))
    note = "" if math.isclose(threshold, R2N2_PAPER_THRESHOLD) else (
        f" (the evaluation has no threshold {R2N2_PAPER_THRESHOLD}; shown at the closest, {threshold:g})"
    )
    caption = (
        f"{model}: voxel IoU per class by number of input views, at occupancy threshold {threshold:g}{note}. "
        f"The {PAPER_LABEL} row is 3D-R2N2's published mean IoU at threshold {R2N2_PAPER_THRESHOLD:g}."
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


def scenes_part(evaluation: ModelEvaluation) -> str:
    model, scenes = evaluation.name, evaluation.scenes
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


def qualitative_part(evaluation: ModelEvaluation) -> str:
    if not evaluation.qualitative:
        return paragraph("No qualitative images for this model.", "note")
    figures = "".join(
        f'<figure id="{slug(evaluation.name, "qualitative", image.index)}">'
        + png_image(image.png, f"{evaluation.name}, scene {image.scene_id}: input image, prediction and "
                    "ground truth from three views", image.width, image.height)
        + f"<figcaption>{image.index:02d}: scene {esc(image.scene_id)}</figcaption></figure>"
        for image in sorted(evaluation.qualitative, key=lambda i: i.index)
    )
    intro = paragraph("Each row: input image | prediction from 3 views | ground truth from the same 3 views.", "note")
    return intro + f'<div class="gallery">{figures}</div>'


def model_section(evaluation: ModelEvaluation) -> str:
    model = evaluation.name
    metrics = class_table(evaluation) if evaluation.metrics is not None else views_tables(evaluation)
    body = (
        paragraph(describe(evaluation), "note")
        + facts(evaluation)
        + section(slug(model, "metrics"), "Metrics per class", metrics, level=3)
        + section(slug(model, "scenes"), "Per-scene IoU", scenes_part(evaluation), level=3)
        + section(slug(model, "qualitative"), "Qualitative results", qualitative_part(evaluation), level=3)
    )
    return section(model_anchor(model), f"Model {model}", body)
