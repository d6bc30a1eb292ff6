"""Stage `synthesize`: a procedural ShapeNetCore.v2-like corpus for the embedded default.

    python -m stages.synthesize --out DIR --per-class N --seed S [--classes chair 04379243 ...]

writes, for every requested class (default: all 13 of 3D-R2N2 / CoReNet),

    DIR/<synset>/<model_id>/models/model_normalized.obj    triangle mesh, bbox-centred, diagonal 1
    DIR/<synset>/<model_id>/models/model_normalized.json   {"id", "numVertices", "min", "max", "centroid"}
    DIR/taxonomy.json                                      [{"synsetId", "name", "children", "numInstances"}]

so the real ShapeNet converter runs on it unchanged. Orientation follows ShapeNetCore.v2: +y up,
front towards -z (see ``stages.synthetic.classes``).

Reproducibility: a mesh and its model id depend only on (seed, synset, index) -- not on
--per-class or on the other classes requested -- so the same seed gives the same corpus byte for
byte, and a larger corpus extends a smaller one. Every file is written atomically and
taxonomy.json last, so an interrupted run leaves no half-written file and no taxonomy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stages.atomic import write_text
from stages.cli import run
from stages.formats.obj import write_obj
from stages.synthetic import generate_mesh, generator_name
from stages.taxonomy import SYNSETS, class_name, resolve_synset

# Versioned so that a change to how ids and random streams are derived is a deliberate one.
_NAMESPACE = "stages.synthesize/v1"


def _digest(seed: int, synset: str, index: int) -> bytes:
    return hashlib.sha256(f"{_NAMESPACE}:{int(seed)}:{synset}:{int(index)}".encode()).digest()


def model_id(seed: int, synset: str, index: int) -> str:
    """The 32-hex-digit model id of mesh ``index`` of ``synset`` under ``seed``."""
    return _digest(seed, synset, index)[:16].hex()


def mesh_rng(seed: int, synset: str, index: int) -> np.random.Generator:
    """The random stream that draws mesh ``index`` of ``synset`` under ``seed``."""
    # The second half of the digest seeds the stream, so the id leaks nothing about it and
    # neither depends on how many meshes or classes a run asks for.
    entropy = int.from_bytes(_digest(seed, synset, index)[16:], "big")
    return np.random.default_rng(np.random.SeedSequence(entropy))


def resolve_classes(classes: Sequence[str] | None) -> list[str]:
    """Synset ids for class names or ids, deduplicated, in ShapeNet (synset) order."""
    if classes is None:
        return list(SYNSETS)
    wanted = {resolve_synset(c) for c in classes}
    if not wanted:
        raise ValueError("no classes requested")
    return [s for s in SYNSETS if s in wanted]


def _model_json(mid: str, vertices: np.ndarray) -> dict:
    # Rounded like the OBJ's coordinates so the two files agree; the centroid is the vertex mean.
    # Adding 0.0 turns -0.0 into 0.0, which would otherwise print as "-0.0".
    def vec(x):
        return [round(float(c), 6) + 0.0 for c in x]

    return {
        "id": mid,
        "numVertices": int(len(vertices)),
        "min": vec(vertices.min(axis=0)),
        "max": vec(vertices.max(axis=0)),
        "centroid": vec(vertices.mean(axis=0)),
    }


def synthesize(out_dir: str | os.PathLike, per_class: int, seed: int,
               classes: Sequence[str] | None = None, *, progress: bool = True) -> list[Path]:
    """Write ``per_class`` meshes for each class into ``out_dir`` in ShapeNetCore.v2 layout.

    ``classes`` takes names ("chair") or synset ids; None means all 13. Returns the OBJ paths in
    the order written (synset order, then index).
    """
    if int(per_class) < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    synsets = resolve_classes(classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    bar = tqdm(total=len(synsets) * per_class, desc="synthesize", unit="mesh", file=sys.stderr,
               disable=not progress)
    with bar:
        for synset in synsets:
            source = generator_name(synset)
            for index in range(per_class):
                mid = model_id(seed, synset, index)
                vertices, faces = generate_mesh(synset, mesh_rng(seed, synset, index))
                models = out / synset / mid / "models"
                models.mkdir(parents=True, exist_ok=True)
                obj_path = models / "model_normalized.obj"
                header = (f"synthetic {class_name(synset)} ({synset}) from {source}\n"
                          f"stages.synthesize seed={seed} index={index} model_id={mid}\n"
                          "+y up, front -z, bounding box centred at the origin with diagonal 1")
                write_obj(obj_path, vertices, faces, header=header)
                meta = json.dumps(_model_json(mid, vertices), indent=2) + "\n"
                write_text(models / "model_normalized.json", meta)
                written.append(obj_path)
                bar.update(1)
    taxonomy = [{"synsetId": s, "name": class_name(s), "children": [], "numInstances": int(per_class)}
                for s in synsets]
    write_text(out / "taxonomy.json", json.dumps(taxonomy, indent=2) + "\n")
    return written


def _parser() -> argparse.ArgumentParser:
    known = ", ".join(f"{name} ({synset})" for synset, name in SYNSETS.items())
    p = argparse.ArgumentParser(
        prog="python -m stages.synthesize",
        description="Write a procedural ShapeNetCore.v2-like corpus (OBJ + JSON per model, "
                    "taxonomy.json) for the embedded default run.",
    )
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output root; receives DIR/<synset>/<model_id>/models/model_normalized.{obj,json} "
                        "and DIR/taxonomy.json")
    p.add_argument("--per-class", type=int, default=10, metavar="N",
                   help="meshes per class, at least 1 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="corpus seed; each mesh depends only on (seed, synset, index) (default: %(default)s)")
    p.add_argument("--classes", nargs="+", metavar="CLASS", default=None,
                   help=f"class names or synset ids to write (default: all 13): {known}")
    p.add_argument("--no-progress", action="store_true", help="do not draw the progress bar on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.per_class < 1:
        raise SystemExit(f"synthesize: --per-class must be at least 1, got {args.per_class}")
    try:
        classes = resolve_classes(args.classes)
    except ValueError as err:
        raise SystemExit(f"synthesize: {err}") from None
    paths = synthesize(args.out, args.per_class, args.seed, classes, progress=not args.no_progress)
    print(f"synthesize: wrote {len(paths)} meshes in {len(classes)} classes to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
