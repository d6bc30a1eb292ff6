"""IOAR's part of a model's report section: the mesh metrics of both protocols and the 2D depth
metrics, model next to the floor-plane baseline (means over the test scans), and the published
figures of its lineage for scale.

Files read: mesh_metrics.csv (scene, method, protocol, acc, comp, chamfer, prec, recall, fscore)
and depth_metrics.csv (scene, method, abs_rel ... completeness), written by
stages.families.ioar.evaluate; rows with scene `__mean__` are the means over scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ...report.files import ReportInputError, read_csv, require_columns, require_numeric
from ...report.markup import Column, fixed, number_cell, paragraph, section, slug, table, text_cell
from ...scene_metrics.depth import DEPTH_METRICS
from ...scene_metrics.mesh import MESH_METRICS

if TYPE_CHECKING:
    from ...report.evaluations import ModelEvaluation

MEAN = "__mean__"
METHOD_LABELS = {"model": "model", "baseline": "floor-plane baseline"}
PROTOCOL_LABELS = {"vortx": "VoRTX/IOAR", "transformerfusion": "TransformerFusion"}
DISTANCES = ("acc", "comp", "chamfer", "abs_diff", "rmse", "sq_rel")  # metres (shown in cm)


@dataclass(frozen=True)
class SceneMetrics:
    mesh: pd.DataFrame
    depth: pd.DataFrame


def _read(path: Path, columns) -> pd.DataFrame:
    frame = read_csv(path)
    require_columns(frame, columns, path)
    numeric = [c for c in columns if c not in ("scene", "method", "protocol")]
    require_numeric(frame, [c for c in numeric if frame[c].notna().any()], path)
    frame["method"] = frame["method"].astype(str)
    unknown = set(frame["method"]) - set(METHOD_LABELS)
    if unknown:
        raise ReportInputError(f"{path}: unknown method {sorted(unknown)[0]!r}")
    if not (frame["scene"].astype(str) == MEAN).any():
        raise ReportInputError(f"{path}: no {MEAN} rows")
    return frame


def read_report(files: dict[str, Path]) -> SceneMetrics:
    """mesh_metrics.csv and depth_metrics.csv read and checked."""
    mesh = _read(files["mesh_metrics"], ("scene", "method", "protocol", *MESH_METRICS))
    depth = _read(files["depth_metrics"], ("scene", "method", *DEPTH_METRICS))
    return SceneMetrics(mesh, depth)


def _format(key: str, value: float) -> str:
    if pd.isna(value):
        return "–"
    if key in DISTANCES:
        return fixed(100 * value, 1)
    return f"{value:.3f}"


def report_section(evaluation: ModelEvaluation) -> str:
    model, data = evaluation.name, evaluation.data
    mesh = data.mesh[data.mesh["scene"].astype(str) == MEAN]
    columns = [Column("method", numeric=False), Column("protocol", numeric=False)] + [
        Column(k + (" (cm)" if k in DISTANCES else "")) for k in MESH_METRICS]
    rows = []
    for method in METHOD_LABELS:
        for protocol in PROTOCOL_LABELS:
            hit = mesh[(mesh["method"] == method) & (mesh["protocol"] == protocol)]
            if hit.empty:
                continue
            r = hit.iloc[0]
            rows.append([text_cell(METHOD_LABELS[method], id=slug(model, method, protocol, "method"), header=True),
                         text_cell(PROTOCOL_LABELS[protocol])]
                        + [number_cell(float(r[k]), _format(k, float(r[k])), slug(model, method, protocol, k))
                           for k in MESH_METRICS])
    mesh_html = table(slug("scene-mesh", model), columns, rows, caption=(
        f"{model}: mesh metrics, means over the test scans. acc/comp: mean distance prediction -> truth / "
        "truth -> prediction (cm); prec/recall/fscore at 5 cm (VoRTX/IOAR: trimmed by re-fusion, 2 cm "
        "downsampled vertices, strict <; TransformerFusion: 200k samples, visibility filter, 1 m cap, <=)."))
    depth = data.depth[data.depth["scene"].astype(str) == MEAN]
    depth_columns = [Column("method", numeric=False)] + [
        Column(k + (" (cm)" if k in DISTANCES else "")) for k in DEPTH_METRICS]
    depth_rows = []
    for method in METHOD_LABELS:
        hit = depth[depth["method"] == method]
        if hit.empty:
            continue
        r = hit.iloc[0]
        depth_rows.append([text_cell(METHOD_LABELS[method], id=slug(model, method, "depth"), header=True)]
                          + [number_cell(float(r[k]), _format(k, float(r[k])), slug(model, method, "depth", k))
                             for k in DEPTH_METRICS])
    depth_html = table(slug("scene-depth", model), depth_columns, depth_rows, caption=(
        f"{model}: 2D depth metrics of the predicted mesh rendered into every test frame against the "
        "sensor depth (pixels with 0 < depth < 10 m and a prediction), means over scans."))
    references = evaluation.summary.extra.get("paper_references") or {}
    note = ""
    if references:
        items = "; ".join(f"{label}: {value:.3f}" for label, value in references.items())
        note = paragraph(f"For scale, published F-scores on real ScanNet (not measured on this run's data): {items}.")
    return section(slug(model, "metrics"), "Scene reconstruction metrics", mesh_html + depth_html + note, level=3)
