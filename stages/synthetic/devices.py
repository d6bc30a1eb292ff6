"""Generators for household devices: display, lamp, speaker.

Built with +y up, the viewing/listening side towards -z and x = 0 as the mirror plane (see
``stages.synthetic.classes``).
"""

from __future__ import annotations

import numpy as np

import stages.synthetic.parts as P
from stages.synthetic.parts import Mesh


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def display(rng: np.random.Generator) -> Mesh:
    w = rng.uniform(0.35, 0.9)
    h = w * rng.uniform(0.45, 0.85)
    t = rng.uniform(0.012, 0.045)
    bezel = rng.uniform(0.004, 0.03)
    stand = _pick(rng, ["neck", "feet"], p=[0.8, 0.2])
    base_t = rng.uniform(0.01, 0.03)
    lift = rng.uniform(0.04, 0.18) if stand == "neck" else rng.uniform(0.03, 0.08)
    y_screen = base_t + lift

    # The screen assembly in its own frame: glass face on z = 0, bottom edge on y = 0.
    frame = P.rounded_slab(w, h, t, rng.uniform(0.0, 0.02), 4, axis="z")
    glass = P.box((w - 2 * bezel, h - 2 * bezel, 0.003), (0.0, bezel * 0.5, -0.0015))
    if rng.random() < 0.4:  # a thicker chin under the glass
        glass = P.box((w - 2 * bezel, h - 3 * bezel, 0.003), (0.0, bezel, -0.0015))
    screen = [P.translate(frame, (0.0, h / 2, 0.0)), glass]
    if rng.random() < 0.2:
        # A CRT-era or all-in-one back: a tapered box behind the panel.
        dz = h * rng.uniform(0.3, 0.6)
        f, b = 0.9, rng.uniform(0.45, 0.7)
        z1 = t + dz
        screen.append(P.hexahedron([(-w * f / 2, h * 0.05, t), (w * f / 2, h * 0.05, t), (w * b / 2, h * 0.2, z1),
                                    (-w * b / 2, h * 0.2, z1), (-w * f / 2, h * 0.95, t), (w * f / 2, h * 0.95, t),
                                    (w * b / 2, h * 0.8, z1), (-w * b / 2, h * 0.8, z1)]))
    tilt = rng.uniform(0.0, 0.18)
    screen_mesh = P.transform(P.concatenate(screen), rotation=P.rotation("x", tilt), translation=(0.0, y_screen, 0.0))
    parts = [screen_mesh]

    if stand == "neck":
        # Base depth follows the screen height so the stand never outgrows the screen.
        bw, bd = w * rng.uniform(0.3, 0.6), h * rng.uniform(0.3, 0.6)
        bz = t + rng.uniform(-0.03, 0.05)
        if rng.random() < 0.5:
            parts.append(P.rounded_slab(bw, bd, base_t, rng.uniform(0.0, 0.5) * bd, 4, base=(0.0, 0.0, bz)))
        else:
            parts.append(P.transform(P.cylinder(0.5, base_t, 24), scale=(bw, 1.0, bd), translation=(0.0, 0.0, bz)))
        neck_top = y_screen + h * rng.uniform(0.25, 0.5)
        nz = t + 0.015 + neck_top * np.sin(tilt) * 0.5
        nw = rng.uniform(0.03, 0.08)
        if rng.random() < 0.5:
            parts.append(P.beam((0.0, base_t * 0.5, bz), (0.0, neck_top, nz), nw, 0.02))
        else:
            parts.append(P.cylinder(nw / 2, neck_top, 12, base=(0.0, 0.0, bz), axis=(0.0, neck_top, nz - bz)))
    else:
        fd = h * rng.uniform(0.3, 0.6)
        for sx in (-1, 1):
            x = sx * w * rng.uniform(0.3, 0.42)
            parts.append(P.beam((x, 0.0, -fd / 2), (x, y_screen + 0.02, t / 2), 0.02, 0.02))
            parts.append(P.beam((x, 0.0, fd / 2 + t), (x, y_screen + 0.02, t / 2), 0.02, 0.02))
    return P.concatenate(parts)


def lamp(rng: np.random.Generator) -> Mesh:
    style = _pick(rng, ["straight", "arm", "globe"], p=[0.5, 0.3, 0.2])
    pole_h = rng.uniform(0.3, 1.5)
    base_r = float(np.clip(pole_h * rng.uniform(0.12, 0.3), 0.06, 0.2))
    pole_r = float(np.clip(base_r * rng.uniform(0.05, 0.15), 0.005, 0.02))
    base_h = rng.uniform(0.015, 0.05)
    parts = []
    base_kind = _pick(rng, ["disc", "dome", "square", "vase"])
    if base_kind == "disc":
        parts.append(P.frustum(base_r, base_r * rng.uniform(0.7, 1.0), base_h, 24))
    elif base_kind == "dome":
        a = np.linspace(0.0, np.pi / 2, 6)
        dome = np.stack([base_r * np.cos(a), base_h * 2.5 * np.sin(a)], axis=1)
        dome[-1, 0] = 0.0
        parts.append(P.lathe(dome, 20))
    elif base_kind == "square":
        parts.append(P.box((base_r * 1.6, base_h, base_r * 1.6), (0.0, base_h / 2, 0.0)))
    else:
        # A table lamp's vase body on a foot; kept below a third of the pole so the bare pole
        # still shows between body and shade.
        vh = pole_h * rng.uniform(0.15, 0.3)
        vr = base_r * rng.uniform(0.6, 0.9)
        belly = rng.uniform(0.3, 0.6)
        parts.append(P.cylinder(base_r * 0.8, base_h * 0.5, 20))
        parts.append(P.lathe([(vr * 0.6, 0.0), (vr, vh * belly), (vr * 0.85, vh * (belly + 1) / 2),
                              (vr * 0.35, vh), (0.0, vh)], 20, base=(0.0, base_h * 0.5, 0.0)))
    parts.append(P.cylinder(pole_r, pole_h, 10, base=(0.0, base_h * 0.5, 0.0)))
    top = np.array([0.0, base_h * 0.5 + pole_h, 0.0])

    # Shades stay well above mid-height so the pole is always visible between base and shade.
    if style == "straight":
        r_b = pole_h * rng.uniform(0.15, 0.35)
        r_t = r_b * rng.uniform(0.4, 1.0)
        sh = min(r_b * rng.uniform(0.8, 1.6), 0.55 * pole_h)
        parts.append(P.hollow_frustum(r_b, r_t, sh, 0.006, 24, base=top - (0.0, sh * 0.7, 0.0)))
        parts.append(P.cylinder(pole_r * 2, 0.02, 8, base=top - (0.0, 0.01, 0.0)))
    elif style == "globe":
        gr = pole_h * rng.uniform(0.12, 0.25)
        parts.append(P.ellipsoid((gr, gr * rng.uniform(0.8, 1.2), gr), top + (0.0, gr * 0.8, 0.0), 16, 10))
    else:
        arm_len = pole_h * rng.uniform(0.3, 0.6)
        rise = rng.uniform(0.1, 0.7)
        # The arm reaches forward (-z) over whatever the lamp lights.
        end = top + arm_len * np.array([0.0, np.sin(rise), -np.cos(rise)])
        parts.append(P.cylinder(pole_r * 0.8, arm_len, 8, base=top, axis=end - top))
        parts.append(P.sphere(pole_r * 1.8, top, 8, 4))
        r_b = pole_h * rng.uniform(0.1, 0.22)
        sh = min(r_b * rng.uniform(0.8, 1.5), 0.3 * pole_h)
        aim = np.array([0.0, -1.0, -rng.uniform(0.0, 0.8)])
        aim /= np.linalg.norm(aim)
        # Axis of the shade points up from its mouth, so it hangs from the arm's end.
        parts.append(P.hollow_frustum(r_b, r_b * rng.uniform(0.2, 0.5), sh, 0.005, 20, base=end + aim * sh, axis=-aim))
    return P.concatenate(parts)


def _driver(x: float, y: float, z_face: float, r: float) -> list[Mesh]:
    """A cone driver mounted on a baffle at ``z_face``, opening towards -z."""
    depth = r * 0.3
    cone_ = P.hollow_frustum(r * 0.85, r * 0.25, depth, max(r * 0.03, 0.002), 20,
                             base=(x, y, z_face - depth), axis="z")
    surround = P.torus(r * 0.9, r * 0.08, 20, 6, base=(x, y, z_face - depth), axis="z")
    cap = P.ellipsoid((r * 0.25, r * 0.25, r * 0.12), (x, y, z_face - r * 0.05), 12, 4)
    return [cone_, surround, cap]


def speaker(rng: np.random.Generator) -> Mesh:
    w, h = rng.uniform(0.15, 0.45), rng.uniform(0.2, 1.1)
    d = min(rng.uniform(0.15, 0.4), 0.9 * h)
    feet = rng.uniform(0.01, 0.05) if rng.random() < 0.35 else 0.0
    y0 = feet
    parts = [P.rounded_slab(w, d, h, rng.uniform(0.0, 0.3) * min(w, d), 3, base=(0.0, y0, 0.0))]
    if feet:
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(P.box((0.03, feet, 0.03), (sx * (w / 2 - 0.03), feet / 2, sz * (d / 2 - 0.03))))
    z_face = -d / 2
    margin = rng.uniform(0.01, 0.03)
    room = h - 2 * margin
    r_woofer = min(w * rng.uniform(0.28, 0.42), room * 0.45)
    n_woofer = int(np.clip(room // (2.4 * r_woofer), 1, 3))
    r_tweet = r_woofer * rng.uniform(0.25, 0.4)
    # A tweeter only where it fits above the woofers: drivers never overhang the cabinet.
    tweeter = rng.random() < 0.8 and n_woofer * 2 * r_woofer + 2 * r_tweet < room
    stack = n_woofer * 2 * r_woofer + (2 * r_tweet if tweeter else 0.0)
    spare = max(h - 2 * margin - stack, 0.0)
    gap = spare / (n_woofer + (1 if tweeter else 0) + 1) * rng.uniform(0.3, 1.0)
    y = y0 + margin + gap
    for _ in range(n_woofer):
        parts += _driver(0.0, y + r_woofer, z_face, r_woofer)
        y += 2 * r_woofer + gap
    if tweeter:
        parts += _driver(0.0, y + r_tweet, z_face, r_tweet)
    if rng.random() < 0.4 and h > 0.35:  # bass reflex port below the drivers
        pr = r_woofer * 0.25
        parts.append(P.hollow_frustum(pr, pr, 0.01, pr * 0.2, 16, base=(w * 0.25, y0 + margin + pr, z_face - 0.01), axis="z"))
    return P.concatenate(parts)
