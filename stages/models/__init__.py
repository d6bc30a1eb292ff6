"""Neural network models: encoders, decoders and losses, one idea per module.

`resnet` (2D image encoder), `ray_traced_skip` (CoReNet's image-to-voxel skip connection),
`corenet` (the CoReNet model family), `losses` (soft-IoU and cross-entropy losses), and the
3D-R2N2 family in `r2n2`.
"""
