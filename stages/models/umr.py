"""UMR's network (Li et al., ECCV 2020; NVlabs/UMR nnutils/cub_mesh.py, built on CMR): image ->
symmetric icosphere deformation, K camera hypotheses with probabilities, and a UV texture flow.

Sizes come from a `UMRConfig` (stages.models.configs); `PAPER` is the original's (ResNet-18, 256 px, level-3 icosphere,
8 hypotheses, 6x6 texture samples per face, UV flow 128 x 256) and `SMALL` a CPU-trainable one.

Coordinates: the mesh lives in its own 3D frame; `orthographic_project` maps it with a camera
[s, tx, ty, qw, qx, qy, qz] to s * R(q) X + t (geom_utils.orthographic_proj_withz), x right and y
**down** in [-1, 1] image coordinates (CMR's keypoint convention), z = s * (R X)_z + offset_z.
`to_ndc` negates y for the soft rasterizer (y up), as UMR's smr.py does before calling SoftRas.

Deliberate differences from the original, each for a stated reason:

* On-plane template vertices have their mirror coordinate fixed to 0 after deformation, so the
  predicted mesh is exactly mirror symmetric (UMR lets them drift off the plane).
* The T x T texture samples of a face are the centroids of SoftRas's R x R "surface" texture
  cells (see `stages.rendering.soft_rasterizer.sample_texture`), so sample k is the colour the
  rasterizer draws for cell k. UMR reuses CMR/NMR's sampler (grid corners alpha, beta in
  {0, 1/(T-1), ..., 1}, half of them outside the face, indexed transposed to SoftRas's lookup).
* The input image is sampled with align_corners=False, so a texture-flow value and a projected
  vertex with the same coordinates name the same image point (pixel c's centre is
  (2c + 1 - S) / S in both, the soft rasterizer's convention); UMR samples with torch 1.1's
  align_corners=True behaviour, half a pixel off its renders. The UV flow map itself is sampled
  with align_corners=True, as in the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from torch import nn

from stages.models.configs import ResNetConfig, UMRConfig
from stages.models.resnet import ResNetEncoder


# --------------------------------------------------------------------------- template


@dataclass(frozen=True)
class SymmetricTemplate:
    """An icosphere reordered for mirror symmetry about the plane x_axis = 0 (UMR's
    utils/mesh.py make_symmetric): vertices [centre (on the plane), right (> 0), left (< 0)],
    left[i] the mirror of right[i]; faces [independent (mapped onto themselves by the mirror),
    right, left], left[j] the mirror of right[j] with corners in the same order.

    vertices: [V, 3] float64 on the unit sphere; faces: [F, 3] int64."""

    vertices: np.ndarray
    faces: np.ndarray
    axis: int
    n_centre: int
    n_pairs: int
    n_indept_faces: int
    n_pair_faces: int

    @property
    def n_predicted(self) -> int:
        """Vertices the network predicts (centre + right)."""
        return self.n_centre + self.n_pairs

    @property
    def n_textured_faces(self) -> int:
        """Faces whose texture is predicted (independent + right); left faces copy right ones."""
        return self.n_indept_faces + self.n_pair_faces

    def mirror_vertex_index(self) -> np.ndarray:
        """[V] index of each vertex's mirror image."""
        c, p = self.n_centre, self.n_pairs
        return np.concatenate([np.arange(c), np.arange(c + p, c + 2 * p), np.arange(c, c + p)])


def symmetric_icosphere(subdivisions: int, axis: int = 1) -> SymmetricTemplate:
    """trimesh's icosphere (2: 162 vertices / 320 faces, 3: 642 / 1280), symmetric about axis
    (UMR: meshzoo iso_sphere(3), axis 1, train_s2.py). Raises ValueError if the sphere is not
    mirror symmetric (it always is: the golden-ratio icosahedron has the three coordinate
    planes as mirror planes and midpoint subdivision keeps them)."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    flip = np.ones(3)
    flip[axis] = -1
    tol = 1e-9
    dist, partner = cKDTree(v).query(v * flip)
    if dist.max() > tol:
        raise ValueError(f"icosphere({subdivisions}) is not symmetric about axis {axis}")
    centre = np.flatnonzero(np.abs(v[:, axis]) <= tol)
    right = np.flatnonzero(v[:, axis] > tol)
    order = np.concatenate([centre, right, partner[right]])
    new_index = np.empty(len(v), np.int64)
    new_index[order] = np.arange(len(v))
    verts = v[order].copy()
    n_c, n_p = len(centre), len(right)
    verts[:n_c, axis] = 0.0
    verts[n_c + n_p :] = verts[n_c : n_c + n_p] * flip
    faces = new_index[np.asarray(mesh.faces)]
    mirror = np.concatenate([np.arange(n_c), np.arange(n_c + n_p, n_c + 2 * n_p), np.arange(n_c, n_c + n_p)])
    keys = {tuple(sorted(f)): i for i, f in enumerate(faces)}
    indept, right_faces = [], []
    for i, f in enumerate(faces):
        m = mirror[f]
        if sorted(m) == sorted(f):
            indept.append(f)
        elif verts[f, axis].sum() > 0:
            if tuple(sorted(m)) not in keys:
                raise ValueError(f"face {i} has no mirror face")
            right_faces.append(f)
    right_faces = np.array(right_faces, np.int64)
    new_faces = np.concatenate([np.array(indept, np.int64).reshape(-1, 3), right_faces, mirror[right_faces]])
    if len(new_faces) != len(faces):
        raise ValueError("icosphere faces do not split into independent and mirrored pairs")
    return SymmetricTemplate(verts, new_faces, axis, n_c, n_p, len(indept), len(right_faces))


def spherical_uv(points: np.ndarray) -> np.ndarray:
    """CMR's get_spherical_coords (utils/mesh.py): [N, 3] -> [N, 2] (u, v) in [-1, 1]:
    u = azimuth atan2(y, x) mapped from [-pi, pi], v = inclination arccos(z / r) from [0, pi]."""
    r = np.linalg.norm(points, axis=1)
    theta = np.arccos(np.clip(points[:, 2] / r, -1.0, 1.0))
    phi = np.arctan2(points[:, 1], points[:, 0])
    return np.stack([(phi + np.pi) / np.pi - 1.0, 2.0 * theta / np.pi - 1.0], axis=1)


def surface_cell_barycentrics(res: int) -> np.ndarray:
    """[R*R, 3] barycentric centroid of each SoftRas surface-texture cell k = row * R + col:
    the lower half of square (col, row) when row + col <= R - 1, else the upper half of square
    (R-1-col, R-1-row) (soft_rasterize_cuda_kernel.cu forward_sample_texture)."""
    out = np.empty((res * res, 3))
    for row in range(res):
        for col in range(res):
            if row + col <= res - 1:
                w0, w1 = (col + 1 / 3) / res, (row + 1 / 3) / res
            else:
                w0, w1 = (res - 1 - col + 2 / 3) / res, (res - 1 - row + 2 / 3) / res
            out[row * res + col] = (w0, w1, 1.0 - w0 - w1)
    return out


def uv_sampler(template: SymmetricTemplate, texture_size: int) -> np.ndarray:
    """[F_tex, T*T, 2] UV coordinates (spherical, on the template sphere) of the texture samples
    of the textured faces (CMR/UMR compute_uvsampler, at SoftRas cell centroids)."""
    faces = template.faces[: template.n_textured_faces]
    bary = surface_cell_barycentrics(texture_size)
    points = np.einsum("kc,fcd->fkd", bary, template.vertices[faces])
    return spherical_uv(points.reshape(-1, 3)).reshape(len(faces), texture_size * texture_size, 2)


# --------------------------------------------------------------------------- geometry


def quat_rotate(points: torch.Tensor, quat: torch.Tensor) -> torch.Tensor:
    """Rotate points [B, N, 3] by unit quaternions [B, 4] (w, x, y, z): q X q* (geom_utils.py)."""
    w, v = quat[:, None, :1], quat[:, None, 1:]
    t = 2.0 * torch.cross(v.expand_as(points), points, dim=-1)
    return points + w * t + torch.cross(v.expand_as(points), t, dim=-1)


def orthographic_project(points: torch.Tensor, cam: torch.Tensor, offset_z: float = 0.0) -> torch.Tensor:
    """points [B, N, 3], cam [B, 7] (s, tx, ty, qw, qx, qy, qz) -> [B, N, 3]: x, y = s (R X)_xy +
    t in image coordinates (y down), z = s (R X)_z + offset_z (orthographic_proj_withz)."""
    rotated = quat_rotate(points, cam[:, 3:7])
    scale = cam[:, None, :1]
    xy = scale * rotated[..., :2] + cam[:, None, 1:3]
    return torch.cat([xy, scale * rotated[..., 2:] + offset_z], dim=-1)


def to_ndc(projected: torch.Tensor) -> torch.Tensor:
    """Image coordinates (y down) -> the soft rasterizer's NDC (y up); x and z unchanged."""
    return projected * projected.new_tensor([1.0, -1.0, 1.0])


def sample_image(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Texture colours [B, F, K, C] sampled from image [B, C, H, W] at flow [B, F, K, 2]
    (x, y in [-1, 1], y down; geom_utils.sample_textures; align_corners=False, see above)."""
    samples = nn.functional.grid_sample(image, flow, align_corners=False)
    return samples.permute(0, 2, 3, 1)


# --------------------------------------------------------------------------- network


PAPER = UMRConfig()
SMALL = UMRConfig(
    image_size=64,
    resnet=ResNetConfig("basic", (1, 1, 1, 1), (16, 32, 64, 128), 16),
    conv_channels=64,
    feature=64,
    latent=64,
    subdivisions=2,
    hypotheses=4,
    uv_channels=32,
)


def _fc(inp: int, out: int, batch_norm: bool) -> nn.Sequential:
    # net_blocks.fc: BN + LeakyReLU(0.2), or LeakyReLU(0.1) without BN.
    if batch_norm:
        return nn.Sequential(nn.Linear(inp, out), nn.BatchNorm1d(out), nn.LeakyReLU(0.2))
    return nn.Sequential(nn.Linear(inp, out), nn.LeakyReLU(0.1))


def _fc_stack(inp: int, out: int, layers: int = 2, batch_norm: bool = True) -> nn.Sequential:
    return nn.Sequential(*[_fc(inp if i == 0 else out, out, batch_norm) for i in range(layers)])


def _net_init(module: nn.Module) -> None:
    # net_blocks.net_init: linear and conv weights N(0, 0.02), biases 0.
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class UMREncoder(nn.Module):
    """Image [B, 3, S, S] in [0, 1] -> feature [B, feature], latent mean and log-variance
    [B, latent] (cub_mesh.py Encoder: ResNet, conv 4x4/2 + BN + LeakyReLU, 2 fc, VAE heads)."""

    def __init__(self, config: UMRConfig):
        super().__init__()
        self.resnet = ResNetEncoder(config.resnet)
        width = config.resnet.out_channels[-1]
        self.conv = nn.Sequential(
            nn.Conv2d(width, config.conv_channels, 4, 2, 1), nn.BatchNorm2d(config.conv_channels), nn.LeakyReLU(0.2)
        )
        cells = (config.image_size // 64) ** 2
        self.fc = _fc_stack(config.conv_channels * cells, config.feature)
        _net_init(self.conv)
        _net_init(self.fc)

        def head():
            return nn.Sequential(nn.Linear(config.feature, config.feature), nn.LeakyReLU(), nn.Linear(config.feature, config.latent))

        self.mean_head, self.logvar_head = head(), head()

    def forward(self, image):
        features, _ = self.resnet(image)
        feat = self.fc(self.conv(features[-1]).flatten(1))
        return feat, self.mean_head(feat), self.logvar_head(feat)


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of quaternions [..., 4] (w, x, y, z): R(a b) = R(a) R(b)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], dim=-1)


def axis_angle_quaternion(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [..., 4] of rotations by `angle` [...] (radians) about coordinate axis
    0 (x), 1 (y) or 2 (z)."""
    q = torch.zeros(*angle.shape, 4, dtype=angle.dtype)
    q[..., 0] = torch.cos(angle / 2)
    q[..., 1 + axis] = torch.sin(angle / 2)
    return q


def initial_quaternions(hypotheses: int, mirror_axis: int, mode: str) -> torch.Tensor:
    """[K, 4] quaternions the camera hypotheses start from (the heads' biases).

    "identity": all (1, 0, 0, 0), as UMR (cub_mesh.py MultiCamPredictor). "azimuths" (this
    project's, for short trainings): q_k = q_view q_up(2 pi k / K). q_view is the quarter turn
    that takes the mirror axis to the viewing direction (image z; none when it already is), so
    hypothesis 0 is a side view (the bird's left-right axis along the line of sight); q_up turns
    about the template axis that q_view takes to the image's vertical, so the K hypotheses are
    K azimuths around the template's up axis. Raises ValueError for another mode."""
    if mode == "identity":
        return torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(hypotheses, 1)
    if mode != "azimuths":
        raise ValueError(f"unknown camera_init {mode!r}")
    quarter = torch.tensor(math.pi / 2, dtype=torch.float64)
    if mirror_axis == 2:
        view = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    else:
        view = axis_angle_quaternion(1 - mirror_axis, quarter)  # x -> about y, y -> about x
    basis = quat_rotate(torch.eye(3, dtype=torch.float64)[None], view[None])[0]
    up = int(basis[:, 1].abs().argmax())  # the template axis that lands on image y
    angles = torch.arange(hypotheses, dtype=torch.float64) * (2 * math.pi / hypotheses)
    turn = axis_angle_quaternion(up, angles)
    return quaternion_multiply(view.expand_as(turn), turn).float()


class CameraHypotheses(nn.Module):
    """feature [B, D] -> cams [B, K, 7] (s, tx, ty, unit quaternion) and probabilities [B, K]
    (cub_mesh.py MultiCamPredictor: shared fc stack, then per hypothesis an fc stack with BN and
    linear heads; scale relu(x + 1) + 1e-12; quaternion bias `initial_quaternions` (UMR: the
    identity); softmax over K)."""

    def __init__(self, feature: int, hypotheses: int, initial: torch.Tensor | None = None):
        super().__init__()
        self.shared = _fc_stack(feature, feature, batch_norm=False)
        self.trunks = nn.ModuleList([_fc_stack(feature, feature) for _ in range(hypotheses)])
        self.heads = nn.ModuleList([nn.Linear(feature, 8) for _ in range(hypotheses)])  # quat 4, logit, scale, t 2
        _net_init(self)
        if initial is None:
            initial = initial_quaternions(hypotheses, 1, "identity")
        with torch.no_grad():
            for head, quat in zip(self.heads, initial):
                head.bias[:4] = quat

    def forward(self, feat):
        shared = self.shared(feat)
        raw = torch.stack([head(trunk(shared)) for trunk, head in zip(self.trunks, self.heads)], dim=1)
        quat = nn.functional.normalize(raw[..., :4], dim=-1)
        probs = torch.softmax(raw[..., 4], dim=1)
        scale = torch.relu(raw[..., 5:6] + 1.0) + 1e-12
        return torch.cat([scale, raw[..., 6:8], quat], dim=-1), probs


def select_camera(cams: torch.Tensor, probs: torch.Tensor, sample: bool = False, generator=None):
    """Pick one hypothesis per image: the most probable (deterministic), or a multinomial draw
    as UMR does (MultiCamPredictor.sample). Returns (cam [B, 7], index [B])."""
    index = torch.multinomial(probs, 1, generator=generator).squeeze(1) if sample else probs.argmax(dim=1)
    return cams[torch.arange(cams.shape[0], device=cams.device), index], index


class TextureFlow(nn.Module):
    """feature [B, D] -> UV flow image [B, 2, H, 2H] in [-1, 1] (cub_mesh.py TexturePredictorUV:
    fc stack to nc x H/2^n x W/2^n, n bilinear upconvs with BN convs, 3x3 conv to 2, tanh)."""

    def __init__(self, feature: int, height: int, channels: int, upconvs: int):
        super().__init__()
        self.cells = (height >> upconvs, (2 * height) >> upconvs)
        self.channels = channels
        self.fc = _fc_stack(feature, channels * self.cells[0] * self.cells[1])
        layers, width = [], channels
        for _ in range(upconvs):
            out = width // 2 if width // 2 >= 8 else width
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear"),
                nn.ReflectionPad2d(1),
                nn.Conv2d(width, out, 3),
                nn.LeakyReLU(0.2),
                nn.Conv2d(out, out, 3, padding=1),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        layers.append(nn.Conv2d(width, 2, 3, padding=1))
        self.decoder = nn.Sequential(*layers)
        _net_init(self)

    def forward(self, feat):
        x = self.fc(feat).view(-1, self.channels, *self.cells)
        return torch.tanh(self.decoder(x))


@dataclass
class UMROutput:
    """feature [B, D]; mean, logvar, latent [B, Z]; delta_v [B, n_predicted, 3]; vertices
    [B, V, 3] (template frame); cams [B, K, 7]; cam_probs [B, K]; uv_flow [B, 2, H, 2H];
    texture_flow [B, F, T*T, 2] (image coordinates of each face's texture samples)."""

    feature: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    latent: torch.Tensor
    delta_v: torch.Tensor
    vertices: torch.Tensor
    cams: torch.Tensor
    cam_probs: torch.Tensor
    uv_flow: torch.Tensor
    texture_flow: torch.Tensor


class UMR(nn.Module):
    """The UMR network. forward(image [B, 3, S, S] in [0, 1], sample_latent) -> UMROutput.

    sample_latent=False uses the latent mean (deterministic); True draws z = mean +
    exp(logvar / 2) * N(0, 1) as the original does, at training and at test time."""

    def __init__(self, config: UMRConfig = PAPER):
        super().__init__()
        self.config = config
        self.template = symmetric_icosphere(config.subdivisions, config.axis)
        t = self.template
        self.encoder = UMREncoder(config)
        self.shape = nn.Linear(config.latent, t.n_predicted * 3)
        nn.init.normal_(self.shape.weight, 0.0, 1e-4)
        self.cameras = CameraHypotheses(config.feature, config.hypotheses,
                                        initial_quaternions(config.hypotheses, config.axis, config.camera_init))
        uv_height = 2 ** int(math.floor(math.log2(math.sqrt(t.n_textured_faces) * config.texture_size)))
        self.texture = TextureFlow(config.feature, uv_height, config.uv_channels, config.uv_upconvs)
        self.register_buffer("mean_v", torch.tensor(t.vertices[: t.n_predicted], dtype=torch.float32))
        self.register_buffer("faces", torch.tensor(t.faces))
        self.register_buffer("uv_sampler", torch.tensor(uv_sampler(t, config.texture_size), dtype=torch.float32))
        flip = torch.ones(3)
        flip[config.axis] = -1
        self.register_buffer("flip", flip, persistent=False)
        keep = torch.ones(t.n_predicted, 3)
        keep[: t.n_centre, config.axis] = 0
        self.register_buffer("on_plane_mask", keep, persistent=False)

    def symmetrize(self, half: torch.Tensor) -> torch.Tensor:
        """[B, n_predicted, 3] (centre + right) -> [B, V, 3] with left = mirrored right and the
        centre vertices' mirror coordinate set to 0."""
        half = half * self.on_plane_mask
        return torch.cat([half, half[:, self.template.n_centre :] * self.flip], dim=1)

    def mean_shape(self) -> torch.Tensor:
        """[V, 3] symmetric template."""
        return self.symmetrize(self.mean_v[None])[0]

    def forward(self, image: torch.Tensor, sample_latent: bool = False, generator=None) -> UMROutput:
        feat, mean, logvar = self.encoder(image)
        latent = mean
        if sample_latent:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            latent = mean + torch.exp(0.5 * logvar) * noise
        delta_v = self.shape(latent).view(image.shape[0], -1, 3)
        vertices = self.symmetrize(self.mean_v + delta_v)
        cams, probs = self.cameras(feat)
        uv_flow = self.texture(feat)
        grid = self.uv_sampler.unsqueeze(0).expand(image.shape[0], -1, -1, -1)
        flow = nn.functional.grid_sample(uv_flow, grid, align_corners=True).permute(0, 2, 3, 1)
        flow = torch.cat([flow, flow[:, self.template.n_indept_faces :]], dim=1)
        return UMROutput(feat, mean, logvar, latent, delta_v, vertices, cams, probs, uv_flow, flow)


def load_resnet18_weights(encoder: ResNetEncoder, path) -> None:
    """Copy a torchvision ResNet-18 state dict read from a local file (never downloaded) into
    `encoder` (basic blocks, layers (2, 2, 2, 2)). Reads with weights_only=True; fc.* is
    ignored. Raises ValueError naming the file when a tensor is missing or has another shape."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapping = {"conv1.": "stem.0.", "bn1.": "stem.1."}
    renamed = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        new = key
        for old, rep in mapping.items():
            if key.startswith(old):
                new = rep + key[len(old) :]
        if key.startswith("layer"):
            stage, rest = key[5:].split(".", 1)
            new = f"stages.{int(stage) - 1}." + rest.replace("downsample.", "shortcut.")
        renamed[new] = value
    own = encoder.state_dict()
    for key, value in own.items():
        if key not in renamed or renamed[key].shape != value.shape:
            raise ValueError(f"{path}: no ResNet-18 tensor of shape {tuple(value.shape)} for {key}")
    encoder.load_state_dict({k: renamed[k] for k in own}, strict=True)
