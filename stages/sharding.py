"""Stable assignment of items to shards, the unit of one Snakemake job."""

from __future__ import annotations

import hashlib
import math


def stable_hash(key: str) -> int:
    """A 64-bit hash of a string that is the same in every process and Python version."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def shard_of(key: str, num_shards: int) -> int:
    return stable_hash(key) % num_shards


def num_shards_for(count: int, shard_size: int) -> int:
    """Shards needed for `count` rows of at most `shard_size` each (at least one)."""
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size}")
    return max(1, math.ceil(count / shard_size))


def check_shard(shard: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise SystemExit(f"--shard must be in [0, {num_shards}), got {shard}")
