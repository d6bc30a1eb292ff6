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
   2 pre-norm layers, 2 heads, tokens = features + normalised depth (z - 1.85) / 0.85, each
   view attending to the valid views and itself, then the mean over valid views, or in the
   fine-tuning phase a softmax over per-view projective-occupancy logits with a null slot
   (`occupancy_weighted_mean`); or `MVFusionMean`), then LayerNorm.
3. Two sparse UNets per level (`stages.models.sparse3d.SparseUNet`): a TSDF branch (1 channel)
   and an occupancy branch (3 classes: inner / surface / outer), each fed with the fused
   features, its own previous-level features and its own previous-level logits (up-sampled x2
   by copying, IOAR.py's Upsampler).
4. At the coarse and medium levels only voxels whose occupancy argmax is 1 (surface) are carried
   to the next level (their 8 children); in training at most `max_voxels` (2^14 medium, 2^16
   fine) are kept per crop, drawn at random. The fine TSDF is 1.05 * tanh(logit).
5. Losses (`ioar_losses`): cross-entropy of the 3 classes at the coarse and medium levels, L1
   of log-transformed fine TSDFs, and at every transformer level the projective-occupancy BCE
   (is the voxel within 3 voxels of each view's measured depth?). Training phases
   (`IOARNet.set_training_phase`): phase 1 may freeze the backbone's trunk; phase 2 trains it
   (not its BatchNorm weights) and weights the views by their projective occupancy.

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
    """IOAR/VoRTX's top-down path (cnn2d.py): lateral BatchNorm-ReLU-1x1 convs (no bias) to the
    coarsest width, bilinear up-sampling (align_corners=False; to the finer map's size, the
    original's factor 2 on 640 x 480 images), and per-level BatchNorm-ReLU-conv outputs to the
    level's width (coarse 1x1, others 3x3, no bias), all convs Kaiming-initialised."""

    def __init__(self, in_channels: tuple[int, int, int], out_channels: tuple[int, int, int]):
        super().__init__()
        c2, c1, c0 = in_channels  # stride 16, 8, 4
        top = c2

        def unit(cin, cout, kernel):
            conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
            nn.init.kaiming_normal_(conv.weight)
            return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), conv)

        self.inner1 = unit(c1, top, 1)
        self.inner2 = unit(c0, top, 1)
        self.out1 = unit(top, out_channels[0], 1)
        self.out2 = unit(top, out_channels[1], 3)
        self.out3 = unit(top, out_channels[2], 3)

    def forward(self, c0, c1, c2):
        coarse = self.out1(c2)
        inner = F.interpolate(c2, size=c1.shape[-2:], mode="bilinear", align_corners=False) + self.inner1(c1)
        medium = self.out2(inner)
        inner = F.interpolate(inner, size=c0.shape[-2:], mode="bilinear", align_corners=False) + self.inner2(c0)
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

    def trunk(self) -> nn.Module:
        """MNASNet's layers (the original's conv0-conv2), frozen in phase 1."""
        return self.layers

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

    def trunk(self) -> nn.Module:
        """The convolutions below the FPN."""
        return nn.ModuleList([self.stem, self.down1, self.down2])

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


def occupancy_weighted_mean(features: torch.Tensor, logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """features [N, V, C], projective-occupancy logits [N, V], valid bool [N, V] -> [N, C]: the
    sum of the valid views' features weighted by a softmax over their logits and a null slot of
    logit 0 and feature 0 (mv_fusion.py, use_proj_occ): a voxel no view sees as occupied gets
    little of any; one without a valid view gets 0."""
    masked = logits.masked_fill(~valid, float("-inf"))
    null = masked.new_zeros((len(masked), 1))
    weights = torch.softmax(torch.cat([masked, null], 1), dim=1)[:, :-1]
    return (features * weights[..., None].to(features.dtype)).sum(1)


class MVFusionMean(nn.Module):
    """The masked mean over the valid views; no projective-occupancy logits."""

    def forward(self, features, depth, valid, weighting: bool = False):
        return mean_over_views(features, valid), None


class MVFusionTransformer(nn.Module):
    """mv_fusion.py:MVFusionTransformer: tokens = Linear(features + normalised depth), `layers`
    pre-norm encoder layers (transformer.py's EncoderBlock: x + attention(LayerNorm x), then
    x + MLP(LayerNorm x); `heads` heads, feed-forward 2 C, ReLU, no dropout, no final norm) where
    each view attends to the valid views and to itself; a Linear gives each view's projective-
    occupancy logit (is the voxel within 3 voxels of that view's depth?). The fused feature is
    the mean over the valid views, or with `weighting` (the original's phase 2, use_proj_occ)
    `occupancy_weighted_mean`. Processes voxels in chunks of `chunk` to bound memory."""

    def __init__(self, channels: int, layers: int = 2, heads: int = 2, chunk: int = 16384):
        super().__init__()
        self.heads, self.chunk = heads, chunk
        self.depth_mlp = nn.Linear(channels + 1, channels)
        self.proj_occ = nn.Linear(channels, 1)
        for linear in (self.depth_mlp, self.proj_occ):
            nn.init.kaiming_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
        layer = nn.TransformerEncoderLayer(channels, heads, 2 * channels, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, weighting: bool = False):
        """features [N, V, C], depth [N, V] metres, valid bool [N, V] -> (fused [N, C],
        projective-occupancy logits [N, V])."""
        fused, logits = [], []
        views = features.shape[1]
        eye = torch.eye(views, dtype=torch.bool, device=features.device)
        for s in range(0, len(features), self.chunk):
            f, d, m = features[s:s + self.chunk], depth[s:s + self.chunk], valid[s:s + self.chunk]
            tokens = self.depth_mlp(torch.cat([f, ((d - DEPTH_MEAN) / DEPTH_SCALE)[..., None].to(f.dtype)], -1))
            blocked = ~(m[:, None, :] | eye)  # [n, V(query), V(key)]: True = may not attend
            blocked = blocked.repeat_interleave(self.heads, dim=0)
            encoded = self.encoder(tokens, mask=blocked)
            occ = self.proj_occ(encoded)[..., 0]
            fused.append(occupancy_weighted_mean(encoded, occ, m) if weighting else mean_over_views(encoded, m))
            logits.append(occ)
        if not fused:
            return features.new_zeros((0, features.shape[-1])), features.new_zeros((0, views))
        return torch.cat(fused), torch.cat(logits)


# The network --------------------------------------------------------------------------------


class IOARNet(nn.Module):
    """IOAR's network for one configuration (module docstring). `forward(batch)` -> dict:

    masks: [coarse, medium, fine] bool [B, 1, X_l, Y_l, Z_l] active voxels of each level;
    occupancy: {level: logits [B, 3, X_l, Y_l, Z_l]} for every level with an occupancy branch;
    tsdf_logits: {level: [B, 1, X_l, Y_l, Z_l]}; tsdf: fine TSDF [B, 1, X, Y, Z] =
    1.05 tanh(fine logit), 0 outside masks[2]; proj_occ: {level: [per batch element None or
    (logits [V, N], z [V, N] camera depth in metres, pixels [V, N, 2] the voxels' image pixels
    as grid_sample(align_corners=True) coordinates of the H x W input images, valid bool [V, N]
    the views the fusion used)]} for every level whose fusion gives projective-occupancy logits,
    N = that element's active voxels in mask order. Levels are 0 (coarse), 1, 2 (fine).

    The buffer `proj_occ_weighting` (saved with the weights) switches the transformer fusion to
    the occupancy-weighted mean: `set_training_phase` turns it on for phase 2, and a model
    trained through phase 2 keeps it at inference.
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
        self.register_buffer("proj_occ_weighting", torch.tensor(False))
        self.tsdf_nets, self.occ_nets = nn.ModuleList(), nn.ModuleList()
        prev_tsdf = prev_occ = 0
        for level, (c, base) in enumerate(zip(channels, config.unet_base)):
            backend = config.sparse_backend
            self.tsdf_nets.append(SparseUNet(c + prev_tsdf + (1 if level else 0), base, 1, backend))
            prev_tsdf = self.tsdf_nets[-1].out_features
            if self.has_occupancy(level):
                self.occ_nets.append(SparseUNet(c + prev_occ + (3 if level else 0), base, 3, backend))
                prev_occ = self.occ_nets[-1].out_features

    def has_occupancy(self, level: int) -> bool:
        """The occupancy branch exists at the coarse and medium levels, and at the fine level
        when `fine_occupancy` (the original computes it there but gives it no loss)."""
        return level < 2 or self.config.fine_occupancy

    def set_training_phase(self, finetune: bool, freeze_trunk: bool) -> bool:
        """The state of a training phase (IOAR's lightningmodel.py:FineTuning under the
        pytorch-lightning 1.5 the original pins). Phase 1 (finetune False) with `freeze_trunk`:
        the backbone's trunk (MNASNet's conv0-conv2) gets no gradient (BaseFinetuning.freeze:
        its BatchNorms still normalise with the batch's statistics and update their running
        ones, as modules in training mode do). Phase 2: the trunk trains again except its
        BatchNorm weights and biases (unfreeze_and_add_param_group(train_bn=False) leaves them
        out of the optimizer), and the transformer fusion uses the occupancy-weighted mean.
        Without `freeze_trunk` every parameter trains in both phases. Returns whether the set of
        parameters that require gradients changed."""
        self.proj_occ_weighting.fill_(bool(finetune))
        changed = False
        for module in self.backbone.trunk().modules():
            is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
            trains = not freeze_trunk or (finetune and not is_norm)
            for p in module.parameters(recurse=False):
                changed |= p.requires_grad != trains
                p.requires_grad_(trains)
        return changed

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
        """(Fused, LayerNorm-ed features [B, C, X_l, Y_l, Z_l] of the active voxels, 0 elsewhere;
        per batch element None or the projective-occupancy record of `forward`'s proj_occ)."""
        B, V, C, h, w = features.shape
        voxel_size = self.config.voxel_sizes[level]
        image_size = tuple(batch["images"].shape[-2:])
        dense = features.new_zeros((B, C, *mask.shape[2:]))
        records = []
        for b in range(B):
            index = mask[b, 0].nonzero()
            if len(index) == 0:
                records.append(None)
                continue
            points = voxel_points(index, batch["origin"][b].to(batch["K"].dtype), voxel_size)
            K, pose = batch["K"][b], batch["cam_to_world"][b]
            grid, z, valid = project_points(points, K, pose, (h, w), image_size)
            valid = valid & batch["view_valid"][b][:, None]
            sampled = F.grid_sample(features[b], grid[:, None].to(features.dtype), mode="bilinear",
                                    padding_mode="reflection", align_corners=True)[:, :, 0]  # [V, C, N]
            fused, logits = self.fusions[level](sampled.permute(2, 0, 1), z.t(), valid.t(),
                                                bool(self.proj_occ_weighting))
            fused = self.layer_norms[level](fused)
            dense[b, :, index[:, 0], index[:, 1], index[:, 2]] = fused.t().to(dense.dtype)
            if logits is None:
                records.append(None)
            else:
                pixels = project_points(points, K, pose, image_size, image_size)[0]
                records.append((logits.t(), z, pixels, valid))
        return dense, records

    def forward(self, batch: dict) -> dict:
        feats2d = self.image_features(batch["images"], batch["K"], batch["cam_to_world"])
        B = batch["images"].shape[0]
        X, Y, Z = (int(d) for d in batch["dims"])
        generator = batch.get("generator")
        masks, occupancy, tsdf_logits, proj_occ = [], {}, {}, {}
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
            fused, records = self.back_project(level, feats2d[level], mask, batch)
            if any(r is not None for r in records):
                proj_occ[level] = records
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
        return {"masks": masks, "occupancy": occupancy, "tsdf_logits": tsdf_logits, "tsdf": tsdf,
                "proj_occ": proj_occ}


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


PROJ_OCC_TRUNCATION = 3  # voxels: a view's pair is "occupied" when |z - depth| < 3 voxel sizes


def projective_occupancy_loss(records: list, depth: torch.Tensor, truncation: float) -> torch.Tensor | None:
    """IOAR.py:compute_proj_occ_loss for one level: binary cross-entropy (with logits) between
    each (view, voxel) pair's projective-occupancy logit and whether the voxel lies within
    `truncation` metres of the depth the view measured at its pixel, |z - depth| < truncation.
    Pairs count where the fusion used the view and the depth map has a reading (depth > 0),
    pooled over the batch elements (the original returns after its first element: a quirk not
    kept). The depth is read at the nearest pixel of the voxel's projection into the H x W
    image (the original samples its full-resolution map with the feature level's coordinates
    and align_corners=False, a shift of up to a feature pixel: not kept).

    records: per batch element None or (logits [V, N], z [V, N] metres, pixels [V, N, 2]
    grid_sample(align_corners=True) coordinates of the H x W image, valid bool [V, N]) (IOARNet's
    proj_occ); depth float [B, V, H, W] metres, 0 = no reading. Returns the mean over the
    pairs, or None when no pair counts.
    """
    logits, targets = [], []
    for b, record in enumerate(records):
        if record is None:
            continue
        occ, z, pixels, valid = record
        measured = F.grid_sample(depth[b][:, None].to(pixels.dtype), pixels[:, None], mode="nearest",
                                 padding_mode="zeros", align_corners=True)[:, 0, 0]  # [V, N]
        scored = valid & (measured > 0)
        logits.append(occ[scored])
        targets.append(((z - measured).abs() < truncation)[scored])
    if not logits or sum(len(x) for x in logits) == 0:
        return None
    logits, targets = torch.cat(logits), torch.cat(targets)
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def ioar_losses(output: dict, targets: dict, voxel_sizes=None) -> tuple[torch.Tensor, dict]:
    """IOAR.py:losses: cross-entropy of the 3 classes over the active, labelled voxels of the
    coarse and medium levels, L1 between log-transformed fine TSDFs over the active voxels of the
    fine loss mask, and at every level with projective-occupancy logits (transformer fusion)
    `projective_occupancy_loss` with a truncation of 3 voxels of that level. All weights 1; a
    term with nothing to score contributes 0.

    targets: labels [coarse, medium] int64 [B, X_l, Y_l, Z_l] (-1 = no label: outside the
    scene's volume), tsdf float [B, X, Y, Z], tsdf_mask bool [B, X, Y, Z], depth float
    [B, V, H, W] metres (0 = no reading; needed when output has proj_occ); voxel_sizes: metres
    per level (coarse, medium, fine). Returns (loss, stats) with stats occ_acc (medium-level
    accuracy over the voxels scored), tsdf_l1 (mean |pred - target| of the fine TSDF) and
    proj_occ_bce (the projective-occupancy terms' mean over the levels that have one), floats,
    NaN when there is nothing to score.
    """
    loss = output["tsdf"].new_zeros(())
    stats = {"occ_acc": float("nan"), "tsdf_l1": float("nan"), "proj_occ_bce": float("nan")}
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
    terms = []
    for level, records in sorted(output.get("proj_occ", {}).items()):
        if voxel_sizes is None or "depth" not in targets:
            raise ValueError("the projective-occupancy loss needs targets['depth'] and voxel_sizes")
        term = projective_occupancy_loss(records, targets["depth"], PROJ_OCC_TRUNCATION * voxel_sizes[level])
        if term is not None:
            loss = loss + term
            terms.append(float(term.detach()))
    if terms:
        stats["proj_occ_bce"] = sum(terms) / len(terms)
    return loss, stats
