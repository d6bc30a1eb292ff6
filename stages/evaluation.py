"""What every family's evaluation shares: the model fields of summary.json, and atomic writers
for its JSON summary and qualitative PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import atomic_write


def summary_fields(spec, payload: dict, device) -> dict:
    """What every summary.json says about the model it scores (the metrics come beside it)."""
    return {
        "model": spec.name,
        "family": spec.family,
        "task": spec.task,
        "dataset": spec.dataset,
        "realism": spec.realism,
        "scale": spec.scale,
        "native_resolution": spec.resolution,
        "eval_resolution": spec.eval_resolution,
        "paper_mean_iou": spec.paper_mean_iou,
        "paper_source": spec.paper_source,
        "checkpoint_step": int(payload.get("step", 0)),
        "examples_seen": int(payload.get("examples", 0)),
        "device": str(device),
    }


def write_json(path: str | Path, data: dict) -> None:
    """`data` as indented JSON (with a final newline), atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def write_png(path: str | Path, image: np.ndarray) -> None:
    """A uint8 image [H, W, 3] (or [H, W]) as PNG, atomically."""
    from PIL import Image

    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
