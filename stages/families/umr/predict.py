"""UMR prediction from a user's photo: any size and orientation (stages.images.read_rgb), cropped
by `--bbox x1 y1 x2 y2` (0-based inclusive pixels) or the whole picture, then UMR's crop rules
(5 % padding, square, white fill, bilinear resize; stages.cub_crop). The mesh is the predicted
symmetric shape in the template frame (unitless: the template is a unit sphere deformed, no
metric scale) with a texture image: the UV flow sampled from the input (the texture UMR renders,
uint8 RGB, H x 2H pixels for the network's UV flow size), UVs from the template sphere (CMR's
spherical coordinates). stages.predict writes it, each file atomically: `--out <stem>.obj` as
`<stem>.obj`, `<stem>.mtl` (its `mtllib`) and `<stem>.png` (the .mtl's `map_Kd`) in the .obj's
folder, `--out <stem>.glb` as one file with the texture embedded. The material's diffuse colour is
white, so viewers show the texture as sampled (OBJ's Kd and glTF's baseColorFactor multiply it).
The predicted camera (scale, translation, quaternion w x y z; image = s R X + t in [-1, 1] crop
coordinates, y down) is printed."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...cub_crop import crop_example
from ...errors import StageError
from ...images import read_rgb
from ...models.umr import select_camera, spherical_uv
from ..base import Prediction


def add_arguments(parser) -> None:
    parser.add_argument("--image", required=True, help="a photo of one bird (any size, EXIF orientation applied)")
    parser.add_argument("--bbox", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                        help="the bird's box in pixels, 0-based inclusive (default: the whole picture)")


def crop_input(image: np.ndarray, bbox, size: int) -> np.ndarray:
    """float32 [3, size, size] in [0, 1]: UMR's crop of `image` (uint8 [H, W, 3]) around bbox
    (None: the whole picture). StageError for a box that is inverted, empty or leaves the picture."""
    h, w = image.shape[:2]
    box = np.array([0, 0, w - 1, h - 1] if bbox is None else bbox, dtype=np.float64)
    text = f"--bbox {' '.join(f'{v:g}' for v in box)}"
    if not (np.all(np.isfinite(box)) and box[0] < box[2] and box[1] < box[3]):
        raise StageError(f"{text}: needs X1 < X2 and Y1 < Y2 (a box with an area)")
    if not (0 <= box[0] and box[2] <= w - 1 and 0 <= box[1] and box[3] <= h - 1):
        raise StageError(f"{text} is not inside the {w}x{h} picture")
    crop = crop_example(image / 255.0, np.zeros((h, w)), box, np.zeros((15, 3)), size=size)
    return crop.image.transpose(2, 0, 1).astype(np.float32)


def texture_image(uv_flow: torch.Tensor, image: torch.Tensor) -> np.ndarray:
    """uint8 [H, 2H, 3]: the input image [3, S, S] sampled at the UV flow [2, H, 2H]."""
    grid = uv_flow.permute(1, 2, 0)[None]
    colours = F.grid_sample(image[None], grid, align_corners=False)[0]
    return (colours.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def textured_mesh(vertices: np.ndarray, faces: np.ndarray, sphere: np.ndarray, texture: np.ndarray):
    """A trimesh with TextureVisuals: UV of each vertex from its template-sphere position
    (spherical_uv, u along the texture's width, v down its height, mapped onto the texture's
    pixel centres as grid_sample's align_corners=True does); faces across the u seam get their
    own copies of the vertices with u shifted by one period (the texture repeats). The material
    is white (diffuse 1) with `texture` as its image."""
    import trimesh
    from PIL import Image

    uv = spherical_uv(sphere)  # [-1, 1]
    h, w = texture.shape[:2]
    faces = np.array(faces)
    verts, uvs = list(vertices), list(uv)
    for f, face in enumerate(faces):
        u = uv[face, 0]
        if u.max() - u.min() > 1.0:
            for c in range(3):
                if u[c] < 0:
                    verts.append(vertices[face[c]])
                    uvs.append(uv[face[c]] + np.array([2.0, 0.0]))
                    faces[f, c] = len(verts) - 1
    uvs = np.array(uvs)
    tex_u = ((uvs[:, 0] + 1) / 2 * (w - 1) + 0.5) / w
    tex_v = 1.0 - ((uvs[:, 1] + 1) / 2 * (h - 1) + 0.5) / h
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(texture), diffuse=(255, 255, 255, 255))
    visual = trimesh.visual.TextureVisuals(uv=np.stack([tex_u, tex_v], 1), material=material)
    return trimesh.Trimesh(np.array(verts), faces, visual=visual, process=False)


@torch.no_grad()
def predict(spec, model, args, device) -> Prediction:
    """The textured mesh of the bird in `--image` and its camera as a note."""
    picture = read_rgb(args.image)
    image = torch.from_numpy(crop_input(picture, args.bbox, spec.network.image_size))
    out = model(image[None].to(device))
    cam, chosen = select_camera(out.cams, out.cam_probs)
    texture = texture_image(out.uv_flow[0].float().cpu(), image)
    t = model.template
    # left faces are textured with their right mirror faces' samples (UMR's symmetric texture):
    # left vertices take their mirror's place on the UV sphere
    index = np.arange(len(t.vertices))
    source = np.where(index >= t.n_centre + t.n_pairs, t.mirror_vertex_index(), index)
    mesh = textured_mesh(out.vertices[0].float().cpu().numpy(), t.faces, t.vertices[source], texture)
    s, tx, ty, *q = (float(v) for v in cam[0].cpu())
    note = (f"camera: scale {s:.4f}, translation ({tx:.4f}, {ty:.4f}), quaternion (w x y z) "
            f"({q[0]:.4f}, {q[1]:.4f}, {q[2]:.4f}, {q[3]:.4f}), hypothesis {int(chosen[0])} "
            f"of {out.cams.shape[1]} with probability {float(out.cam_probs[0, chosen[0]]):.3f}")
    return Prediction(mesh, [note])
