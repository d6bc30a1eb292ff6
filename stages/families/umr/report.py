"""UMR's part of a model's report section: mask IoU and keypoint-transfer PCK of the model next
to its two baselines and the paper's numbers (only where the model file cites them, labelled
with their source), and PCK per keypoint.

Files read: umr_metrics.csv (metric, mode, alpha, value, count) and pck_by_keypoint.csv
(keypoint, mode, alpha, pck, count), written by stages.families.umr.evaluate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...report.files import ReportInputError, read_csv, require_columns, require_numeric
from ...report.markup import Cell, Column, number_cell, percent, section, slug, table, text_cell

if TYPE_CHECKING:
    from ...report.evaluations import ModelEvaluation

METRIC_COLUMNS = ("metric", "mode", "alpha", "value", "count")
KEYPOINT_COLUMNS = ("keypoint", "mode", "alpha", "pck", "count")
MODE_LABELS = {
    "model": "UMR (this run)",
    "flow": "UMR, texture-flow transfer",
    "cam": "UMR, camera transfer",
    "mean_template": "baseline: mean template, mean camera",
    "copy": "baseline: copied from the other image",
}


@dataclass(frozen=True)
class UMRMetrics:
    """umr_metrics.csv and pck_by_keypoint.csv, read and checked."""

    metrics: pd.DataFrame
    keypoints: pd.DataFrame

    def value(self, metric: str, mode: str, alpha: float | None = None) -> float:
        m = self.metrics[(self.metrics["metric"] == metric) & (self.metrics["mode"] == mode)]
        if alpha is not None:
            m = m[np.isclose(m["alpha"].astype(float), alpha)]
        return float(m["value"].iloc[0]) if len(m) else math.nan

    @property
    def alphas(self) -> list[float]:
        a = self.metrics.loc[self.metrics["metric"] == "pck", "alpha"].astype(float)
        return sorted(set(round(v, 6) for v in a))


def _read(path: Path, columns, numeric) -> pd.DataFrame:
    frame = read_csv(path)
    require_columns(frame, columns, path)
    require_numeric(frame, [c for c in numeric if frame[c].notna().any()], path)
    return frame


def read_report(files: dict[str, Path]) -> UMRMetrics:
    metrics = _read(files["metrics"], METRIC_COLUMNS, ("value", "count"))
    if "model" not in set(metrics["mode"]) or not (metrics["metric"] == "pck").any():
        raise ReportInputError(f"{files['metrics']}: needs the model's mask IoU rows and pck rows")
    keypoints = _read(files["keypoints"], KEYPOINT_COLUMNS, ("alpha", "pck", "count"))
    return UMRMetrics(metrics, keypoints)


def overview_table(evaluation: ModelEvaluation) -> str:
    model, data = evaluation.name, evaluation.data
    extra = evaluation.summary.extra
    alphas = data.alphas
    columns = [Column("method", numeric=False), Column("soft mask IoU (%)"), Column("hard mask IoU (%)")]
    columns += [Column(f"PCK@{a:g} (%)") for a in alphas]

    def row(key, label, soft, hard, pcks, title=None):
        cells = [text_cell(label, id=slug(model, key, "method"), header=True, title=title),
                 number_cell(soft, percent(soft), slug(model, key, "soft")),
                 number_cell(hard, percent(hard), slug(model, key, "hard"))]
        return cells + [number_cell(p, percent(p), slug(model, key, f"pck{a:g}")) for a, p in zip(alphas, pcks)]

    soft, hard = data.value("mask_iou_soft", "model"), data.value("mask_iou_hard", "model")
    rows = [row(mode, MODE_LABELS[mode], soft, hard, [data.value("pck", mode, a) for a in alphas])
            for mode in ("flow", "cam")]
    foot = []
    for mode in ("mean_template", "copy"):
        foot.append(("baseline", row(mode, MODE_LABELS[mode], data.value("mask_iou_soft", mode),
                                     data.value("mask_iou_hard", mode), [data.value("pck", mode, a) for a in alphas])))
    paper_iou = evaluation.summary.paper_mean_iou
    paper_pck = {float(k): float(v) for k, v in (extra.get("paper_pck") or {}).items()}
    source = str(extra.get("paper_source") or "")
    if paper_iou is not None or paper_pck:
        foot.append(("paper", row("paper", f"paper ({source})" if source else "paper", paper_iou, math.nan,
                                  [paper_pck.get(a, math.nan) for a in alphas],
                                  title="published on real CUB-200-2011; not measured on this run's data")))
    caption = (f"{model}: mask IoU on the test images and keypoint-transfer PCK (alpha x the longer side of the tight "
               f"bbox, mean over keypoints) over {extra.get('pairs', '?')} seeded image pairs, both directions"
               f"{', sampled as the original' if extra.get('sampling') else ', deterministic (latent mean, most probable camera)'}.")
    if paper_iou is None and not paper_pck:
        caption += " The paper's numbers are not shown: the model file cites none."
    return table(slug("umr", model), columns, rows, foot, caption)


def keypoint_table(evaluation: ModelEvaluation) -> str:
    model, data = evaluation.name, evaluation.data
    kp = data.keypoints
    alpha = min(data.alphas) if data.alphas else 0.1
    modes = [m for m in ("flow", "cam", "mean_template", "copy") if (kp["mode"] == m).any()]
    columns = [Column("keypoint", numeric=False)] + [Column(f"{MODE_LABELS[m]} (%)") for m in modes] + [Column("scored")]
    rows = []
    for name in dict.fromkeys(kp["keypoint"].astype(str)):
        cells: list[Cell] = [text_cell(name, id=slug(model, name, "kp"), header=True)]
        count = 0
        for m in modes:
            hit = kp[(kp["keypoint"].astype(str) == name) & (kp["mode"] == m) & np.isclose(kp["alpha"], alpha)]
            value = float(hit["pck"].iloc[0]) if len(hit) else math.nan
            count = int(hit["count"].iloc[0]) if len(hit) else count
            cells.append(number_cell(value, percent(value), slug(model, name, m)))
        cells.append(number_cell(count, str(count), slug(model, name, "count")))
        rows.append(cells)
    return table(slug("umr-keypoints", model), columns, rows,
                 caption=f"{model}: PCK@{alpha:g} per keypoint (pair directions where it is visible in both images).")


def report_section(evaluation: ModelEvaluation) -> str:
    body = overview_table(evaluation) + keypoint_table(evaluation)
    return section(slug(evaluation.name, "metrics"), "Mask IoU and keypoint transfer", body, level=3)
