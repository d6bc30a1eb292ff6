"""Dataset statistics of a run: meshes per class, quarantined meshes with reasons, scenes per split.

Read from the pipeline's own tables (schema-checked by stages.tables), only the columns needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stages.tables import MESHES, QUARANTINE, SCENES, SPLITS, read_table, shard_files


@dataclass(frozen=True)
class DatasetStats:
    meshes_per_synset: dict[str, int]  # synset -> usable meshes
    quarantine: pd.DataFrame  # synset, mesh_id, source_path, reason
    scenes: pd.DataFrame  # dataset, split, scenes
    objects: pd.DataFrame  # dataset, split, synset, objects (scene objects of that class)
    missing_tables: list[str]  # tables with no shard under the results folder

    @property
    def synsets(self) -> list[str]:
        return sorted(set(self.meshes_per_synset) | set(self.quarantine["synset"]))

    def quarantined_per_synset(self) -> dict[str, int]:
        return self.quarantine.groupby("synset").size().astype(int).to_dict()

    def reasons(self) -> pd.Series:
        """Quarantined meshes per reason, most frequent first."""
        return self.quarantine.groupby("reason").size().sort_values(ascending=False, kind="stable")

    def datasets(self) -> list[str]:
        return sorted(self.scenes["dataset"].unique())

    def splits(self, dataset: str) -> list[str]:
        present = set(self.scenes.loc[self.scenes["dataset"] == dataset, "split"])
        return [s for s in SPLITS if s in present]


def _read(root: Path, spec, columns: list[str], missing: list[str]) -> pd.DataFrame:
    files = shard_files(root)
    if not files:
        missing.append(spec.name)
    return read_table(files, spec, columns=columns) if files else pd.DataFrame(columns=columns)


def read_dataset_stats(results: str | os.PathLike) -> DatasetStats:
    results = Path(results)
    missing: list[str] = []
    meshes = _read(results / "meshes", MESHES, ["synset"], missing)
    quarantine = _read(results / "quarantine", QUARANTINE, QUARANTINE.columns, missing)
    scenes = _read(results / "scenes", SCENES, ["dataset", "split", "mesh_labels"], missing)

    per_split = scenes.groupby(["dataset", "split"]).size().rename("scenes").reset_index()
    objects = scenes.explode("mesh_labels").rename(columns={"mesh_labels": "synset"})
    objects = objects.groupby(["dataset", "split", "synset"]).size().rename("objects").reset_index()
    return DatasetStats(
        meshes_per_synset=meshes.groupby("synset").size().astype(int).to_dict(),
        quarantine=quarantine.sort_values(["synset", "mesh_id"]).reset_index(drop=True),
        scenes=per_split,
        objects=objects,
        missing_tables=missing,
    )
