"""The Pix3D test table for the 3D-R2N2 family and its quarantine table (`stages.import_pix3d`).

`PIX3D` holds one row per usable Pix3D photograph of a class that ShapeNet's 13 share; `PIX3D_QUARANTINE`
one row per entry of `pix3d.json` that could not be used, with the reason. Both are checked with
pandera when written and read (`stages.tables`).

The ground truth's frame is `FRAME` = "canonical": the model's own coordinates (Pix3D's README:
`model` is +x leftward, +y upward, +z inward in the canonical view, the axes of ShapeNet's aligned
models), over the model's bounding cube (side = the largest extent of its axis-aligned box,
centred on the box: `binvox -cb`, as ShapeNetVox32 and `stages.render_views`), x -> i, y -> j,
z -> k, stored [k, j, i] = [z, y, x] like every grid of the pipeline. It does not depend on the
photograph's camera: this is how Pix2Vox scores Pix3D (hzxie/Pix2Vox utils/data_loaders.py,
Pix3dDataLoader reads `model/<category>/<model>/model.binvox` made with binvox from model.obj;
its issues #17 and #25) and the frame the family predicts ShapeNet in.
"""

from __future__ import annotations

import pandera.pandas as pa
import pyarrow

from stages.tables import TableSpec
from stages.voxel_codec import ENCODING

FRAME = "canonical"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What a quarantined entry failed on: its annotation (malformed fields, a path outside the
# release, a duplicate), Pix3D's own flags, or one of its three files.
QUARANTINE_KINDS = ("annotation", "truncated", "occluded", "image", "mask", "model")
_BBOX = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def _is_bytes() -> pa.Check:
    return pa.Check(lambda s: s.map(lambda v: isinstance(v, bytes)), name="is bytes")


def _is_png() -> pa.Check:
    return pa.Check(lambda s: s.map(lambda v: isinstance(v, bytes) and v[:8] == PNG_SIGNATURE), name="PNG bytes")


PIX3D = TableSpec(
    name="pix3d",
    arrow=pyarrow.schema(
        [
            ("image_id", pyarrow.string()),
            ("category", pyarrow.string()),
            ("synset", pyarrow.string()),
            ("class_name", pyarrow.string()),
            ("img", pyarrow.string()),
            ("model", pyarrow.string()),
            ("slightly_occluded", pyarrow.bool_()),
            ("width", pyarrow.int64()),
            ("height", pyarrow.int64()),
            *[(b, pyarrow.float64()) for b in _BBOX],
            ("size", pyarrow.int64()),
            ("background", pyarrow.int64()),
            ("image", pyarrow.binary()),
            ("frame", pyarrow.string()),
            ("resolution", pyarrow.int64()),
            ("encoding", pyarrow.string()),
            ("voxels", pyarrow.binary()),
            ("occupied", pyarrow.int64()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "image_id": pa.Column(str, pa.Check.str_length(min_value=1)),
            "category": pa.Column(str, pa.Check.str_length(min_value=1)),
            "synset": pa.Column(str, pa.Check.str_matches(r"^\d{8}$")),
            "class_name": pa.Column(str, pa.Check.str_length(min_value=1)),
            "img": pa.Column(str, pa.Check.str_length(min_value=1)),
            "model": pa.Column(str, pa.Check.str_length(min_value=1)),
            "slightly_occluded": pa.Column(bool),
            "width": pa.Column("int64", pa.Check.ge(1)),
            "height": pa.Column("int64", pa.Check.ge(1)),
            **{b: pa.Column("float64", pa.Check.ge(0)) for b in _BBOX},
            "size": pa.Column("int64", pa.Check.ge(1)),
            "background": pa.Column("int64", pa.Check.in_range(0, 255)),
            "image": pa.Column(object, _is_png()),
            "frame": pa.Column(str, pa.Check.isin([FRAME])),
            "resolution": pa.Column("int64", pa.Check.ge(1)),
            "encoding": pa.Column(str, pa.Check.isin([ENCODING])),
            "voxels": pa.Column(object, _is_bytes()),
            "occupied": pa.Column("int64", pa.Check.ge(1)),
        },
        checks=[
            pa.Check(lambda df: (df["bbox_x1"] < df["bbox_x2"]) & (df["bbox_y1"] < df["bbox_y2"]), name="x1 < x2, y1 < y2"),
            pa.Check(lambda df: (df["bbox_x2"] <= df["width"]) & (df["bbox_y2"] <= df["height"]), name="bbox inside the image"),
        ],
        unique=["image_id"],
        strict=True,
    ),
    doc="One row per usable Pix3D photograph. image_id: the img path without 'img/' and its "
    "extension (Pix2Vox's annotation key, e.g. 'chair/0011'); category: Pix3D's; synset, "
    "class_name: the ShapeNet class it is scored as; img, model: the paths in pix3d.json; width, "
    "height, bbox_*: the photograph's size and Pix3D's bounding box [x1, y1, x2, y2] in pixels; "
    "image: RGB PNG of size x size pixels, the object cut out by its mask over the grey "
    "`background`, cropped around the box as Pix2Vox does; voxels: the model voxelized in `frame` "
    "(see stages.pix3d_tables) as one plane [1, R, R, R] indexed [z, y, x], packbits-zlib-v1 "
    "(stages.voxel_codec); occupied: voxels set.",
)

PIX3D_QUARANTINE = TableSpec(
    name="pix3d_quarantine",
    arrow=pyarrow.schema(
        [
            ("index", pyarrow.int64()),
            ("img", pyarrow.string()),
            ("category", pyarrow.string()),
            ("model", pyarrow.string()),
            ("kind", pyarrow.string()),
            ("reason", pyarrow.string()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "index": pa.Column("int64", pa.Check.ge(0)),
            "img": pa.Column(str),
            "category": pa.Column(str),
            "model": pa.Column(str),
            "kind": pa.Column(str, pa.Check.isin(QUARANTINE_KINDS)),
            "reason": pa.Column(str, pa.Check.str_length(min_value=1)),
        },
        unique=["index"],
        strict=True,
    ),
    doc="One row per pix3d.json entry that could not be used. index: its position in the list "
    "(0-based); img, category, model: its fields as text ('' where absent); kind: one of "
    f"{', '.join(QUARANTINE_KINDS)}; reason: why, one line.",
)
