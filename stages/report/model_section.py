"""One model's section: what was evaluated, the family's metrics part (its `report_section`:
tables next to the baseline and the paper's numbers), and the qualitative grids.

Cell ids follow `{model}-{row}-{column}` (see `slug`), so tests and readers can link to a value.
"""

from __future__ import annotations

from stages.families import family_named
from stages.report.evaluations import ModelEvaluation
from stages.report.markup import (
    DASH,
    count,
    definitions,
    esc,
    paragraph,
    percent,
    png_image,
    section,
    slug,
)


def family_title(name: str) -> str:
    """The family's name as printed ("CoReNet" for `corenet`)."""
    return family_named(name).title


def model_anchor(model: str) -> str:
    return slug("model", model)


def describe(evaluation: ModelEvaluation) -> str:
    s = evaluation.summary
    family = family_title(s.family)
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
        ("family", family_title(s.family)),
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
    body = (
        paragraph(describe(evaluation), "note")
        + facts(evaluation)
        + family_named(evaluation.family).report_section(evaluation)
        + section(slug(model, "qualitative"), "Qualitative results", qualitative_part(evaluation), level=3)
    )
    return section(model_anchor(model), f"Model {model}", body)
