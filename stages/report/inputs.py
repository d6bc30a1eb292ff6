"""The files a model's evaluation must have produced before the report can be built.

One list, used twice: the Snakemake rule declares them as inputs, and the report CLI checks them
before it writes anything, so a missing evaluation fails with a message that names the file
instead of producing a page with a hole in it.
"""

from __future__ import annotations

import os
from pathlib import Path

FAMILIES = ("corenet", "r2n2")


class ReportInputError(ValueError):
    """An input of the report is missing or does not hold what the contract says.

    The message is one line naming the file and the problem; the CLI prints it and exits 1.
    """


class MissingEvaluation(ReportInputError):
    """An output the report needs does not exist; the message names model and file."""


def family_of(model: str) -> str:
    """The model family a model name belongs to: 3D-R2N2 models are named `r2n2*`."""
    return "r2n2" if model.startswith("r2n2") else "corenet"


def evaluation_files(results: str | os.PathLike, model: str, family: str | None = None) -> dict[str, Path]:
    """Required outputs of one model, by role (summary, metrics, baseline, views, training)."""
    family = family or family_of(model)
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r} of model {model!r}; known: {', '.join(FAMILIES)}")
    results = Path(results)
    evaluation = results / "eval" / model
    files = {"summary": evaluation / "summary.json"}
    if family == "r2n2":
        files["views"] = evaluation / "iou_by_views.csv"
    else:
        files["metrics"] = evaluation / "voxel_metrics.csv"
        files["baseline"] = evaluation / "baseline_metrics.csv"
    files["training"] = results / "models" / model / "metrics.csv"
    return files


def report_inputs(results: str | os.PathLike, models: list[str]) -> list[str]:
    """All required evaluation and training files of `models`, for a rule's `input:`."""
    return [str(path) for model in models for path in evaluation_files(results, model).values()]


def check_evaluations(
    results: str | os.PathLike,
    models: list[str],
    families: dict[str, str] | None = None,
    roles: tuple[str, ...] | None = None,
) -> None:
    """Raise MissingEvaluation for the first required file (of `roles`, default all) that is missing."""
    families = families or {}
    for model in models:
        for role, path in evaluation_files(results, model, families.get(model)).items():
            if (roles is None or role in roles) and not path.is_file():
                raise MissingEvaluation(
                    f"model {model!r}: missing {role} file {path} (evaluate the model first, "
                    f"e.g. `snakemake eval_{model}`, or drop it from models.run)"
                )
