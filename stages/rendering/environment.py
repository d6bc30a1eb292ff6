"""The randomised surroundings of a high-realism image: sky, floor texture, lights, exposure.

Everything random is drawn once into a `HighRealismLook` (in a fixed order, so a seed always
gives the same look); the shading code then only evaluates it. Textures are procedural and
box-filtered over each pixel's footprint on the floor, so the floor does not shimmer or moire
towards the horizon at 128x128.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

NOISE_LATTICE = 64


@dataclass(frozen=True)
class HighRealismLook:
    """Lighting and surroundings of one high-realism image.

    key_direction: unit world vector from the scene towards the directional key light.
    key_color: RGB radiance of the key light (colour times intensity).
    ambient: RGB sky light reaching every surface regardless of orientation.
    headlight: intensity of the fill light at the camera (the low-realism light, dimmed).
    floor_kind: "checker" or "noise"; floor_colors: [2, 3] the two texture colours;
    floor_scale: world size of a checker square or of a noise cell.
    noise_lattice: [L, L] values in [0, 1] of the tileable value-noise lattice.
    sky_zenith, sky_horizon: RGB at the top of the sky and at the horizon (also the fog colour).
    sky_noise: [g, g, 3] low-frequency screen-space colour variation added to the sky.
    fog_start, fog_length: the floor fades into the horizon colour beyond fog_start, with
    1/e distance fog_length, which hides the far edge of the floor.
    shadow_softness: PCF radius in shadow-map texels (0.5 is nearly hard).
    exposure: final multiplier on linear radiance.
    """

    key_direction: np.ndarray
    key_color: np.ndarray
    ambient: np.ndarray
    headlight: float
    floor_kind: str
    floor_colors: np.ndarray
    floor_scale: float
    noise_lattice: np.ndarray
    sky_zenith: np.ndarray
    sky_horizon: np.ndarray
    sky_noise: np.ndarray
    fog_start: float
    fog_length: float
    shadow_softness: float
    exposure: float


def _random_color(rng: np.random.Generator, saturation: tuple, value: tuple) -> np.ndarray:
    hue = rng.uniform(0.0, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(*saturation), rng.uniform(*value)))


def sample_look(
    rng: np.random.Generator, camera_forward_xz: np.ndarray | None = None
) -> HighRealismLook:
    """Draw a look. The key light comes from the camera's half-space (azimuth within 110 degrees
    of the direction back towards the camera) so the visible sides are mostly lit and cast
    shadows fall where the camera can see them."""
    forward = (
        np.array([0.0, 1.0]) if camera_forward_xz is None else np.asarray(camera_forward_xz, float)
    )
    forward = forward / np.linalg.norm(forward)
    back_azimuth = np.arctan2(-forward[1], -forward[0])
    azimuth = back_azimuth + np.radians(rng.uniform(-110.0, 110.0))
    elevation = np.radians(rng.uniform(30.0, 75.0))
    key_direction = np.array(
        [
            np.cos(elevation) * np.cos(azimuth),
            np.sin(elevation),
            np.cos(elevation) * np.sin(azimuth),
        ]
    )
    warm, cool = np.array([1.0, 0.86, 0.72]), np.array([0.82, 0.9, 1.0])
    tint = rng.uniform(0.0, 1.0)
    key_color = (warm * (1 - tint) + cool * tint) * rng.uniform(0.55, 0.95)
    sky_zenith = _random_color(rng, (0.1, 0.45), (0.6, 0.95))
    sky_horizon = 0.5 * sky_zenith + 0.5 * _random_color(rng, (0.0, 0.3), (0.75, 1.0))
    ambient = rng.uniform(0.2, 0.35) * (0.6 + 0.4 * sky_zenith / max(sky_zenith.max(), 1e-6))
    headlight = rng.uniform(0.15, 0.3)
    floor_kind = "checker" if rng.uniform() < 0.5 else "noise"
    base = _random_color(rng, (0.0, 0.5), (0.35, 0.85))
    other = np.clip(base * rng.uniform(0.45, 0.8) + rng.normal(0.0, 0.05, 3), 0.0, 1.0)
    floor_colors = np.stack([base, other])
    floor_scale = rng.uniform(0.06, 0.25) if floor_kind == "checker" else rng.uniform(0.04, 0.15)
    noise_lattice = rng.uniform(0.0, 1.0, (NOISE_LATTICE, NOISE_LATTICE))
    sky_noise = rng.normal(0.0, rng.uniform(0.01, 0.04), (5, 5, 3))
    return HighRealismLook(
        key_direction=key_direction,
        key_color=key_color,
        ambient=ambient,
        headlight=float(headlight),
        floor_kind=floor_kind,
        floor_colors=floor_colors,
        floor_scale=float(floor_scale),
        noise_lattice=noise_lattice,
        sky_zenith=sky_zenith,
        sky_horizon=sky_horizon,
        sky_noise=sky_noise,
        fog_start=float(rng.uniform(2.5, 4.0)),
        fog_length=float(rng.uniform(2.0, 6.0)),
        shadow_softness=float(rng.uniform(0.5, 2.5)),
        exposure=float(np.exp(rng.uniform(-0.15, 0.15))),
    )


def _upsample_bilinear(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    # Bilinear upsampling is separable: one small interpolation matrix per axis.
    def weights(n_out, n_in):
        pos = (np.arange(n_out) + 0.5) / n_out * (n_in - 1)
        return np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(n_in)[None]))

    return np.einsum(
        "hi,ijc,wj->hwc",
        weights(height, grid.shape[0]),
        grid,
        weights(width, grid.shape[1]),
        optimize=True,
    )


def sky_color(look: HighRealismLook, ray_up: np.ndarray) -> np.ndarray:
    """Sky radiance [H, W, 3] for rays whose world-up component is `ray_up` [H, W]."""
    t = np.clip(ray_up, 0.0, 1.0) ** 0.6
    sky = look.sky_horizon * (1 - t[..., None]) + look.sky_zenith * t[..., None]
    return sky + _upsample_bilinear(look.sky_noise, *ray_up.shape)


def _filtered_square_wave(u: np.ndarray, width: np.ndarray) -> np.ndarray:
    # Box filter of a +-1 square wave of period 2 = difference of its integral (a triangle
    # wave) across the footprint; tends to the mean 0 when the footprint covers many periods.
    def integral(x):
        return 1.0 - np.abs(np.mod(x, 2.0) - 1.0)

    # Clamped so an infinite footprint (a pixel reaching the horizon) averages to 0, not NaN.
    width = np.clip(width, 1e-6, 1e6)
    return (integral(u + width / 2) - integral(u - width / 2)) / width


def _value_noise(lattice: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    size = lattice.shape[0]
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = np.mod(u0, size).astype(np.int64), np.mod(v0, size).astype(np.int64)
    ju, jv = (iu + 1) % size, (iv + 1) % size
    top = lattice[iv, iu] * (1 - fu) + lattice[iv, ju] * fu
    bottom = lattice[jv, iu] * (1 - fu) + lattice[jv, ju] * fu
    return top * (1 - fv) + bottom * fv


def floor_albedo(
    look: HighRealismLook, x: np.ndarray, z: np.ndarray, footprint: np.ndarray
) -> np.ndarray:
    """Floor colour [N, 3] at world (x, z), averaged over a world-space `footprint` [N, 2]."""
    scale = look.floor_scale
    if look.floor_kind == "checker":
        pattern = _filtered_square_wave(x / scale, footprint[:, 0] / scale)
        pattern = pattern * _filtered_square_wave(z / scale, footprint[:, 1] / scale)
        mix = (1.0 - pattern) / 2
    else:
        mix = np.zeros_like(x)
        amplitude, total = 1.0, 0.0
        cell = scale
        size = np.maximum(footprint[:, 0], footprint[:, 1])
        for octave in range(3):
            # Octaves finer than the footprint fade to their mean rather than alias.
            fade = np.clip(2.0 - 2.0 * size / cell, 0.0, 1.0)
            noise = _value_noise(look.noise_lattice, x / cell + 17.0 * octave, z / cell)
            mix += amplitude * (0.5 + fade * (noise - 0.5))
            total += amplitude
            amplitude *= 0.5
            cell *= 0.5
        mix = np.clip((mix / total - 0.5) * 1.8 + 0.5, 0.0, 1.0)
    return look.floor_colors[0] * (1 - mix[:, None]) + look.floor_colors[1] * mix[:, None]
