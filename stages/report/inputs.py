"""The files a model's evaluation must have produced before the report can be built.

One list, used twice: the Snakemake rule declares them as inputs, and the report CLI checks them
before it writes anything, so a missing evaluation fails with a message that names the file
instead of producing a page with a hole in it. The list is the model's family's (its `outputs`
marked required, and the training log).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from stages.errors import StageError
from stages.report.files import ReportInputError


class MissingEvaluation(ReportInputError):
    """An output the report needs does not exist; the message names model and file."""


def evaluation_files(results: str | os.PathLike, model: str, family: str | None) -> dict[str, Path]:
    """Required outputs of one model of `family`, by role (summary.json only when the family is
    not known yet: it names the family)."""
    from stages.families import family_named

    if family is None:
        return {"summary": Path(results) / "eval" / model / "summary.json"}
    try:
        return family_named(family).required_outputs(results, model)
    except StageError as err:
        raise ReportInputError(f"model {model!r}: {err}") from None


def report_inputs(results: str | os.PathLike, models: Mapping[str, str]) -> list[str]:
    """All required evaluation and training files of `models` ({model: family}), for a rule's
    `input:`."""
    return [str(path) for model, family in models.items() for path in evaluation_files(results, model, family).values()]


def check_evaluations(results: str | os.PathLike, models: Mapping[str, str | None]) -> None:
    """Raise MissingEvaluation for the first required file of `models` ({model: family}) that is missing."""
    for model, family in models.items():
        for role, path in evaluation_files(results, model, family).items():
            if not path.is_file():
                raise MissingEvaluation(
                    f"model {model!r}: missing {role} file {path} (evaluate the model first, "
                    f"e.g. `snakemake eval_{model}`, or drop it from models.run)"
                )
