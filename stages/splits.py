"""Train/val/test splits by mesh, so that no test mesh is ever seen in training."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stages.sharding import stable_hash


@dataclass(frozen=True)
class SplitFractions:
    train: float = 0.8
    val: float = 0.1

    def __post_init__(self):
        if not (0 < self.train < 1 and 0 <= self.val < 1 and self.train + self.val < 1):
            raise ValueError(f"bad split fractions train={self.train} val={self.val}")


def assign_mesh_splits(meshes: pd.DataFrame, fractions: SplitFractions) -> pd.Series:
    """One split per (synset, mesh_id) row.

    Per class, meshes are ordered by a stable hash of their id (not by the seed, so the split is
    the same in every run and for every scene dataset), then cut by the fractions. Classes with
    at least three meshes always get one val and one test mesh, so tiny corpora still test every
    class.
    """
    split = pd.Series("train", index=meshes.index, dtype=object)
    for _, group in meshes.groupby("synset", sort=True):
        order = sorted(group.index, key=lambda i: stable_hash(f"split/{meshes.at[i, 'synset']}/{meshes.at[i, 'mesh_id']}"))
        n = len(order)
        n_train = int(round(n * fractions.train))
        n_val = int(round(n * fractions.val))
        if n >= 3:
            n_val = max(1, n_val)
            n_train = min(n_train, n - n_val - 1)
        for position, index in enumerate(order):
            if position < n_train:
                split[index] = "train"
            elif position < n_train + n_val:
                split[index] = "val"
            else:
                split[index] = "test"
    return split
