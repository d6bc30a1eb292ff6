"""The page: header, table of contents, overview, one section per model, training curves, and
the run's datasets, runtime and provenance, assembled into one self-contained HTML document."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stages.report.benchmarks import RuleBenchmark
from stages.report.datasets import DatasetStats
from stages.report.evaluations import ModelEvaluation
from stages.report.markup import (
    DASH,
    Column,
    count,
    document,
    duration,
    esc,
    fixed,
    number_cell,
    paragraph,
    percent,
    points,
    section,
    slug,
    table,
    text_cell,
)
from stages.report.model_section import describe, family_title, model_anchor, model_section
from stages.report.plots import Series, bar_chart, line_plot
from stages.report.provenance import Provenance
from stages.report.references import PAPER_LABEL
from stages.report.run_sections import datasets_section, provenance_section, runtime_section

TITLE = "recon3d results"


@dataclass(frozen=True)
class ReportData:
    evaluations: list[ModelEvaluation]
    datasets: DatasetStats
    benchmarks: list[RuleBenchmark]
    provenance: Provenance


def _difference(a: float | None, b: float | None) -> float:
    return math.nan if a is None or b is None else a - b


def overview_section(evaluations: list[ModelEvaluation]) -> str:
    if not evaluations:
        return section("overview", "Overview", paragraph("No models were listed for this report.", "note"))
    columns = [
        Column("model", numeric=False),
        Column("family", numeric=False),
        Column("task", numeric=False),
        Column("data", numeric=False),
        Column("scale", numeric=False),
        Column("mean IoU (%)"),
        Column("baseline mean IoU (%)", title="constant-shape baseline"),
        Column("\u0394 vs baseline (points)"),
        Column("global IoU (%)", title="IoU of all voxels of all test scenes together"),
        Column(f"{PAPER_LABEL} mean IoU (%)", title="published on real ShapeNet; not measured on this run's data"),
        Column("examples seen"),
        Column("test scenes"),
    ]
    rows = []
    for e in evaluations:
        s, m = e.summary, e.name
        delta = _difference(s.mean_iou, s.baseline_mean_iou)
        data = f"{s.dataset or DASH}/{s.realism or DASH}"
        rows.append([
            text_cell(m, id=slug("overview", m, "model"), header=True),
            text_cell(family_title(s.family)),
            text_cell(s.task or DASH),
            text_cell(data),
            text_cell(s.scale or DASH),
            number_cell(s.mean_iou, percent(s.mean_iou), slug("overview", m, "mean_iou")),
            number_cell(s.baseline_mean_iou, percent(s.baseline_mean_iou), slug("overview", m, "baseline_mean_iou")),
            number_cell(delta, points(delta), slug("overview", m, "delta")),
            number_cell(s.global_iou, percent(s.global_iou), slug("overview", m, "global_iou")),
            number_cell(s.paper_mean_iou, percent(s.paper_mean_iou), slug("overview", m, "paper_mean_iou")),
            number_cell(s.examples_seen, count(s.examples_seen), slug("overview", m, "examples_seen")),
            number_cell(s.test_scenes, count(s.test_scenes), slug("overview", m, "test_scenes")),
        ])
    links = ", ".join(f'<a href="#{model_anchor(e.name)}">{esc(e.name)}</a>' for e in evaluations)
    intro = (
        "<p>Mean IoU over classes on each model's test split, next to the constant-shape baseline (one "
        "fixed shape for every input: a model below it has learned nothing about the input) and, "
        f"where the model mirrors a paper model, the paper's number on real ShapeNet. Models: {links}.</p>"
    )
    caption = "All evaluated models; click a column header to sort."
    names = [e.name for e in evaluations]

    def nan(v: float | None) -> float:
        return math.nan if v is None else 100 * v

    chart = bar_chart(
        names,
        [
            ("model", [nan(e.summary.mean_iou) for e in evaluations]),
            ("constant-shape baseline", [nan(e.summary.baseline_mean_iou) for e in evaluations]),
            (PAPER_LABEL, [nan(e.summary.paper_mean_iou) for e in evaluations]),
        ],
        title="Mean IoU per model",
        value_label="mean IoU (%)",
        category_label="model",
        value_format=lambda v: f"{v:.1f} %",
    )
    return section("overview", "Overview", intro + table("overview-table", columns, rows, caption=caption) + chart)


def _metric_column(evaluation: ModelEvaluation) -> str:
    return "val_iou" if evaluation.training.column("val_iou") is not None else "iou"


def training_section(evaluations: list[ModelEvaluation]) -> str:
    if not evaluations:
        return section("training", "Training", paragraph("No models.", "note"))
    loss = [Series(e.name, e.training.frame["examples"], e.training.frame["loss"]) for e in evaluations]
    # The metric curve: validation IoU where a log has it (it runs every few steps: plot only the
    # rows that have a value), else the IoU of the training batches that stages.train logs.
    validation = []
    for e in evaluations:
        values = e.training.column(_metric_column(e))
        if values is not None:
            logged = values.notna()
            validation.append(Series(e.name, e.training.frame.loc[logged, "examples"], 100 * values[logged]))
    plots = line_plot(loss, title="Training loss", x_label="examples seen", y_label="loss")
    if validation:
        plots += line_plot(validation, title="IoU during training (validation where logged, else training batches)",
                           x_label="examples seen", y_label="IoU (%)")
    else:
        plots += paragraph("No IoU was logged during training.", "note")
    columns = [
        Column("model", numeric=False),
        Column("steps"),
        Column("epochs"),
        Column("examples seen"),
        Column("final loss"),
        Column("best logged IoU (%)", title="validation IoU where logged, else IoU of training batches"),
        Column("training time", title="wall-clock time of training"),
        Column("throughput (examples/s)", title="median over the logged steps"),
    ]
    rows = []
    for e in evaluations:
        t, m = e.training, e.name
        throughput = t.column("examples_per_s")
        median_throughput = float(throughput.median()) if throughput is not None else math.nan
        elapsed = t.last("elapsed_s")
        rows.append([
            text_cell(m, id=slug("training", m, "model"), header=True),
            number_cell(t.last("step"), count(t.last("step")), slug("training", m, "steps")),
            number_cell(t.last("epoch"), count(t.last("epoch")), slug("training", m, "epochs")),
            number_cell(t.last("examples"), count(t.last("examples")), slug("training", m, "examples")),
            number_cell(t.last("loss"), fixed(t.last("loss"), 4), slug("training", m, "final_loss")),
            number_cell(t.best(_metric_column(e)), percent(t.best(_metric_column(e))), slug("training", m, "best_val_iou")),
            number_cell(elapsed, duration(elapsed), slug("training", m, "elapsed")),
            number_cell(median_throughput, fixed(median_throughput, 1), slug("training", m, "throughput")),
        ])
    caption = "From each model's training log (models/<model>/metrics.csv); values of the last logged step."
    body = f'<div class="plots">{plots}</div>' + table("training-table", columns, rows, caption=caption)
    return section("training", "Training curves", body)


def _toc(evaluations: list[ModelEvaluation]) -> str:
    models = "".join(
        f'<li><a href="#{model_anchor(e.name)}">{esc(e.name)}</a> <span class="note">{esc(describe(e))}</span></li>'
        for e in evaluations
    )
    entries = [
        ('<a href="#overview">Overview</a>'),
        ('<a href="#models">Models</a>' + (f"<ol>{models}</ol>" if models else "")),
        ('<a href="#training">Training curves</a>'),
        ('<a href="#datasets">Datasets</a>'),
        ('<a href="#runtime">Runtime and memory per rule</a>'),
        ('<a href="#provenance">Provenance</a>'),
    ]
    return '<nav class="toc" aria-label="contents"><ol>' + "".join(f"<li>{e}</li>" for e in entries) + "</ol></nav>"


def render_page(data: ReportData) -> str:
    p = data.provenance
    header = (
        f"<h1>{esc(TITLE)}</h1>"
        + paragraph(
            f"Generated {p.generated_utc} from commit {p.git_commit} ({p.git_state}) on {p.host}; "
            f"{len(data.evaluations)} model(s).",
            "note",
        )
    )
    models = "".join(model_section(e) for e in data.evaluations) or paragraph("No models.", "note")
    main = (
        overview_section(data.evaluations)
        + f'<div id="models">{models}</div>'
        + training_section(data.evaluations)
        + datasets_section(data.datasets)
        + runtime_section(data.benchmarks)
        + provenance_section(data.provenance)
    )
    footer = paragraph("A self-contained page: it loads nothing from the network.")
    return document(TITLE, header, _toc(data.evaluations), main, footer)
