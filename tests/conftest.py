"""Shared pytest fixtures."""

from pathlib import Path

import pytest

from mesh_fixtures import write_mesh_table


@pytest.fixture
def mesh_table(tmp_path) -> list[Path]:
    return write_mesh_table(tmp_path / "meshes")
