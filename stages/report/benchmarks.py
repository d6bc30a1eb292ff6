"""Per-rule runtime and memory, from Snakemake's `benchmark:` files.

Every job of a rule with a `benchmark:` directive writes one TSV under
`benchmarks/<rule>/...`: a header `s h:m:s max_rss max_vms max_uss max_pss io_in io_out
mean_load cpu_time` and one row per repeat (`-` or `NA` where a value was not measured;
max_rss is in MB).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from stages.report.inputs import ReportInputError


@dataclass(frozen=True)
class RuleBenchmark:
    rule: str
    jobs: int
    total_s: float
    max_s: float
    max_rss_mb: float  # NaN when no job measured it
    cpu_s: float


def _value(text: str | None) -> float:
    if text is None or text.strip() in ("", "-", "NA", "nan"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def _max(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def _sum(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) if values else math.nan


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def read_benchmark_file(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if rows and "s" not in rows[0]:
        raise ReportInputError(f"{path}: not a Snakemake benchmark file (no 's' column)")
    return [{key: _value(value) for key, value in row.items() if key != "h:m:s"} for row in rows]


def read_benchmarks(root: str | os.PathLike) -> list[RuleBenchmark]:
    """One summary per rule (the first folder under `root`), sorted by total runtime, longest first."""
    root = Path(root)
    per_rule: dict[str, list[dict[str, float]]] = {}
    for path in sorted(root.glob("*/**/*.tsv")):
        rule = path.relative_to(root).parts[0]
        # A job that ran with `--benchmark-repeats` has several rows: count it once, by its mean.
        rows = read_benchmark_file(path)
        if rows:
            per_rule.setdefault(rule, []).append(
                {key: _mean([r.get(key, math.nan) for r in rows]) for key in rows[0]}
                | {"max_rss": _max([r.get("max_rss", math.nan) for r in rows])}
            )
    summaries = [
        RuleBenchmark(
            rule=rule,
            jobs=len(jobs),
            total_s=_sum([j["s"] for j in jobs]),
            max_s=_max([j["s"] for j in jobs]),
            max_rss_mb=_max([j.get("max_rss", math.nan) for j in jobs]),
            cpu_s=_sum([j.get("cpu_time", math.nan) for j in jobs]),
        )
        for rule, jobs in per_rule.items()
    ]
    return sorted(summaries, key=lambda b: (-(b.total_s if not math.isnan(b.total_s) else -1), b.rule))
