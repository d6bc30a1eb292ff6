"""Stages of the 3D reconstruction pipeline: one module per stage with a CLI, plus shared libraries."""
