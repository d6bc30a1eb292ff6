"""Where the mesh names were imported from before they were split up; kept so that importers keep
working. The mesh type, its error and checks live in stages.formats.mesh, loading by extension in
stages.formats.load."""

from stages.formats.load import MESH_SUFFIXES, load_mesh
from stages.formats.mesh import MeshError, TriangleMesh, drop_unused_vertices, triangles, validate_mesh

__all__ = ["MESH_SUFFIXES", "MeshError", "TriangleMesh", "drop_unused_vertices", "load_mesh", "triangles", "validate_mesh"]
