"""CPU renderer for the input images of every scene (CoReNet-style low and high realism)."""

from stages.rendering.environment import HighRealismLook, sample_look
from stages.rendering.rasterizer import project_and_clip, rasterize
from stages.rendering.shading import SceneObject, render_object_ids, render_scene

__all__ = [
    "HighRealismLook",
    "SceneObject",
    "project_and_clip",
    "rasterize",
    "render_object_ids",
    "render_scene",
    "sample_look",
]
