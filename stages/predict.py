"""Reconstruct a mesh from your own image(s) with a trained model.

    python -m stages.predict --model results/models/h5/model.pt --image photo.png --out mesh.obj

The image is centre-cropped to a square and resized to the model's input; CoReNet models assume
CoReNet's camera (60 degrees, looking at the unit cube from (0.5, 0.5, -0.8667)) unless
--camera gives a 4x4 reconstruction-to-image matrix (.npy or a text file of 16 numbers).
3D-R2N2 models take any number of --image views. The predicted occupancy (probability of not
being void) is meshed by marching cubes at --level and written with trimesh (.obj, .ply, .glb,
.stl, .off) in reconstruction space (the unit cube).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from . import checkpoints
from .camera import corenet_camera_transform
from .model_config import ModelConfigError, spec_from_saved
from .torch_device import DEVICE_CHOICES, resolve_device

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".stl", ".off")


class PredictError(ValueError):
    pass


def load_image(path: str | Path, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: centre square crop, resized; transparent pixels become white."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
            img = img.convert("RGB")
    except FileNotFoundError:
        raise PredictError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as err:
        raise PredictError(f"{path}: not a readable image ({err})") from None
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.array(img)


def load_camera(path: str | Path | None) -> np.ndarray:
    if path is None:
        return corenet_camera_transform().astype(np.float32)
    path = Path(path)
    try:
        matrix = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
    except (OSError, ValueError) as err:
        raise PredictError(f"{path}: not a readable camera matrix ({err})") from None
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.size != 16:
        raise PredictError(f"{path}: a camera is a 4x4 matrix, found {matrix.size} numbers")
    return matrix.reshape(4, 4)


def occupancy_to_mesh(probability: np.ndarray, level: float):
    """Marching cubes on a [D, H, W] ([z, y, x]) occupancy grid -> trimesh in the unit cube."""
    import trimesh
    from skimage.measure import marching_cubes

    grid = np.pad(np.asarray(probability, dtype=np.float32), 1)  # closed surfaces at the border
    if grid.max() < level:
        raise PredictError(f"the model predicts no occupied voxel at level {level}")
    verts, faces, _, _ = marching_cubes(grid, level=level)
    resolution = np.array(probability.shape, dtype=np.float64)
    # marching_cubes returns (z, y, x) in padded voxel-centre units: voxel k's centre is k + 0.5
    zyx = (verts - 1 + 0.5) / resolution
    return trimesh.Trimesh(vertices=zyx[:, ::-1], faces=faces[:, ::-1], process=False)


def predict_occupancy(payload: dict, images: list[str], camera_path: str | None, device) -> np.ndarray:
    spec = spec_from_saved(payload["spec"])
    if spec.family == "corenet":
        from .corenet_task import build_model, predict_probabilities

        if len(images) != 1:
            raise PredictError(f"{spec.name} is a single-image model; give exactly one --image")
        model = build_model(spec)
        model.load_state_dict(payload["model"])
        model.to(device).eval()
        image = torch.from_numpy(load_image(images[0], spec.input_size)).permute(2, 0, 1)[None].float().div(255)
        camera = torch.from_numpy(load_camera(camera_path))[None]
        probs = predict_probabilities(model, image.to(device), camera.to(device), spec.eval_resolution // spec.resolution)
        return (1 - probs[0, 0]).cpu().numpy()
    if spec.family == "r2n2":
        from . import r2n2_task

        if camera_path is not None:
            raise PredictError("3D-R2N2 models do not take a camera")
        return r2n2_task.predict_occupancy(payload, [load_image(p, 137) for p in images], device)
    raise PredictError(f"unknown model family {spec.family!r}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model.pt (or checkpoint) written by stages.train")
    p.add_argument("--image", action="append", required=True, help="input image; repeat for multi-view models")
    p.add_argument("--camera", help="4x4 reconstruction-to-image matrix (.npy or text); default CoReNet's camera")
    p.add_argument("--out", required=True, help=f"mesh file ({', '.join(MESH_SUFFIXES)})")
    p.add_argument("--level", type=float, default=0.5, help="occupancy probability of the surface")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        if out.suffix.lower() not in MESH_SUFFIXES:
            raise PredictError(f"{out}: unsupported mesh format; use one of {', '.join(MESH_SUFFIXES)}")
        device = resolve_device(args.device)
        payload = checkpoints.load(args.model, checkpoints.WEIGHTS, map_location=device)
        occupancy = predict_occupancy(payload, args.image, args.camera, device)
        mesh = occupancy_to_mesh(occupancy, args.level)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
        mesh.export(tmp)
        tmp.replace(out)
    except (PredictError, ModelConfigError, checkpoints.CheckpointError) as err:
        print(f"predict: {err}", file=sys.stderr)
        return 2
    print(f"{out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
