"""UMR's training losses (NVlabs/UMR nnutils/loss_utils.py, experiments/train_s2.py; the mesh
smoothness terms from ShichenLiu/SoftRas soft_renderer/losses.py), on the soft rasterizer.

Images and masks are [B, ..., S, S] with row 0 at the top; 2D positions (texture flow, part
centres, projected vertices, part pixels) are image coordinates in [-1, 1] with y down.

Implemented: mask (1 - soft IoU expected over the hypotheses), Laplacian and flatten smoothness,
deformation, texture as an L1 pixel loss (`texture_l1_loss`: the small-scale stand-in for UMR's
AlexNet perceptual loss, which needs downloaded weights), texture cycle, hypothesis entropy,
semantic part map and semantic vertex Chamfer. Not here: the texture distance-transform barrier,
the GAN term and stage 1's `ori` term.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stages.models.umr import orthographic_project, to_ndc
from stages.rendering.soft_rasterizer import (
    SoftRasterSettings,
    face_soft_centroids,
    soft_fragments,
    soft_rasterize,
)

# train_s2.py flags (stage 2) for the terms implemented here; "texture" is the weight of the
# perceptual loss, used here for its L1 stand-in.
STAGE2_WEIGHTS = {
    "mask": 2.5,
    "laplacian": 0.15,
    "flatten": 5e-4,
    "deform": 1.0,
    "texture": 3.0,
    "texture_cycle": 1.0,
    "entropy": 0.05,
    "part": 5.0,
    "vertex": 10.0,
}
# loss_utils.part_matching_loss: weights of (background, head, neck, back, belly).
PART_WEIGHTS = (0.0, 5.0, 0.0, 0.0, 5.0)
# loss_utils.CorrLossChamfer: weights of (head, belly, neck, back).
VERTEX_PART_WEIGHTS = (1.0, 1.0, 0.0, 0.0)
OFFSET_Z = 5.0  # smr.py SoftRenderer.offset_z


def render_hypotheses(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cams: torch.Tensor,
    settings: SoftRasterSettings,
    textures: torch.Tensor | None = None,
    offset_z: float = OFFSET_Z,
) -> torch.Tensor:
    """Render each mesh under each of its K cameras.

    vertices [B, V, 3]; faces [F, 3]; cams [B, K, 7]; textures None or [B, F, T*T, C] (SoftRas
    surface textures). Returns [B, K, C+1, S, S] (colour channels, then alpha)."""
    b, k = cams.shape[:2]
    repeated = vertices.unsqueeze(1).expand(-1, k, -1, -1).reshape(b * k, *vertices.shape[1:])
    screen = to_ndc(orthographic_project(repeated, cams.reshape(b * k, 7), offset_z))
    tex = None
    if textures is not None:
        tex = textures.unsqueeze(1).expand(-1, k, *textures.shape[1:]).reshape(b * k, *textures.shape[1:])
    image = soft_rasterize(screen, faces, tex, settings, "surface")
    return image.view(b, k, *image.shape[1:])


def mask_loss(silhouettes: torch.Tensor, masks: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Expected 1 - soft IoU (loss_utils.neg_iou_loss, MultiMaskLoss): silhouettes [B, K, S, S],
    masks [B, S, S], probs [B, K] -> mean_b sum_k p_bk (1 - sum(pg) / (sum(p + g - pg) + 1e-6))."""
    g = masks.unsqueeze(1)
    inter = (silhouettes * g).sum((2, 3))
    union = (silhouettes + g - silhouettes * g).sum((2, 3)) + 1e-6
    return ((1.0 - inter / union) * probs).sum(1).mean()


def _edges_with_opposites(faces: np.ndarray):
    """Edges shared by exactly two faces: (v0, v1, v2, v3), v2 and v3 the opposite corners."""
    table: dict[tuple[int, int], list[int]] = {}
    for f in faces:
        for i in range(3):
            a, b, c = int(f[i]), int(f[(i + 1) % 3]), int(f[(i + 2) % 3])
            table.setdefault((min(a, b), max(a, b)), []).append(c)
    quads = [(a, b, o[0], o[1]) for (a, b), o in sorted(table.items()) if len(o) == 2]
    return np.array(quads, np.int64).reshape(-1, 4)


class MeshSmoothness(nn.Module):
    """SoftRas's LaplacianLoss and FlattenLoss for a fixed face list (losses.py).

    laplacian(v [B, V, 3]) -> [B]: sum_i |v_i - mean of v_i's neighbours|^2.
    flatten(v [B, V, 3]) -> [B]: over edges shared by two faces, sum (cos theta + 1)^2, theta the
    angle between the two faces' perpendiculars from the edge (pi when flat). UMR uses the batch
    mean of each."""

    def __init__(self, faces, n_vertices: int):
        super().__init__()
        faces = np.asarray(faces, np.int64)
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        edges = np.unique(np.sort(edges, axis=1), axis=0)
        both = np.concatenate([edges, edges[:, ::-1]])
        degree = np.bincount(both[:, 0], minlength=n_vertices).astype(np.float64)
        self.register_buffer("src", torch.tensor(both[:, 0]))
        self.register_buffer("dst", torch.tensor(both[:, 1]))
        self.register_buffer("inv_degree", torch.tensor(1.0 / np.maximum(degree, 1)))
        self.register_buffer("quads", torch.tensor(_edges_with_opposites(faces)))

    def laplacian(self, v: torch.Tensor) -> torch.Tensor:
        neighbours = torch.zeros_like(v).index_add(1, self.src, v[:, self.dst])
        diff = v - neighbours * self.inv_degree.to(v.dtype)[None, :, None]
        return diff.pow(2).sum((1, 2))

    def flatten(self, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        v0, v1, v2, v3 = (v[:, self.quads[:, i]] for i in range(4))
        a = v1 - v0

        def perpendicular(b):
            # SoftRas's expressions, eps included, so values match losses.py.
            a_l2, b_l2 = a.pow(2).sum(-1), b.pow(2).sum(-1)
            ab = (a * b).sum(-1)
            cos = ab / ((a_l2 + eps).sqrt() * (b_l2 + eps).sqrt() + eps)
            sin = (1 - cos.pow(2) + eps).sqrt()
            return b - a * (ab / (a_l2 + eps)).unsqueeze(-1), (b_l2 + eps).sqrt() * sin

        cb1, l1 = perpendicular(v2 - v0)
        cb2, l2 = perpendicular(v3 - v0)
        cos = (cb1 * cb2).sum(-1) / (l1 * l2 + eps)
        return (cos + 1).pow(2).sum(1)


def deform_loss(delta_v: torch.Tensor) -> torch.Tensor:
    """Mean L2 norm of the predicted offsets [B, N, 3] (loss_utils.deform_l2reg)."""
    return delta_v.reshape(-1, 3).norm(dim=1).mean()


def texture_l1_loss(
    rendered: torch.Tensor, alpha: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, probs: torch.Tensor
) -> torch.Tensor:
    """L1 texture loss in place of UMR's perceptual loss (loss_utils.texture_loss_masks with
    avg=False, weighted as MultiTextureLoss): rendered [B, K, C, S, S], alpha [B, K, S, S]
    (the rendered silhouettes), image [B, C, S, S], mask [B, S, S], probs [B, K] ->
    mean_b sum_k p_bk mean_{c,y,x} |rendered * alpha - image * mask|. UMR feeds detached
    shape, cameras and probabilities, so only the texture flow learns from it."""
    target = (image * mask.unsqueeze(1)).unsqueeze(1)
    per = (rendered * alpha.unsqueeze(2) - target).abs().mean((2, 3, 4))
    return (per * probs).sum(1).mean()


def cycle_targets(
    vertices: torch.Tensor, faces: torch.Tensor, cam: torch.Tensor, settings: SoftRasterSettings, offset_z: float = OFFSET_Z
):
    """Soft-rendered centroid of every face in image coordinates [B, F, 2] (y down) and its
    z-buffer visibility [B, F] under one camera per image cam [B, 7] (the targets of UMR's
    texture cycle: its modified SoftRas kernel's p2f_info and the hard renderer's face ids)."""
    screen = to_ndc(orthographic_project(vertices, cam, offset_z))
    frag = soft_fragments(screen, faces, settings)
    centroid, visible = face_soft_centroids(frag, vertices.shape[0], faces.shape[-2], settings)
    return centroid * centroid.new_tensor([1.0, -1.0]), visible


def texture_cycle_loss(texture_flow: torch.Tensor, centroids: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """UMR's TexCycle: texture_flow [B, F, T*T, 2], centroids [B, F, 2], visible [B, F] ->
    mean over B x F x 2 of ((mean flow of the face - its centroid) * visible)^2.

    Note: in UMR as published the centroid is zero, since its kernel accumulates p2f_info only
    in the softmax branch and the cycle loss calls the renderer in hard mode; this is the
    intended target."""
    m = visible.unsqueeze(-1).to(texture_flow.dtype)
    return ((texture_flow.mean(2) - centroids) * m).pow(2).mean()


def hypothesis_entropy(probs: torch.Tensor) -> torch.Tensor:
    """-sum_k p log(p + 1e-9), batch mean (train_s2.py cam_div_loss; minimised)."""
    return -(probs * torch.log(probs + 1e-9)).sum(1).mean()


def part_centres(maps: torch.Tensor, epsilon: float = 1e-3) -> torch.Tensor:
    """SCOPS's get_centers (nnutils/scops_utils.py): maps [B, C, H, W] -> [B, C, 2] (x, y)
    centres of (map + epsilon) / sum, at coordinates x = j / W * 2 - 1, y = i / H * 2 - 1."""
    b, c, h, w = maps.shape
    pdf = maps + epsilon
    pdf = pdf / pdf.sum((2, 3), keepdim=True)
    xs = torch.arange(w, dtype=maps.dtype, device=maps.device) / w * 2 - 1
    ys = torch.arange(h, dtype=maps.dtype, device=maps.device) / h * 2 - 1
    return torch.stack([(pdf * xs).sum((2, 3)), (pdf * ys[:, None]).sum((2, 3))], dim=-1)


def part_map_loss(rendered_parts: torch.Tensor, part_maps: torch.Tensor, weights=PART_WEIGHTS) -> torch.Tensor:
    """UMR's part_matching_loss ("mse", avg): rendered_parts [B, 4, S, S] (the semantic template
    rendered per part: head, neck, back, belly), part_maps [B, 5, S, S] (SCOPS, background
    first, max-normalised inside the mask by the caller as train_s2.py does).

    (MSE of the part centres of softmax([0.1, rendered]) and softmax(part_maps), channels 1-4,
    + mean of weights x (max-normalised rendered - max-normalised part_maps)^2) / 4, maxima
    clamped below at 1e-5. UMR renders with the detached sampled camera."""
    b = rendered_parts.shape[0]
    proj = torch.cat([torch.full_like(rendered_parts[:, :1], 0.1), rendered_parts], dim=1)
    centres = nn.functional.mse_loss(
        part_centres(torch.softmax(proj, 1)[:, 1:]), part_centres(torch.softmax(part_maps, 1)[:, 1:])
    )

    def normalised(x):
        peak = x.reshape(b, x.shape[1], -1).amax(2).clamp_min(1e-5)
        return x / peak[:, :, None, None]

    w = torch.tensor(weights, dtype=proj.dtype, device=proj.device).view(1, -1, 1, 1)
    maps = ((normalised(proj) - normalised(part_maps)).pow(2) * w).mean()
    return (maps + centres) / 4.0


def part_face_textures(semantic_uv: torch.Tensor, sampler: torch.Tensor, n_indept_faces: int, parts: int = 5) -> torch.Tensor:
    """One-hot part textures [F, T*T, parts] of the template from a UV part-label image
    [H, W] (labels 0..parts-1): bilinear sampling of the labels at the UV sampler [F_tex, T*T, 2]
    then rounding, right faces copied to the left ones (part_matching_loss.__init__)."""
    grid = sampler.unsqueeze(0).to(semantic_uv.dtype)
    labels = nn.functional.grid_sample(semantic_uv[None, None], grid, align_corners=True)[0, 0]
    labels = torch.round(labels).long().clamp(0, parts - 1)
    labels = torch.cat([labels, labels[n_indept_faces:]], dim=0)
    return nn.functional.one_hot(labels, parts).to(semantic_uv.dtype)


def vertex_chamfer_loss(
    template: torch.Tensor,
    part_vertices: list[torch.Tensor],
    part_points: list[torch.Tensor],
    cams: torch.Tensor,
    probs: torch.Tensor,
    weights=VERTEX_PART_WEIGHTS,
) -> torch.Tensor:
    """UMR's CorrLossChamfer under all hypotheses: template [V, 3] (the mean shape),
    part_vertices: per part a [N_p] vertex index; part_points: per part [B, M_p, 2] pixels
    sampled from the SCOPS part (image coordinates); cams [B, K, 7]; probs [B, K].

    Per hypothesis: mean over all listed vertices of weight_p x squared distance from the
    projected vertex to its part's nearest point (zero-weight parts count in the mean, as in
    the original); then sum_k p_bk and the batch mean. UMR passes detached probabilities and
    the fixed template, so only the cameras learn from it."""
    b, k = cams.shape[:2]
    ids = torch.cat(part_vertices)
    points = template[ids].unsqueeze(0).expand(b * k, -1, -1)
    xy = orthographic_project(points, cams.reshape(b * k, 7))[..., :2]
    per_vertex, start = [], 0
    for idx, pts, weight in zip(part_vertices, part_points, weights):
        n = len(idx)
        target = pts.unsqueeze(1).expand(-1, k, -1, -1).reshape(b * k, *pts.shape[1:])
        d2 = torch.cdist(xy[:, start : start + n], target).pow(2).amin(2)
        per_vertex.append(d2 * weight)
        start += n
    loss = torch.cat(per_vertex, dim=1).mean(1).view(b, k)
    return (loss * probs).sum(1).mean()
