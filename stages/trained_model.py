"""A trained model file (`results/models/<name>/model.pt` or a step checkpoint) read back: its
spec, its family and the network with its weights."""

from __future__ import annotations

from .families import family_named
from .model_config import spec_from_saved
from .training import checkpoints


def load_model(path, device):
    """(spec, family, network in eval mode on `device`, checkpoint payload). Raises
    CheckpointError (missing, truncated or foreign file) or ModelConfigError (a spec this code
    cannot read), both naming the file."""
    payload = checkpoints.load(path, checkpoints.WEIGHTS, map_location=device)
    spec = spec_from_saved(payload["spec"], str(path))
    family = family_named(spec.family, str(path))
    model = family.build_model(spec)
    model.load_state_dict(payload["model"])
    return spec, family, model.to(device).eval(), payload
