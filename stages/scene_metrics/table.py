"""SCENE_METRICS: one row per evaluated scene, written by `python -m stages.scene_metrics`."""

from __future__ import annotations

import pandera.pandas as pa
import pyarrow

from stages.scene_metrics.depth import DEPTH_METRICS
from stages.scene_metrics.mesh import MESH_METRICS
from stages.tables import SPLITS, TableSpec

METRIC_COLUMNS = ([f"vortx_{k}" for k in MESH_METRICS] + [f"tf_{k}" for k in MESH_METRICS]
                  + [f"depth_{k}" for k in DEPTH_METRICS])

SCENE_METRICS = TableSpec(
    name="scene_metrics",
    arrow=pyarrow.schema(
        [("scene", pyarrow.string()), ("split", pyarrow.string()), ("frames", pyarrow.int64()),
         ("missing_prediction", pyarrow.bool_())]
        + [(c, pyarrow.float64()) for c in METRIC_COLUMNS]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene": pa.Column(str),
            "split": pa.Column(str, pa.Check.isin(SPLITS)),
            "frames": pa.Column("int64", pa.Check.ge(0)),
            "missing_prediction": pa.Column(bool),
            **{c: pa.Column("float64", nullable=True) for c in METRIC_COLUMNS},
        },
        unique=["scene"],
        strict=True,
    ),
    doc="One row per scene. vortx_*: the VoRTX/IOAR protocol (trimmed prediction, 2 cm "
    "downsampled vertices, < 5 cm); tf_*: the TransformerFusion protocol (200k samples, "
    "visibility filter, 1 m cap, <= 5 cm); acc/comp/chamfer in metres, prec/recall/fscore in "
    "[0, 1]; depth_*: 2D depth metrics of the rendered prediction, mean over frames. NaN where "
    "a protocol was not run or a metric is undefined; frames: frames rendered.",
)
