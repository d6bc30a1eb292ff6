"""A trained model file (`results/models/<name>/model.pt` or a step checkpoint) read back: its
spec, its family and the network with its weights."""

from __future__ import annotations

from .families import family_named
from .model_config import spec_from_saved
from .training import checkpoints


def load_model(path, device):
    """(spec, family, network in eval mode on `device`, checkpoint payload). Raises
    CheckpointError (missing, truncated or foreign file, or weights of another version of the
    network) or ModelConfigError (a spec this code cannot read), both naming the file."""
    payload = checkpoints.load(path, checkpoints.WEIGHTS, map_location=device)
    spec = spec_from_saved(payload["spec"], str(path))
    family = family_named(spec.family, str(path))
    model = family.build_model(spec)
    try:
        fit = model.load_state_dict(payload["model"], strict=False)
    except RuntimeError as err:  # same names, other shapes
        first = str(err).strip().splitlines()[-1].strip()
        raise checkpoints.CheckpointError(f"{path}: its weights do not fit this version's {spec.family} network "
                                          f"({first}); retrain it") from None
    if fit.missing_keys or fit.unexpected_keys:
        missing, extra = sorted(fit.missing_keys), sorted(fit.unexpected_keys)
        raise checkpoints.CheckpointError(
            f"{path}: its weights do not fit this version's {spec.family} network ({len(missing)} tensors "
            f"missing{', e.g. ' + missing[0] if missing else ''}; {len(extra)} unknown"
            f"{', e.g. ' + extra[0] if extra else ''}): it was saved by another version; retrain it")
    return spec, family, model.to(device).eval(), payload
