"""CoReNet prediction from a user's photo: one image (and optionally a camera) -> a mesh of the
predicted occupancy in reconstruction space (the unit cube)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...camera import corenet_camera_transform
from ...errors import StageError
from ...occupancy_mesh import occupancy_to_mesh
from ...user_images import load_image
from ..base import Prediction
from .task import predict_probabilities


def add_arguments(parser) -> None:
    parser.add_argument("--image", action="append", required=True, help="the input image (one)")
    parser.add_argument("--camera", help="4x4 reconstruction-to-image matrix (.npy or text); default CoReNet's "
                        "camera (60 degrees, looking at the unit cube from (0.5, 0.5, -0.8667))")
    parser.add_argument("--level", type=float, default=0.5, help="occupancy probability of the surface")


def load_camera(path: str | Path | None) -> np.ndarray:
    """float32 [4, 4] reconstruction-to-image matrix from .npy or text; CoReNet's camera for None."""
    if path is None:
        return corenet_camera_transform().astype(np.float32)
    path = Path(path)
    try:
        matrix = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path)
    except (OSError, ValueError) as err:
        raise StageError(f"{path}: not a readable camera matrix ({' '.join(str(err).split())})") from None
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.size != 16:
        raise StageError(f"{path}: a camera is a 4x4 matrix, found {matrix.size} numbers")
    return matrix.reshape(4, 4)


def predict(spec, model, args, device):
    """The mesh of P(not void) at `--level` from one `--image`."""
    if len(args.image) != 1:
        raise StageError(f"{spec.name} is a single-image model; give exactly one --image")
    image = torch.from_numpy(load_image(args.image[0], spec.input_size)).permute(2, 0, 1)[None].float().div(255)
    camera = torch.from_numpy(load_camera(args.camera))[None]
    probs = predict_probabilities(model, image.to(device), camera.to(device), spec.eval_resolution // spec.resolution)
    return Prediction(occupancy_to_mesh((1 - probs[0, 0]).cpu().numpy(), args.level))
