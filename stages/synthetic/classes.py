"""One parametric generator per ShapeNet class used by 3D-R2N2 and CoReNet.

Orientation convention (every class, every draw), the one ShapeNetCore.v2 documents for its
aligned ``model_normalized.obj`` files:

* +y is up; the object stands on (or, for airplanes, rests above) the plane of its lowest point.
* The front faces -z: the side a person sits on (chair, bench, sofa), the screen (display,
  telephone), the drivers (speaker), the doors (cabinet), the nose or bow (airplane, car,
  watercraft), the muzzle (rifle), the direction a lamp's arm reaches. Tables and round things
  have no preferred front and are built symmetric.
* The y-z plane (x = 0) is the plane of bilateral symmetry; right-handed coordinates.

Normalisation copies ``model_normalized.obj``: the axis-aligned bounding box is centred at the
origin and scaled uniformly so that its diagonal has length 1.

Each generator takes a ``numpy.random.Generator`` and draws its proportions and optional parts
from it, so one generator yields chairs with and without arms, office and four-legged, tall and
squat backs, and so on. Parts overlap and intersect as in ShapeNet's CAD models.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import stages.synthetic.devices as devices
import stages.synthetic.furniture as furniture
import stages.synthetic.handheld as handheld
import stages.synthetic.vehicles as vehicles
from stages.synthetic.parts import Mesh
from stages.taxonomy import SYNSETS

Generator = Callable[[np.random.Generator], Mesh]

GENERATORS: dict[str, Generator] = {
    "02691156": vehicles.airplane,
    "02828884": furniture.bench,
    "02933112": furniture.cabinet,
    "02958343": vehicles.car,
    "03001627": furniture.chair,
    "03211117": devices.display,
    "03636649": devices.lamp,
    "03691459": devices.speaker,
    "04090263": handheld.rifle,
    "04256520": furniture.sofa,
    "04379243": furniture.table,
    "04401088": handheld.telephone,
    "04530566": vehicles.watercraft,
}

assert set(GENERATORS) == set(SYNSETS), "every ShapeNet class needs exactly one generator"


def generator_name(synset: str) -> str:
    """Dotted name of the function that builds ``synset`` (written into OBJ headers)."""
    fn = _generator(synset)
    return f"{fn.__module__}.{fn.__qualname__}"


def _generator(synset: str) -> Generator:
    try:
        return GENERATORS[synset]
    except KeyError:
        raise ValueError(f"no generator for synset {synset!r}") from None


def normalize(mesh: Mesh) -> Mesh:
    """Centre the bounding box at the origin and scale its diagonal to 1 (ShapeNetCore.v2)."""
    v, f = mesh
    lo, hi = v.min(axis=0), v.max(axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    if not diagonal > 0:
        raise ValueError("cannot normalise a mesh with an empty bounding box")
    return (v - (lo + hi) / 2.0) / diagonal, f


def generate_mesh(synset: str, rng: np.random.Generator) -> Mesh:
    """One normalised mesh of class ``synset`` drawn with ``rng``: (vertices [N,3] float64,
    faces [M,3] int64, outward-wound triangles)."""
    v, f = _generator(synset)(rng)
    return normalize((np.ascontiguousarray(v, dtype=np.float64), np.ascontiguousarray(f, dtype=np.int64)))
