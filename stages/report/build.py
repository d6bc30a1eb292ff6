"""Collect a run's outputs, render the page, write it atomically."""

from __future__ import annotations

import os
from pathlib import Path

from stages.atomic import write_text
from stages.report.benchmarks import read_benchmarks
from stages.report.datasets import read_dataset_stats
from stages.report.evaluations import read_models
from stages.report.page import ReportData, render_page
from stages.report.provenance import Provenance, collect_provenance


def collect(
    results: str | os.PathLike,
    models: list[str],
    configs: list[str | os.PathLike],
    provenance: Provenance | None = None,
) -> ReportData:
    """Read everything the page shows; raises ReportInputError before anything is written."""
    results = Path(results)
    models = list(dict.fromkeys(models))  # a model listed twice is shown once
    evaluations = read_models(results, models)
    return ReportData(
        evaluations=evaluations,
        datasets=read_dataset_stats(results),
        benchmarks=read_benchmarks(results / "benchmarks"),
        provenance=provenance or collect_provenance(configs),
    )


def build_report(
    results: str | os.PathLike,
    models: list[str],
    configs: list[str | os.PathLike],
    out: str | os.PathLike,
    provenance: Provenance | None = None,
) -> Path:
    out = Path(out)
    write_text(out, render_page(collect(results, models, configs, provenance)))
    return out
