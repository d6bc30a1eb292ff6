"""Ground-truth TSDF volumes: fusion of depth frames, IOAR's 3-class labels, marching cubes, tables.

Modules: `fusion` (VolumeGrid, TSDFVolume, projection), `labels` (inner / surface / outer at
4, 8, 16 cm), `meshing` (marching cubes of the observed voxels), `tables` (TSDF_VOLUMES and its
quarantine). The stage that writes them is `stages.fuse_tsdf`.
"""
