"""SoftRas's soft rasterizer (Liu et al., "Soft Rasterizer", ICCV 2019) in plain torch.

The forward rules follow ShichenLiu/SoftRas `soft_renderer/cuda/soft_rasterize_cuda_kernel.cu`
(`forward_soft_rasterize_cuda_kernel`, Euclidean distance, "prod" alpha, "softmax" colour); the
gradients are torch autograd's of the same expressions, so the CUDA build is not needed.

Conventions (SoftRas's):

* Vertices are already projected: x, y in NDC ([-1, 1] spans the image, x right, y **up**) and
  z a positive depth (smaller is nearer; SoftRas's `near`/`far` window it for colour).
* Image [B, C+1, H, W] with H = W = `image_size`: channels are the C colour channels then alpha;
  row 0 is the top of the image (y = +1), column 0 the left (x = -1). Pixel (row r, column c) is
  sampled at its centre x = (2c + 1 - S) / S, y = (S - 1 - 2r) / S.
* Per pixel p and face f: D = sigmoid(sign * d^2 / sigma), d the Euclidean distance in NDC from
  the pixel centre to the triangle's boundary, sign +1 strictly inside, -1 otherwise.
  Alpha = 1 - prod_f (1 - D), accumulated as exp(sum_f logsigmoid(-sign d^2 / sigma)).
* Colour = softmax over the faces covering p of D * exp(z_n / gamma), with z_n = (far - z) /
  (far - near) and z = 1 / sum_k(w_k / z_k) from the barycentric weights w clipped to [0, 1] and
  renormalised (the kernel's perspective-correct depth), plus a background term. The kernel
  starts its running sum at exp(eps / gamma) while its running maximum starts at eps, so in
  absolute terms the background's weight is exp(2 eps / gamma); that is what is computed here.
  Faces whose z lies outside [near, far] (and, unless `double_side`, back faces: clockwise in
  these y-up coordinates is front, as in the kernel's `check_face_frontside`) add to alpha but
  not to colour, as in the kernel.

Cut-off (the kernel's, and the reason this is fast): a face is skipped at a pixel outside it
when d^2 >= sigma * ln(1 / dist_eps - 1), i.e. when D <= dist_eps. Each face therefore only
visits the pixels of its bounding box grown by r = sqrt(sigma * ln(1 / dist_eps - 1)) (plus one
pixel of margin), so work and memory grow with the covered pixels, not pixels x faces. Error
bound against the untruncated formula: at each pixel, 0 <= alpha_exact - alpha <= sum of the
skipped D <= (number of skipped faces) * dist_eps. E.g. UMR's sigma = 1e-5, dist_eps = 1e-10
gives r = 0.0152 NDC (1.9 px at 256 px). Outputs equal SoftRas's (which skips the same pairs)
up to floating-point rounding.

Distances: d is the true point-to-triangle-boundary distance (minimum over the three edge
segments). The kernel picks one edge by barycentric region with a correction for obtuse
corners; both give the same distance wherever the kernel's choice is the nearest edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TEXTURE_TYPES = ("face", "vertex", "surface")


@dataclass(frozen=True)
class SoftRasterSettings:
    """SoftRas's rasterisation parameters (defaults: `SoftRasterizer.__init__` in
    soft_renderer/rasterizer.py; UMR uses sigma 1e-5, gamma 1e-4, dist_eps 1e-10).

    image_size: output side in pixels. sigma: sharpness of D (NDC units squared). gamma: depth
    softmax temperature. dist_eps: D below which a face is skipped at a pixel. eps: background
    depth term. near, far: depth window for colour. background: colour of empty pixels (one
    value per colour channel; empty tuple means zeros). double_side: colour back faces too
    (SoftRas's `fill_back`, default True). max_pairs: (face, pixel) pairs processed per chunk,
    which bounds the temporaries of the forward pass."""

    image_size: int = 64
    sigma: float = 1e-5
    gamma: float = 1e-4
    dist_eps: float = 1e-4
    eps: float = 1e-3
    near: float = 1.0
    far: float = 100.0
    background: tuple[float, ...] = ()
    double_side: bool = True
    max_pairs: int = 1 << 20

    def __post_init__(self):
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if not (self.sigma > 0 and self.gamma > 0):
            raise ValueError("sigma and gamma must be positive")
        if not 0 < self.dist_eps < 0.5:
            raise ValueError(f"dist_eps must be in (0, 0.5), got {self.dist_eps}")
        if not self.far > self.near:
            raise ValueError("far must be greater than near")

    @property
    def threshold(self) -> float:
        """Squared NDC distance beyond which an outside face is skipped (D <= dist_eps)."""
        return self.sigma * math.log(1.0 / self.dist_eps - 1.0)

    @property
    def radius(self) -> float:
        """How far (NDC) a face's influence reaches outside the face."""
        return math.sqrt(self.threshold)


@dataclass
class Fragments:
    """The (face, pixel) pairs a face influences, after the cut-off.

    pixel: [P] int64 flat index b * S * S + row * S + col; face: [P] int64 flat index
    b * F + f; logit: [P] sign * d^2 / sigma (D = sigmoid(logit)); bary: [P, 3] barycentric
    weights clipped to [0, 1] and renormalised (SoftRas's w_clip); depth: [P] interpolated z."""

    pixel: torch.Tensor
    face: torch.Tensor
    logit: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor


def pixel_centres(image_size: int, dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """NDC x of column centres [S] and y of row centres [S] (row 0 at the top, y = +1 side)."""
    s = image_size
    idx = torch.arange(s, dtype=dtype, device=device)
    return (2 * idx + 1 - s) / s, (s - 1 - 2 * idx) / s


def pair_geometry(px, py, x0, y0, x1, y1, x2, y2, z0, z1, z2, threshold: float, with_colour: bool = True):
    """Per (pixel, face) pair: (keep, inside, d2, bary_clipped [..., 3], depth).

    All arguments broadcast against each other (pixel centres px, py and triangle corner
    coordinates); keep is the kernel's cut-off (inside, or d^2 < threshold). Without
    with_colour, bary and depth are None."""
    det = x2 * (y0 - y1) + x0 * (y1 - y2) + x1 * (y2 - y0)
    det = torch.where(det > 0, det.clamp_min(1e-10), det.clamp_max(-1e-10))
    w0 = ((y1 - y2) * px + (x2 - x1) * py + (x1 * y2 - x2 * y1)) / det
    w1 = ((y2 - y0) * px + (x0 - x2) * py + (x2 * y0 - x0 * y2)) / det
    w2 = ((y0 - y1) * px + (x1 - x0) * py + (x0 * y1 - x1 * y0)) / det
    inside = (w0 > 0) & (w1 > 0) & (w2 > 0) & (w0 < 1) & (w1 < 1) & (w2 < 1)
    d2 = torch.minimum(
        torch.minimum(_segment_d2(px, py, x0, y0, x1, y1), _segment_d2(px, py, x1, y1, x2, y2)),
        _segment_d2(px, py, x2, y2, x0, y0),
    )
    keep = inside | (d2 < threshold)
    if not with_colour:
        return keep, inside, d2, None, None
    w = torch.stack(torch.broadcast_tensors(w0, w1, w2), dim=-1).clamp(0.0, 1.0)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-5)
    # Corners at z ~ 0 (behind an orthographic camera's offset) would give inf depths whose
    # gradient is NaN even where the near/far window drops the pair: divide by |z| >= 1e-6 and
    # by an inverse depth of |.| >= 1e-12 (the resulting depth falls outside [near, far]).
    inv = sum(w[..., k] / _away_from_zero(z, 1e-6) for k, z in enumerate((z0, z1, z2)))
    depth = 1.0 / _away_from_zero(inv, 1e-12)
    return keep, inside, d2, w, depth


def _away_from_zero(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x where |x| > eps, else eps with x's sign (+eps at 0), with gradient 0 there."""
    return torch.where(x.abs() > eps, x, torch.where(x < 0, -eps, eps))


def _segment_d2(px, py, ax, ay, bx, by):
    ex, ey = bx - ax, by - ay
    t = ((px - ax) * ex + (py - ay) * ey) / (ex * ex + ey * ey).clamp_min(1e-30)
    t = t.clamp(0.0, 1.0)
    dx = ax + t * ex - px
    dy = ay + t * ey - py
    return dx * dx + dy * dy


def front_facing(x0, y0, x1, y1, x2, y2) -> torch.Tensor:
    """SoftRas's `check_face_frontside`: clockwise in y-up NDC is the front."""
    return (y2 - y0) * (x1 - x0) < (y1 - y0) * (x2 - x0)


def _face_windows(corners: torch.Tensor, size: int, radius: float):
    """Pixel windows [N] (row_lo, col_lo, rows, cols) covering each face's grown bounding box.

    corners: [N, 3, 2] NDC. One pixel of margin on each side makes the window a superset of the
    pixels the cut-off keeps whatever the rounding, so the per-pair test alone decides."""
    with torch.no_grad():
        c = corners.detach().double()
        finite = torch.isfinite(c).all(dim=2).all(dim=1)
        c = torch.nan_to_num(c)
        lo = c.amin(dim=1) - radius
        hi = c.amax(dim=1) + radius
        col_lo = torch.floor((lo[:, 0] * size + size - 1) / 2).clamp(0, size - 1)
        col_hi = torch.ceil((hi[:, 0] * size + size - 1) / 2).clamp(-1, size - 1)
        row_lo = torch.floor((size - 1 - hi[:, 1] * size) / 2).clamp(0, size - 1)
        row_hi = torch.ceil((size - 1 - lo[:, 1] * size) / 2).clamp(-1, size - 1)
        cols = (col_hi - col_lo + 1).clamp_min(0).long()
        rows = (row_hi - row_lo + 1).clamp_min(0).long()
        empty = ~finite | (cols == 0) | (rows == 0)
        cols = torch.where(empty, 0, cols)
        rows = torch.where(empty, 0, rows)
        return row_lo.long(), col_lo.long(), rows, cols


def _check_inputs(vertices, faces, textures, texture_type):
    if vertices.dim() != 3 or vertices.shape[2] != 3:
        raise ValueError(f"vertices must be [B, V, 3], got {tuple(vertices.shape)}")
    b, v = vertices.shape[:2]
    if faces.dim() == 2:
        faces = faces.unsqueeze(0).expand(b, -1, -1)
    if faces.dim() != 3 or faces.shape[0] != b or faces.shape[2] != 3:
        raise ValueError(f"faces must be [F, 3] or [B, F, 3], got {tuple(faces.shape)}")
    faces = faces.long()
    if faces.numel() and (faces.min() < 0 or faces.max() >= v):
        raise ValueError("face index out of range")
    if textures is not None:
        if texture_type not in TEXTURE_TYPES:
            raise ValueError(f"texture_type must be one of {TEXTURE_TYPES}, got {texture_type!r}")
        want = 3 if texture_type == "face" else 4
        if textures.dim() != want or tuple(textures.shape[:2]) != (b, faces.shape[1]):
            raise ValueError(
                f"{texture_type} textures must be [B, F{', K' if want == 4 else ''}, C] with "
                f"B={b}, F={faces.shape[1]}, got {tuple(textures.shape)}"
            )
        if texture_type == "vertex" and textures.shape[2] != 3:
            raise ValueError(f"vertex textures need 3 corners per face, got {textures.shape[2]}")
        if texture_type == "surface":
            res = math.isqrt(textures.shape[2])
            if res * res != textures.shape[2] or res < 1:
                raise ValueError(f"surface textures need R*R samples per face, got {textures.shape[2]}")
    return faces


def soft_fragments(vertices: torch.Tensor, faces: torch.Tensor, settings: SoftRasterSettings) -> Fragments:
    """Enumerate the (face, pixel) pairs inside each face's grown window and apply the cut-off.

    vertices: [B, V, 3] projected (NDC x, y; depth z); faces: [F, 3] or [B, F, 3] int.
    Pairs are generated face by face in chunks of at most `settings.max_pairs`. Raises
    ValueError on malformed shapes or out-of-range face indices."""
    faces = _check_inputs(vertices, faces, None, None)
    b, f = faces.shape[:2]
    s = settings.image_size
    tri = torch.gather(vertices, 1, faces.reshape(b, -1, 1).expand(-1, -1, 3)).reshape(b * f, 3, 3)
    row_lo, col_lo, rows, cols = _face_windows(tri[:, :, :2], s, settings.radius)
    counts = rows * cols
    ends = torch.cumsum(counts, 0)
    xs, ys = pixel_centres(s, vertices.dtype, vertices.device)
    pieces = []
    start_face, done = 0, 0
    total_faces = b * f
    while start_face < total_faces:
        # Faces [start_face, stop) hold at most max_pairs pairs (one face at least).
        stop = int(torch.searchsorted(ends, done + settings.max_pairs, right=True))
        stop = max(stop, start_face + 1)
        chunk_counts = counts[start_face:stop]
        n = int(chunk_counts.sum())
        if n:
            pieces.append(_chunk_pairs(tri, start_face, stop, chunk_counts, n, row_lo, col_lo, cols, xs, ys, s, f, settings))
        done = int(ends[stop - 1])
        start_face = stop
    if not pieces:
        empty = vertices.new_zeros(0)
        return Fragments(empty.long(), empty.long(), empty, vertices.new_zeros(0, 3), empty)
    return Fragments(*(torch.cat(parts) for parts in zip(*pieces)))


def _chunk_pairs(tri, start, stop, chunk_counts, n, row_lo, col_lo, cols, xs, ys, s, f, settings):
    device = tri.device
    local_face = torch.repeat_interleave(torch.arange(start, stop, device=device), chunk_counts, output_size=n)
    offsets = torch.cumsum(chunk_counts, 0) - chunk_counts
    k = torch.arange(n, device=device) - torch.repeat_interleave(offsets, chunk_counts, output_size=n)
    w = cols[local_face]
    row = row_lo[local_face] + torch.div(k, w, rounding_mode="floor")
    col = col_lo[local_face] + k % w
    # Decide the cut-off without autograd, then redo the kept pairs (typically a third to a
    # half of the window) with it: cheaper than recording the whole window.
    with torch.no_grad():
        keep = _pair_terms(tri.detach()[local_face], xs[col], ys[row], settings, with_colour=False)[0]
    idx = keep.nonzero().squeeze(1)
    face, row, col = local_face[idx], row[idx], col[idx]
    _, inside, d2, bary, depth = _pair_terms(tri[face], xs[col], ys[row], settings)
    batch = torch.div(face, f, rounding_mode="floor")
    pixel = (batch * s + row) * s + col
    logit = torch.where(inside, d2, -d2) / settings.sigma
    return pixel, face, logit, bary, depth


def _pair_terms(t, px, py, settings, with_colour=True):
    return pair_geometry(
        px, py, t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1], t[:, 2, 0], t[:, 2, 1],
        t[:, 0, 2], t[:, 1, 2], t[:, 2, 2], settings.threshold, with_colour,
    )


def sample_texture(textures: torch.Tensor, texture_type: str, face: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Colour [P, C] of each pair from textures [B, F, C] ("face"), [B, F, 3, C] ("vertex",
    barycentric) or [B, F, R*R, C] ("surface": SoftRas's `forward_sample_texture` with
    texture_sample_type 0, the R x R triangle-folded grid); face is the flat index b * F + f."""
    flat = textures.reshape(-1, *textures.shape[2:])
    if texture_type == "face":
        return flat[face]
    if texture_type == "vertex":
        return (flat[face] * bary.unsqueeze(-1)).sum(1)
    res = math.isqrt(textures.shape[2])
    with torch.no_grad():
        wx = (bary[:, 0] * res).long()
        wy = (bary[:, 1] * res).long()
        lower = (bary[:, 0] + bary[:, 1]) * res - wx - wy <= 1
        cell = torch.where(lower, wy * res + wx, (res - 1 - wy) * res + (res - 1 - wx))
        cell = cell.clamp(0, res * res - 1)
    return flat[face, cell]


def soft_rasterize(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    textures: torch.Tensor | None = None,
    settings: SoftRasterSettings = SoftRasterSettings(),
    texture_type: str = "surface",
) -> torch.Tensor:
    """Soft-rasterise projected meshes into colour + alpha images.

    vertices: [B, V, 3] float (NDC x, y; depth z > 0); faces: [F, 3] or [B, F, 3] int;
    textures: None (alpha only) or per `texture_type` (see `sample_texture`).
    Returns [B, C+1, S, S]: C colour channels then alpha (C = 0 without textures), row 0 at the
    top (y = +1). Differentiable in vertices and textures. Raises ValueError on bad shapes.
    """
    faces = _check_inputs(vertices, faces, textures, texture_type)
    frag = soft_fragments(vertices, faces, settings)
    face_xy = None
    if textures is not None and not settings.double_side:
        tri = torch.gather(vertices, 1, faces.reshape(faces.shape[0], -1, 1).expand(-1, -1, 3))
        tri = tri.reshape(-1, 3, 3)
        face_xy = tri[:, :, :2]
    return aggregate(frag, vertices.shape[0], settings, textures, texture_type, face_xy)


def aggregate(
    frag: Fragments,
    batch: int,
    settings: SoftRasterSettings,
    textures: torch.Tensor | None,
    texture_type: str,
    face_xy: torch.Tensor | None = None,
) -> torch.Tensor:
    """Alpha (log-sum of 1 - D per pixel) and softmax colour from fragments -> [B, C+1, S, S].

    face_xy: [B*F, 3, 2] corner NDC, only needed to cull back faces when not double_side."""
    s = settings.image_size
    npix = batch * s * s
    dtype, device = frag.logit.dtype, frag.logit.device
    log_empty = torch.zeros(npix, dtype=dtype, device=device).index_add(0, frag.pixel, torch.nn.functional.logsigmoid(-frag.logit))
    alpha = -torch.expm1(log_empty)
    if textures is None:
        return alpha.reshape(batch, 1, s, s)
    channels = textures.shape[-1]
    bg = torch.zeros(channels, dtype=dtype, device=device)
    if settings.background:
        if len(settings.background) != channels:
            raise ValueError(f"background has {len(settings.background)} values for {channels} channels")
        bg = torch.tensor(settings.background, dtype=dtype, device=device)
    idx, weight, bg_weight = colour_weights(frag, batch, settings, face_xy)
    colour = sample_texture(textures, texture_type, frag.face[idx], frag.bary[idx])
    rgb = (bg_weight.unsqueeze(1) * bg).index_add(0, frag.pixel[idx], weight.unsqueeze(1) * colour)
    out = torch.cat([rgb, alpha.unsqueeze(1)], dim=1)
    return out.reshape(batch, s, s, channels + 1).permute(0, 3, 1, 2)


def colour_weights(frag: Fragments, batch: int, settings: SoftRasterSettings, face_xy: torch.Tensor | None = None):
    """SoftRas's depth softmax as normalised weights: (idx [Q] indices of the fragments that
    take part in colour, weight [Q], background weight [B*S*S]); per pixel the weights of its
    fragments plus its background weight sum to 1. Fragment weight D exp(z_n / gamma),
    background exp(2 eps / gamma) (see the module docstring).

    face_xy: [B*F, 3, 2] corner NDC, only needed to cull back faces when not double_side."""
    s = settings.image_size
    npix = batch * s * s
    dtype, device = frag.logit.dtype, frag.logit.device
    valid = (frag.depth >= settings.near) & (frag.depth <= settings.far)
    if not settings.double_side:
        c = face_xy[frag.face]
        valid &= front_facing(c[:, 0, 0], c[:, 0, 1], c[:, 1, 0], c[:, 1, 1], c[:, 2, 0], c[:, 2, 1])
    idx = valid.nonzero().squeeze(1)
    pixel = frag.pixel[idx]
    z_norm = (settings.far - frag.depth[idx]) / (settings.far - settings.near)
    bg_log = 2.0 * settings.eps
    # The maximum only stabilises the exponentials; the softmax does not depend on it.
    peak = torch.full((npix,), bg_log, dtype=dtype, device=device)
    peak = peak.scatter_reduce(0, pixel, z_norm.detach(), "amax", include_self=True)
    weight = torch.sigmoid(frag.logit[idx]) * torch.exp((z_norm - peak[pixel]) / settings.gamma)
    bg_weight = torch.exp((bg_log - peak) / settings.gamma)
    denom = bg_weight.index_add(0, pixel, weight)
    return idx, weight / denom[pixel], bg_weight / denom


def face_soft_centroids(frag: Fragments, batch: int, n_faces: int, settings: SoftRasterSettings):
    """Per face, the mean NDC position (x, y up) of the pixels it colours, weighted by its
    softmax colour weight, and whether it is visible (nearest inside fragment at one pixel or
    more, as SoftRas's hard mode's face index). Returns (centroid [B, F, 2], visible [B, F]
    bool); faces that colour no pixel get (0, 0). UMR's texture cycle target (its modified
    kernel's p2f_info, which sums unnormalised weights relative to a running maximum)."""
    s = settings.image_size
    idx, weight, _ = colour_weights(frag, batch, settings)
    pixel, face = frag.pixel[idx], frag.face[idx]
    xs, ys = pixel_centres(s, weight.dtype, weight.device)
    local = pixel % (s * s)
    xy = torch.stack([xs[local % s], ys[torch.div(local, s, rounding_mode="floor")]], dim=1)
    total = weight.new_zeros(batch * n_faces).index_add(0, face, weight)
    sums = weight.new_zeros(batch * n_faces, 2).index_add(0, face, weight.unsqueeze(1) * xy)
    centroid = sums / total.clamp_min(1e-12).unsqueeze(1)
    with torch.no_grad():
        inside = (frag.logit[idx] > 0).nonzero().squeeze(1)
        depth = frag.depth[idx][inside]
        nearest = torch.full((batch * s * s,), float("inf"), dtype=depth.dtype, device=depth.device)
        nearest = nearest.scatter_reduce(0, pixel[inside], depth, "amin", include_self=True)
        winners = face[inside][depth == nearest[pixel[inside]]]
        visible = torch.zeros(batch * n_faces, dtype=torch.bool, device=depth.device)
        visible[winners] = True
    return centroid.view(batch, n_faces, 2), visible.view(batch, n_faces)


def soft_rasterize_dense(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    textures: torch.Tensor | None = None,
    settings: SoftRasterSettings = SoftRasterSettings(),
    texture_type: str = "surface",
    face_chunk: int | None = None,
    checkpoint: bool = False,
) -> torch.Tensor:
    """Reference: the same image as `soft_rasterize`, computed for every pixel x every face.

    Straightforward [B, faces, pixels] broadcasting with masks instead of pair lists, summed
    over faces chunk by chunk (`face_chunk` faces at a time; all at once when None). With
    `checkpoint` each chunk is recomputed in the backward pass instead of keeping its
    intermediates, which is what lets 256 px x 1,280 faces fit in memory. O(S^2 F) time: for
    tests and benchmarks, not for training. Same arguments, output and errors as
    `soft_rasterize`."""
    faces = _check_inputs(vertices, faces, textures, texture_type)
    b, f = faces.shape[:2]
    s = settings.image_size
    dtype, device = vertices.dtype, vertices.device
    tri = torch.gather(vertices, 1, faces.reshape(b, -1, 1).expand(-1, -1, 3)).reshape(b, f, 3, 3)
    xs, ys = pixel_centres(s, dtype, device)
    px = xs.repeat(s).view(1, 1, -1)
    py = ys.repeat_interleave(s).view(1, 1, -1)
    step = face_chunk or max(f, 1)
    bounds = [(i, min(i + step, f)) for i in range(0, f, step)]
    channels = 0 if textures is None else textures.shape[-1]
    bg_log = 2.0 * settings.eps

    def terms(t):
        cols = [t[:, :, k, j].unsqueeze(-1) for k in range(3) for j in range(3)]
        (x0, y0, z0, x1, y1, z1, x2, y2, z2) = cols
        keep, inside, d2, bary, depth = pair_geometry(px, py, x0, y0, x1, y1, x2, y2, z0, z1, z2, settings.threshold)
        valid = keep & (depth >= settings.near) & (depth <= settings.far)
        if not settings.double_side:
            valid &= front_facing(x0, y0, x1, y1, x2, y2)
        z_norm = (settings.far - depth) / (settings.far - settings.near)
        return keep, torch.where(inside, d2, -d2) / settings.sigma, bary, valid, z_norm

    peak = None
    if textures is not None:
        with torch.no_grad():
            peak = torch.full((b, s * s), bg_log, dtype=dtype, device=device)
            for lo, hi in bounds:
                _, _, _, valid, z_norm = terms(tri[:, lo:hi])
                peak = torch.maximum(peak, torch.where(valid, z_norm, bg_log).amax(dim=1))

    def chunk(t, tex):
        keep, logit, bary, valid, z_norm = terms(t)
        log_empty = torch.where(keep, torch.nn.functional.logsigmoid(-logit), 0.0).sum(1)
        if tex is None:
            return (log_empty,)
        weight = torch.where(valid, torch.sigmoid(logit) * torch.exp((z_norm - peak.unsqueeze(1)) / settings.gamma), 0.0)
        if texture_type == "face":
            colour = tex.unsqueeze(2)
        elif texture_type == "vertex":
            colour = torch.einsum("bfpk,bfkc->bfpc", bary, tex)
        else:
            res = math.isqrt(tex.shape[2])
            wx = (bary[..., 0] * res).long()
            wy = (bary[..., 1] * res).long()
            lower = (bary[..., 0] + bary[..., 1]) * res - wx - wy <= 1
            cell = torch.where(lower, wy * res + wx, (res - 1 - wy) * res + (res - 1 - wx)).clamp(0, res * res - 1)
            colour = torch.gather(tex, 2, cell.unsqueeze(-1).expand(-1, -1, -1, tex.shape[-1]))
        return log_empty, weight.sum(1), (weight.unsqueeze(-1) * colour).sum(1)

    totals = None
    for lo, hi in bounds:
        args = (tri[:, lo:hi], None if textures is None else textures[:, lo:hi])
        if checkpoint:
            part = torch.utils.checkpoint.checkpoint(chunk, *args, use_reentrant=False)
        else:
            part = chunk(*args)
        totals = part if totals is None else tuple(a + p for a, p in zip(totals, part))
    if totals is None:
        totals = (torch.zeros(b, s * s, dtype=dtype, device=device), torch.zeros(b, s * s, dtype=dtype, device=device), torch.zeros(b, s * s, channels, dtype=dtype, device=device))
    alpha = -torch.expm1(totals[0]).unsqueeze(-1)
    if textures is None:
        return alpha.reshape(b, s, s, 1).permute(0, 3, 1, 2)
    bg = torch.tensor(settings.background, dtype=dtype, device=device) if settings.background else torch.zeros(channels, dtype=dtype, device=device)
    bg_weight = torch.exp((bg_log - peak) / settings.gamma)
    rgb = (bg_weight.unsqueeze(-1) * bg + totals[2]) / (bg_weight + totals[1]).unsqueeze(-1)
    return torch.cat([rgb, alpha], -1).reshape(b, s, s, channels + 1).permute(0, 3, 1, 2)
