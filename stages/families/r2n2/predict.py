"""3D-R2N2 prediction from a user's photos: any number of views -> a mesh of the predicted
occupancy (32^3, the canonical ShapeNetVox32 frame, in the unit cube)."""

from __future__ import annotations

from ...occupancy_mesh import occupancy_to_mesh
from ...user_images import load_image
from ..base import Prediction
from .task import predict_occupancy, preprocessing

VIEW_SIZE = 137  # ShapeNetRendering's image side; the test preprocessing crops the centre 127


def add_arguments(parser) -> None:
    parser.add_argument("--image", action="append", required=True, help="an input view; repeat for more views")
    parser.add_argument("--level", type=float, default=0.5, help="occupancy probability of the surface")


def predict(spec, model, args, device) -> Prediction:
    """The mesh of the occupancy probability at `--level` from the `--image` views, in order."""
    images = [load_image(path, VIEW_SIZE) for path in args.image]
    return Prediction(occupancy_to_mesh(predict_occupancy(model, images, device, preprocessing(spec)), args.level))
