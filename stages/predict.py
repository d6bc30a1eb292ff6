"""Reconstruct from your own input with a trained model:

    python -m stages.predict --model results/models/h5/model.pt --image photo.png --out chair.obj

What a model takes depends on its family (`--help` with a `--model` lists it): CoReNet models one
`--image` (and optionally `--camera`, a 4x4 reconstruction-to-image matrix), 3D-R2N2 models any
number of `--image` views. Meshes are written with trimesh (.obj, .ply, .glb, .stl, .off), in the
family's output frame and units, each file atomically (a temporary name in the same folder, then a
rename). A textured mesh (UMR's) written as `<stem>.obj` comes with `<stem>.mtl` (its material,
named by the .obj's `mtllib`) and `<stem>.png` (the texture image, named by the .mtl's `map_Kd`)
beside it, so predictions into one folder keep their own textures; `.glb` embeds the texture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import atomic
from .cli import parse_ahead, run
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


def write_obj(mesh, out: Path, protect=()) -> list[Path]:
    """Write `mesh` (a trimesh.Trimesh) as the Wavefront OBJ `out`; a textured mesh's material goes to
    `<stem>.mtl` and its texture image to `<stem>.<image format>` (.png for UMR) beside it. Every
    file is written atomically, the image first and the .obj last, so an .obj never names a file
    that is missing. Returns the files written, the .obj last. Raises StageError, before writing
    anything, when one of those files is in `protect` (the prediction's inputs)."""
    from trimesh.exchange.obj import export_obj

    material = getattr(mesh.visual, "material", None)
    if material is not None:
        mesh = mesh.copy()
        material = material.to_simple() if hasattr(material, "to_simple") else material
        material.name = out.stem  # names the material and, in trimesh's .mtl, its image `<stem>.<ext>`
        mesh.visual.material = material
    text, files = export_obj(mesh, return_texture=True, mtl_name=f"{out.stem}.mtl")
    for name in files:
        if Path(name).name != name or Path(name).stem != out.stem:
            raise StageError(f"{out}: trimesh named a material file {name!r}, expected {out.stem}.<ext>")
    mtl = f"{out.stem}.mtl"
    _refuse_inputs([out.with_name(name) for name in files] + [out], protect)
    written = [atomic.write_bytes(out.with_name(name), data) for name, data in files.items() if name != mtl]
    if mtl in files:
        written.append(atomic.write_bytes(out.with_name(mtl), files[mtl]))
    written.append(atomic.write_text(out, text))
    return written


def _refuse_inputs(targets, protect) -> None:
    inputs = {Path(p).resolve() for p in protect}
    for target in targets:
        if Path(target).resolve() in inputs:
            raise StageError(f"{target}: is an input of this prediction and would be overwritten; choose another --out")


def input_files(args) -> list[Path]:
    """The existing files named by the parsed arguments (the model, the images, ...)."""
    found = []
    for value in vars(args).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, Path)) and str(item) and Path(item).is_file():
                found.append(Path(item))
    return found


def write_mesh(mesh, out: Path, protect=()) -> list[Path]:
    """Write `mesh` to `out` in the format of its suffix (MESH_SUFFIXES), atomically; .obj through
    write_obj (with a textured mesh's .mtl and image beside it), the others as one file. Returns
    the files written, `out` last. Raises StageError when a file to write is in `protect`."""
    suffix = out.suffix.lower()
    if suffix == ".obj":
        return write_obj(mesh, out, protect)
    _refuse_inputs([out], protect)
    with atomic.atomic_path(out) as tmp:
        mesh.export(tmp, file_type=suffix.lstrip("."))
    return [out]


def main(argv=None) -> int:
    first = parse_ahead(parser(), argv)
    wants_help = any(a in ("-h", "--help") for a in (sys.argv[1:] if argv is None else argv))
    if first.out and not wants_help and Path(first.out).suffix.lower() not in MESH_SUFFIXES:
        raise StageError(f"{first.out}: unsupported mesh format; use one of {', '.join(MESH_SUFFIXES)}")
    spec = family = model = None
    device = resolve_device(first.device or "auto")
    if first.model:
        spec, family, model, _ = load_model(first.model, device)
    args = parser(family).parse_args(argv)  # --help lists the family's inputs once the model is known
    out = Path(args.out)
    prediction = family.predict(spec, model, args, device)
    written = write_mesh(prediction.mesh, out, protect=input_files(args))
    for note in prediction.notes:
        print(note, file=sys.stderr)
    if getattr(prediction.mesh.visual, "kind", None) == "texture" and out.suffix.lower() not in (".obj", ".glb"):
        print(f"{out}: {out.suffix} keeps no texture; write .obj or .glb for the textured mesh", file=sys.stderr)
    beside = f" (with {', '.join(p.name for p in written[:-1])})" if len(written) > 1 else ""
    print(f"{out}: {len(prediction.mesh.vertices)} vertices, {len(prediction.mesh.faces)} faces{beside}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
