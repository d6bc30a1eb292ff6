"""The 13 ShapeNetCore classes used by 3D-R2N2 and CoReNet: real synset ids and names."""

from __future__ import annotations

# Ordered by synset id, as ShapeNet lists them.
SYNSETS: dict[str, str] = {
    "02691156": "airplane",
    "02828884": "bench",
    "02933112": "cabinet",
    "02958343": "car",
    "03001627": "chair",
    "03211117": "display",
    "03636649": "lamp",
    "03691459": "speaker",
    "04090263": "rifle",
    "04256520": "sofa",
    "04379243": "table",
    "04401088": "telephone",
    "04530566": "watercraft",
}

NAME_TO_SYNSET: dict[str, str] = {name: synset for synset, name in SYNSETS.items()}


def class_name(synset: str) -> str:
    """The class name of a synset id; unknown synsets keep their id as name."""
    return SYNSETS.get(synset, synset)


def resolve_synset(name_or_id: str) -> str:
    """Accept either a class name ("chair") or a synset id ("03001627")."""
    if name_or_id in SYNSETS:
        return name_or_id
    if name_or_id in NAME_TO_SYNSET:
        return NAME_TO_SYNSET[name_or_id]
    known = ", ".join(NAME_TO_SYNSET)
    raise ValueError(f"unknown class {name_or_id!r}; known classes: {known}")
