"""Reconstruct from your own input with a trained model:

    python -m stages.predict --model results/models/h5/model.pt --image photo.png --out chair.obj

What a model takes depends on its family (`--help` with a `--model` lists it): CoReNet models one
`--image` (and optionally `--camera`, a 4x4 reconstruction-to-image matrix), 3D-R2N2 models any
number of `--image` views. Meshes are written with trimesh (.obj, .ply, .glb, .stl, .off),
atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .atomic import atomic_path
from .cli import run
from .errors import StageError
from .torch_device import DEVICE_CHOICES, resolve_device
from .trained_model import load_model

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".stl", ".off")


def parser(family=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model.pt (or checkpoint) written by stages.train")
    p.add_argument("--out", required=True, help=f"mesh file ({', '.join(MESH_SUFFIXES)})")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    if family is not None:
        family.add_predict_arguments(p)
    return p


def main(argv=None) -> int:
    first, _ = parser().parse_known_args(argv)
    out = Path(first.out)
    if out.suffix.lower() not in MESH_SUFFIXES:
        raise StageError(f"{out}: unsupported mesh format; use one of {', '.join(MESH_SUFFIXES)}")
    device = resolve_device(first.device)
    spec, family, model, _ = load_model(first.model, device)
    args = parser(family).parse_args(argv)
    prediction = family.predict(spec, model, args, device)
    with atomic_path(out) as tmp:
        prediction.mesh.export(tmp, file_type=out.suffix.lower().lstrip("."))
    for note in prediction.notes:
        print(note, file=sys.stderr)
    print(f"{out}: {len(prediction.mesh.vertices)} vertices, {len(prediction.mesh.faces)} faces", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
