"""Scene reconstruction metrics of the VoRTX/IOAR and TransformerFusion protocols.

Modules: `render` (a trimesh mesh -> depth map with K and camera-to-world, through
stages.rendering.rasterizer), `depth` (2D depth metrics), `mesh` (accuracy, completeness,
precision, recall, F-score), `protocols` (VoRTX's culling by re-fusion and TransformerFusion's
sampling and occlusion filter), `__main__` (the stage CLI).
"""
