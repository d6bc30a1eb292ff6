"""Training checkpoints: written atomically, found by step, loaded with weights_only=True.

A checkpoint is a plain dict of tensors and primitive values (no pickled classes), so
`torch.load(..., weights_only=True)` reads it. `kind` says what it holds: "recon3d-checkpoint"
(model + optimizer + progress, to resume) or "recon3d-model" (the final weights + the spec).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..errors import StageError

FORMAT = 1
STEP_FILE = re.compile(r"step-(\d{9})\.pt$")
# The kinds a trained model can be read from (evaluation, prediction): final weights or a checkpoint.
WEIGHTS = ("recon3d-model", "recon3d-checkpoint")


class CheckpointError(StageError):
    """A checkpoint file that is missing, truncated, foreign or of another kind; names the file."""


def save(path: str | Path, payload: dict) -> Path:
    """Write `payload` (plus the format number) to `path` atomically: a crash or a full disk
    leaves the previous file, never a partial one under the final name. A failed write raises
    OSError naming `path` (torch's own writer reports only `RuntimeError: ... unexpected pos`)."""

    def write(tmp: Path) -> None:
        try:
            with open(tmp, "wb") as f:  # through Python's file, so a failed write keeps its errno
                torch.save({"format": FORMAT, **payload}, f)
        except (OSError, RuntimeError) as err:
            cause = err if isinstance(err, OSError) else err.__context__
            if isinstance(cause, OSError) and cause.errno is not None:
                raise OSError(cause.errno, f"could not write the checkpoint: {cause.strerror}", str(path)) from None
            raise

    return atomic_write(path, write)


def step_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step-{step:09d}.pt"


def latest(directory: str | Path) -> Path | None:
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = sorted(p for p in directory.iterdir() if STEP_FILE.search(p.name))
    return found[-1] if found else None


def prune(directory: str | Path, keep: int) -> None:
    """Keep the newest `keep` step checkpoints."""
    found = sorted(p for p in Path(directory).iterdir() if STEP_FILE.search(p.name))
    for old in found[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)


def load(path: str | Path, kinds: tuple[str, ...], map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {first_line})") from None
    if not isinstance(payload, dict) or payload.get("kind") not in kinds:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: expected a checkpoint of kind {' or '.join(kinds)}, found {found!r}")
    if payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {payload.get('format')}, this code reads {FORMAT}")
    return payload
