"""Procedural ShapeNet-like meshes for the embedded default (no licence or download needed).

``parts`` builds closed, outward-wound primitives; ``classes`` turns them into one parametric
generator per ShapeNet class and documents the orientation convention they share.
"""

from stages.synthetic.classes import GENERATORS, generate_mesh, generator_name, normalize

__all__ = ["GENERATORS", "generate_mesh", "generator_name", "normalize"]
