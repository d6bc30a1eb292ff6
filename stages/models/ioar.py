"""The IOAR network (Qiu, Xu, Zheng, NeurIPS 2023; YorkQiu/InnerOuterAwareReconstruction, which is
VoRTX, noahstier/vortx, plus an occupancy branch): posed RGB views -> a coarse-to-fine TSDF.

Pipeline (IOAR/IOAR.py, cnn2d.py, mv_fusion.py, view_direction_encoder.py):

1. A 2D backbone with an FPN gives feature maps at strides 16, 8 and 4 (`MnasMulti`: MNASNet-1.0,
   widths 80/40/24, as the original; `SmallMulti`: a narrow CNN for the CPU scale). Each map gets
   its pixels' view directions (unit world-space ray plus sin/cos at L frequencies: 3 + 6 L
   channels) concatenated and a 1x1 convolution (`ViewDirectionEncoder`).
2. Three levels, coarse to fine (voxel sizes e.g. 16/8/4 cm). At level l the active voxels of
   the crop (all of them at the coarse level) are projected into every view (`project_points`:
   voxel point = origin + index * voxel_size, K scaled to the feature map, grid_sample with
   align_corners=True and reflection padding; a view is valid where the point lands inside the
   map and z > 0) and the sampled features fused over the valid views (`MVFusionTransformer`:
   2 layers, 2 heads, tokens = features + normalised depth (z - 1.85) / 0.85, each view
   attending to the valid views and itself, then the mean over valid views; or `MVFusionMean`),
   then LayerNorm.
3. Two sparse UNets per level (`stages.models.sparse3d.SparseUNet`): a TSDF branch (1 channel)
   and an occupancy branch (3 classes: inner / surface / outer), each fed with the fused
   features, its own previous-level features and its own previous-level logits (up-sampled x2
   by copying, IOAR.py's Upsampler).
4. At the coarse and medium levels only voxels whose occupancy argmax is 1 (surface) are carried
   to the next level (their 8 children); in training at most `max_voxels` (2^14 medium, 2^16
   fine) are kept per crop, drawn at random. The fine TSDF is 1.05 * tanh(logit).

Tensors: images float [B, V, 3, H, W] (ImageNet-normalised RGB), K [B, V, 3, 3] (pixels of the
H x W images, OpenCV convention), cam_to_world [B, V, 4, 4] (metres), view_valid bool [B, V],
origin [B, 3] (world metres of fine voxel (0, 0, 0)), dims (X, Y, Z): fine voxels of the crop,
multiples of 4. Volumes are dense [B, C, X_l, Y_l, Z_l] grids (axis order x, y, z) plus a mask
bool [B, 1, X_l, Y_l, Z_l] of the active voxels (sparse tensors as masked dense ones; spconv or
torchsparse are not needed; their stride-1 convolutions and active-voxel BatchNorm give the
same numbers). Level l's voxel (i, j, k) is fine voxel (2^(2-l) i, ...): all levels share the
crop's origin.

The configuration object is the family's `IOARNetwork` (stages.families.ioar.spec); this module
reads its attributes only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .sparse3d import SparseUNet, masked

if TYPE_CHECKING:
    from ..families.ioar.spec import IOARNetwork

SURFACE_CLASS = 1
TSDF_SCALE = 1.05  # IOAR.py: fine TSDF = 1.05 * tanh(logit)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDES = (16, 8, 4)  # feature-map strides of the coarse, medium and fine levels
DEPTH_MEAN, DEPTH_SCALE = 1.85, 0.85  # mv_fusion.py: (z - 1.85) / 0.85


def normalize_images(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] RGB -> float32, ImageNet mean/std normalised (MNASNet's input)."""
    mean = torch.tensor(IMAGENET_MEAN, device=rgb_uint8.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=rgb_uint8.device).view(3, 1, 1)
    return (rgb_uint8.float() / 255.0 - mean) / std


# Geometry -----------------------------------------------------------------------------------


def scaled_intrinsics(K: torch.Tensor, feature_size: tuple[int, int], image_size: tuple[int, int]) -> torch.Tensor:
    """K [..., 3, 3] of an image of (H, W) pixels scaled to a feature map of (h, w): rows 0 and 1
    multiplied by w / W and h / H (the original scales K the same way, without the half-pixel
    correction a strict pixel-centre convention would add)."""
    (h, w), (H, W) = feature_size, image_size
    scale = torch.tensor([w / W, h / H, 1.0], dtype=K.dtype, device=K.device).view(3, 1)
    return K * scale


def project_points(points: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor,
                   feature_size: tuple[int, int], image_size: tuple[int, int]):
    """Project world points into views for grid_sample(align_corners=True).

    points [N, 3] world metres; K [V, 3, 3] pixels of an (H, W) = image_size image;
    cam_to_world [V, 4, 4]; feature_size (h, w) of the sampled map. Returns (grid [V, N, 2] with
    x = 2 u / (w - 1) - 1, y = 2 v / (h - 1) - 1 where (u, v) = the point's pixel in the map
    (K scaled by `scaled_intrinsics`); z [V, N] camera depth, metres; valid bool [V, N]: z > 0 and
    |x|, |y| <= 1), as IOAR.py:project_voxels.
    """
    h, w = feature_size
    Kf = scaled_intrinsics(K, feature_size, image_size)
    R = cam_to_world[:, :3, :3]
    t = cam_to_world[:, :3, 3]
    cam = torch.einsum("vji,vnj->vni", R, points[None] - t[:, None])  # R^T (p - t)
    pix = torch.einsum("vij,vnj->vni", Kf, cam)
    z = cam[..., 2]
    safe = torch.where(z.abs() > 1e-9, pix[..., 2], torch.full_like(z, 1e-9))
    u, v = pix[..., 0] / safe, pix[..., 1] / safe
    grid = torch.stack([2 * u / (w - 1) - 1, 2 * v / (h - 1) - 1], dim=-1)
    grid = torch.where(torch.isfinite(grid), grid, torch.full_like(grid, -2.0))
    valid = (z > 0) & (grid.abs() <= 1).all(dim=-1)
    return grid, z, valid


def voxel_points(indices: torch.Tensor, origin: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """World points [N, 3] of voxel indices [N, 3] (x, y, z): origin + index * voxel_size (no
    half-voxel offset, IOAR.py:130; the TSDF tables' convention)."""
    return origin + indices.to(origin.dtype) * voxel_size


def pixel_rays(K: torch.Tensor, cam_to_world: torch.Tensor, feature_size: tuple[int, int],
               image_size: tuple[int, int]) -> torch.Tensor:
    """Unit world-space view directions [V, 3, h, w] of the pixel centres (u = column, v = row)
    of a feature map, through K scaled to it."""
    h, w = feature_size
    Kf = scaled_intrinsics(K, feature_size, image_size)
    v, u = torch.meshgrid(torch.arange(h, dtype=K.dtype, device=K.device),
                          torch.arange(w, dtype=K.dtype, device=K.device), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], 0).reshape(3, -1)
    rays = torch.linalg.solve(Kf, pix.expand(len(K), 3, h * w))
    rays = cam_to_world[:, :3, :3] @ rays
    return F.normalize(rays, dim=1).reshape(len(K), 3, h, w)


# 2D backbones -------------------------------------------------------------------------------


class _InvertedResidual(nn.Module):
    """torchvision's MNASNet block (same parameter names: `layers.N`)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int, momentum: float):
        super().__init__()
        mid = cin * expansion
        self.residual = cin == cout and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid, momentum=momentum), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid, momentum=momentum), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout, momentum=momentum),
        )

    def forward(self, x):
        return self.layers(x) + x if self.residual else self.layers(x)


def _stack(cin, cout, kernel, stride, expansion, repeats, momentum):
    blocks = [_InvertedResidual(cin, cout, kernel, stride, expansion, momentum)]
    blocks += [_InvertedResidual(cout, cout, kernel, 1, expansion, momentum) for _ in range(repeats - 1)]
    return nn.Sequential(*blocks)


class _FPN(nn.Module):
    """NeuralRecon/VoRTX's top-down path: 1x1 lateral convs to the coarsest width, nearest
    up-sampling, and per-level output convs to the level's width (coarse 1x1, others 3x3)."""

    def __init__(self, in_channels: tuple[int, int, int], out_channels: tuple[int, int, int]):
        super().__init__()
        c2, c1, c0 = in_channels  # stride 16, 8, 4
        top = c2
        self.inner1 = nn.Conv2d(c1, top, 1)
        self.inner2 = nn.Conv2d(c0, top, 1)
        self.out1 = nn.Conv2d(top, out_channels[0], 1, bias=False)
        self.out2 = nn.Conv2d(top, out_channels[1], 3, padding=1, bias=False)
        self.out3 = nn.Conv2d(top, out_channels[2], 3, padding=1, bias=False)

    def forward(self, c0, c1, c2):
        coarse = self.out1(c2)
        inner = F.interpolate(c2, size=c1.shape[-2:], mode="nearest") + self.inner1(c1)
        medium = self.out2(inner)
        inner = F.interpolate(inner, size=c0.shape[-2:], mode="nearest") + self.inner2(c0)
        return [coarse, medium, self.out3(inner)]


class MnasMulti(nn.Module):
    """MNASNet-1.0 (torchvision's layout, so its ImageNet state dict loads into `layers`) up to
    stride 16, with the FPN: features at strides 16, 8, 4 of widths `out_channels` (80, 40, 24
    in the original). Weights come from a local file only (`load_weights`), never downloaded."""

    def __init__(self, out_channels: tuple[int, int, int] = (80, 40, 24)):
        super().__init__()
        m = 1.0 - 0.9997  # torchvision's BatchNorm momentum for MNASNet
        self.layers = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32, momentum=m), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32, momentum=m), nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16, momentum=m),
            _stack(16, 24, 3, 2, 3, 3, m),
            _stack(24, 40, 5, 2, 3, 3, m),
            _stack(40, 80, 5, 2, 6, 3, m),
        )
        self.fpn = _FPN((80, 40, 24), out_channels)

    def load_weights(self, path: str) -> int:
        """Copy torchvision's mnasnet1_0 ImageNet weights (a state dict saved with torch.save,
        keys `layers.N...`) from the local file `path` into `layers`; returns tensors loaded.
        Raises ValueError naming the file when a tensor is missing or of another shape."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = {k: v for k, v in self.state_dict().items() if k.startswith("layers.")}
        for key, value in own.items():
            if key not in state or tuple(state[key].shape) != tuple(value.shape):
                raise ValueError(f"{path}: not an MNASNet-1.0 state dict (tensor {key} missing or of another shape)")
        self.load_state_dict({k: state[k] for k in own}, strict=False)
        return len(own)

    def forward(self, x):
        c0 = self.layers[:9](x)
        c1 = self.layers[9](c0)
        c2 = self.layers[10](c1)
        return self.fpn(c0, c1, c2)


class SmallMulti(nn.Module):
    """A narrow CNN with the same FPN outputs (strides 16, 8, 4) for CPU training."""

    def __init__(self, out_channels: tuple[int, int, int] = (32, 24, 16)):
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.stem = nn.Sequential(block(3, 16, 2), block(16, 24, 2), block(24, 24, 1))  # stride 4
        self.down1 = nn.Sequential(block(24, 32, 2), block(32, 32, 1))  # stride 8
        self.down2 = nn.Sequential(block(32, 48, 2), block(48, 48, 1))  # stride 16
        self.fpn = _FPN((48, 32, 24), out_channels)

    def forward(self, x):
        c0 = self.stem(x)
        c1 = self.down1(c0)
        return self.fpn(c0, c1, self.down2(c1))


class ViewDirectionEncoder(nn.Module):
    """Concatenate each pixel's unit view ray and its sin/cos at frequencies 2^k pi, k < L
    (3 + 6 L channels), then a 1x1 convolution back to `channels` (view_direction_encoder.py)."""

    def __init__(self, channels: int, frequencies: int = 4):
        super().__init__()
        self.frequencies = frequencies
        self.conv = nn.Conv2d(channels + 3 + 6 * frequencies, channels, 1)

    def forward(self, features: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
        parts = [rays]
        for k in range(self.frequencies):
            parts += [torch.sin(2**k * math.pi * rays), torch.cos(2**k * math.pi * rays)]
        return self.conv(torch.cat([features] + [p.to(features.dtype) for p in parts], 1))


# Fusion over views --------------------------------------------------------------------------


def mean_over_views(features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """features [N, V, C], valid bool [N, V] -> [N, C]: the mean over the valid views (0 where
    none), mv_fusion.py:mv_fusion_mean."""
    weights = valid.to(features.dtype)
    count = weights.sum(1, keepdim=True).clamp(min=1)
    return (features * weights[..., None]).sum(1) / count


class MVFusionMean(nn.Module):
    def forward(self, features, depth, valid):
        return mean_over_views(features, valid)


class MVFusionTransformer(nn.Module):
    """mv_fusion.py:MVFusionTransformer without the projective-occupancy weighting: tokens =
    Linear(features + normalised depth), `layers` encoder layers of `heads` heads (feed-forward
    2 C, no dropout) where each view attends to the valid views and to itself, then the mean over
    the valid views. Processes voxels in chunks of `chunk` to bound memory."""

    def __init__(self, channels: int, layers: int = 2, heads: int = 2, chunk: int = 16384):
        super().__init__()
        self.heads, self.chunk = heads, chunk
        self.depth_mlp = nn.Linear(channels + 1, channels)
        nn.init.kaiming_normal_(self.depth_mlp.weight)
        nn.init.zeros_(self.depth_mlp.bias)
        layer = nn.TransformerEncoderLayer(channels, heads, 2 * channels, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """features [N, V, C], depth [N, V] metres, valid bool [N, V] -> [N, C]."""
        out = []
        views = features.shape[1]
        eye = torch.eye(views, dtype=torch.bool, device=features.device)
        for s in range(0, len(features), self.chunk):
            f, d, m = features[s:s + self.chunk], depth[s:s + self.chunk], valid[s:s + self.chunk]
            tokens = self.depth_mlp(torch.cat([f, ((d - DEPTH_MEAN) / DEPTH_SCALE)[..., None].to(f.dtype)], -1))
            blocked = ~(m[:, None, :] | eye)  # [n, V(query), V(key)]: True = may not attend
            blocked = blocked.repeat_interleave(self.heads, dim=0)
            out.append(mean_over_views(self.encoder(tokens, mask=blocked), m))
        return torch.cat(out) if out else features.new_zeros((0, features.shape[-1]))


# The network --------------------------------------------------------------------------------


class IOARNet(nn.Module):
    """IOAR's network for one configuration (module docstring). `forward(batch)` -> dict:

    masks: [coarse, medium, fine] bool [B, 1, X_l, Y_l, Z_l] active voxels of each level;
    occupancy: {level: logits [B, 3, X_l, Y_l, Z_l]} for every level with an occupancy branch;
    tsdf_logits: {level: [B, 1, X_l, Y_l, Z_l]}; tsdf: fine TSDF [B, 1, X, Y, Z] =
    1.05 tanh(fine logit), 0 outside masks[2]. Levels are 0 (coarse), 1, 2 (fine).
    """

    def __init__(self, config: "IOARNetwork"):
        super().__init__()
        self.config = config
        channels = tuple(config.feature_channels)
        self.backbone = MnasMulti(channels) if config.backbone == "mnasnet" else SmallMulti(channels)
        if config.backbone == "mnasnet" and config.backbone_weights:
            self.backbone.load_weights(config.backbone_weights)
        self.view_encoders = nn.ModuleList(ViewDirectionEncoder(c, config.view_frequencies) for c in channels)
        self.layer_norms = nn.ModuleList(nn.LayerNorm(c) for c in channels)
        self.fusions = nn.ModuleList(
            MVFusionTransformer(c, config.transformer_layers, config.transformer_heads) if kind == "transformer"
            else MVFusionMean() for c, kind in zip(channels, config.fusion))
        self.tsdf_nets, self.occ_nets = nn.ModuleList(), nn.ModuleList()
        prev_tsdf = prev_occ = 0
        for level, (c, base) in enumerate(zip(channels, config.unet_base)):
            self.tsdf_nets.append(SparseUNet(c + prev_tsdf + (1 if level else 0), base, 1))
            prev_tsdf = self.tsdf_nets[-1].out_features
            if self.has_occupancy(level):
                self.occ_nets.append(SparseUNet(c + prev_occ + (3 if level else 0), base, 3))
                prev_occ = self.occ_nets[-1].out_features

    def has_occupancy(self, level: int) -> bool:
        """The occupancy branch exists at the coarse and medium levels, and at the fine level
        when `fine_occupancy` (the original computes it there but gives it no loss)."""
        return level < 2 or self.config.fine_occupancy

    def image_features(self, images, K, cam_to_world):
        """Per level: view-encoded feature maps [B, V, C_l, h_l, w_l]."""
        B, V = images.shape[:2]
        flat = images.flatten(0, 1)
        maps = self.backbone(flat)
        size = tuple(images.shape[-2:])
        out = []
        for level, f in enumerate(maps):
            rays = pixel_rays(K.flatten(0, 1), cam_to_world.flatten(0, 1), tuple(f.shape[-2:]), size)
            f = self.view_encoders[level](f, rays)
            out.append(f.reshape(B, V, *f.shape[1:]))
        return out

    def back_project(self, level, features, mask, batch):
        """Fused, LayerNorm-ed features [B, C, X_l, Y_l, Z_l] of the active voxels (0 elsewhere)."""
        B, V, C, h, w = features.shape
        voxel_size = self.config.voxel_sizes[level]
        image_size = tuple(batch["images"].shape[-2:])
        dense = features.new_zeros((B, C, *mask.shape[2:]))
        for b in range(B):
            index = mask[b, 0].nonzero()
            if len(index) == 0:
                continue
            points = voxel_points(index, batch["origin"][b].to(batch["K"].dtype), voxel_size)
            grid, z, valid = project_points(points, batch["K"][b], batch["cam_to_world"][b], (h, w), image_size)
            valid = valid & batch["view_valid"][b][:, None]
            sampled = F.grid_sample(features[b], grid[:, None].to(features.dtype), mode="bilinear",
                                    padding_mode="reflection", align_corners=True)[:, :, 0]  # [V, C, N]
            fused = self.fusions[level](sampled.permute(2, 0, 1), z.t(), valid.t())
            fused = self.layer_norms[level](fused)
            dense[b, :, index[:, 0], index[:, 1], index[:, 2]] = fused.t().to(dense.dtype)
        return dense

    def forward(self, batch: dict) -> dict:
        feats2d = self.image_features(batch["images"], batch["K"], batch["cam_to_world"])
        B = batch["images"].shape[0]
        X, Y, Z = (int(d) for d in batch["dims"])
        generator = batch.get("generator")
        masks, occupancy, tsdf_logits = [], {}, {}
        prev_tsdf = prev_occ = None
        mask = None
        for level in range(3):
            factor = 2 ** (2 - level)
            shape = (X // factor, Y // factor, Z // factor)
            if level == 0:
                mask = torch.ones((B, 1, *shape), dtype=torch.bool, device=batch["images"].device)
            else:
                mask = upsample(keep, 2)
                prev_tsdf, prev_occ = upsample(prev_tsdf, 2), upsample(prev_occ, 2) if prev_occ is not None else None
                if self.training:
                    mask = subsample(mask, self.config.max_voxels[level - 1], generator)
            masks.append(mask)
            fused = self.back_project(level, feats2d[level], mask, batch)
            m = mask.to(fused.dtype)
            tsdf_in = [fused] if prev_tsdf is None else [fused, prev_tsdf * m]
            logits, tsdf_feat = self.tsdf_nets[level](torch.cat(tsdf_in, 1), mask)
            tsdf_logits[level] = logits
            prev_tsdf = torch.cat([tsdf_feat, logits], 1)
            if self.has_occupancy(level):
                occ_in = [fused] if prev_occ is None else [fused, prev_occ * m]
                occ_logits, occ_feat = self.occ_nets[level](torch.cat(occ_in, 1), mask)
                occupancy[level] = occ_logits
                prev_occ = torch.cat([occ_feat, occ_logits], 1)
            if level < 2:
                keep = mask & (occupancy[level].argmax(1, keepdim=True) == SURFACE_CLASS)
        tsdf = masked(TSDF_SCALE * torch.tanh(tsdf_logits[2]), masks[2])
        return {"masks": masks, "occupancy": occupancy, "tsdf_logits": tsdf_logits, "tsdf": tsdf}


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Each voxel copied to its factor^3 children (nearest): [B, C, X, Y, Z] -> [B, C, fX, fY, fZ]."""
    if x.dtype == torch.bool:
        return upsample(x.to(torch.uint8), factor).bool()
    return x.repeat_interleave(factor, 2).repeat_interleave(factor, 3).repeat_interleave(factor, 4)


def subsample(mask: torch.Tensor, limit: int, generator: torch.Generator | None) -> torch.Tensor:
    """mask bool [B, 1, ...] with at most `limit` active voxels per batch element, the kept ones
    drawn uniformly without replacement (IOAR.py:get_subsample_inds)."""
    out = mask.clone()
    for b in range(len(mask)):
        flat = out[b].view(-1)
        active = flat.nonzero()[:, 0]
        if len(active) > limit:
            order = torch.randperm(len(active), generator=generator, device="cpu").to(active.device)
            flat[active[order[limit:]]] = False
    return out


def log_transform(tsdf: torch.Tensor) -> torch.Tensor:
    """sign(x) log(1 + |x|), IOAR/utils.py:log_transform."""
    return torch.sign(tsdf) * torch.log1p(tsdf.abs())


def ioar_losses(output: dict, targets: dict) -> tuple[torch.Tensor, dict]:
    """IOAR.py:losses without the projective-occupancy term: cross-entropy of the 3 classes over
    the active, labelled voxels of the coarse and medium levels, plus L1 between log-transformed
    fine TSDFs over the active voxels of the fine loss mask. All weights 1; a level with no
    voxel contributes 0.

    targets: labels [coarse, medium] int64 [B, X_l, Y_l, Z_l] (-1 = no label: outside the
    scene's volume), tsdf float [B, X, Y, Z], tsdf_mask bool [B, X, Y, Z]. Returns (loss, stats)
    with stats occ_acc (medium-level accuracy over the voxels scored, NaN when none) and tsdf_l1
    (mean |pred - target| of the fine TSDF, NaN when no voxel), floats.
    """
    loss = output["tsdf"].new_zeros(())
    stats = {"occ_acc": float("nan"), "tsdf_l1": float("nan")}
    for level in (0, 1):
        labels = targets["labels"][level]
        scored = output["masks"][level][:, 0] & (labels >= 0)
        if scored.any():
            logits = output["occupancy"][level].permute(0, 2, 3, 4, 1)[scored]
            loss = loss + F.cross_entropy(logits.float(), labels[scored])
            if level == 1:
                stats["occ_acc"] = float((logits.detach().argmax(-1) == labels[scored]).float().mean())
    scored = output["masks"][2][:, 0] & targets["tsdf_mask"]
    if scored.any():
        pred = output["tsdf"][:, 0][scored].float()
        target = targets["tsdf"][scored]
        loss = loss + F.l1_loss(log_transform(pred), log_transform(target))
        stats["tsdf_l1"] = float((pred.detach() - target).abs().mean())
    return loss, stats
