"""Generators for vehicles: airplane, car, watercraft.

Built with +y up, the nose/bow towards -z and x = 0 as the mirror plane (see
``stages.synthetic.classes``); absolute size is irrelevant because meshes are normalised.
"""

from __future__ import annotations

import numpy as np

import stages.synthetic.parts as P
from stages.synthetic.parts import Mesh


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _ring(z: float, rx: float, ry: float, yc: float, k: int) -> np.ndarray:
    a = 2 * np.pi * np.arange(k) / k
    return np.stack([rx * np.cos(a), yc + ry * np.sin(a), np.full(k, z)], axis=1)


def _mirrored(mesh: Mesh) -> list[Mesh]:
    return [mesh, P.mirror(mesh, 0)]


def airplane(rng: np.random.Generator) -> Mesh:
    style = _pick(rng, ["airliner", "prop", "fighter"], p=[0.5, 0.25, 0.25])
    length = 1.0
    r = length * rng.uniform(0.035, 0.075)
    nose = length * rng.uniform(0.06, 0.18)
    tail = length * rng.uniform(0.2, 0.35)
    tail_r, upsweep = r * rng.uniform(0.15, 0.4), r * rng.uniform(0.0, 0.8)
    z0 = -length / 2
    # Fuselage: circular stations from a pointed nose to a tapering, upswept tail cone.
    stations = [(z0, 0.0, 0.0)]
    for s in (0.15, 0.4, 0.7, 1.0):
        stations.append((z0 + nose * s, r * np.sqrt(1 - (1 - s) ** 2), 0.0))
    stations.append((z0 + length - tail, r, 0.0))
    for s in (0.4, 0.75, 1.0):
        stations.append((z0 + length - tail * (1 - s), r + (tail_r - r) * s, upsweep * s ** 1.5))
    k = 14
    rings = [np.array([[0.0, 0.0, z0]])] + [_ring(z, rr, rr * 1.05, yc, k) for z, rr, yc in stations[1:]]
    parts = [P.loft(rings)]
    z_tail, y_tail = z0 + length, upsweep

    if style == "fighter":
        span, c_root = length * rng.uniform(0.24, 0.36), length * rng.uniform(0.3, 0.45)
        taper, sweep, dihedral = rng.uniform(0.05, 0.25), rng.uniform(0.6, 1.0), rng.uniform(-0.08, 0.02)
        z_wing = z0 + length * rng.uniform(0.4, 0.5)
    elif style == "prop":
        span, c_root = length * rng.uniform(0.45, 0.7), length * rng.uniform(0.1, 0.18)
        taper, sweep, dihedral = rng.uniform(0.5, 1.0), rng.uniform(-0.05, 0.1), rng.uniform(0.0, 0.1)
        z_wing = z0 + length * rng.uniform(0.25, 0.35)
    else:
        span, c_root = length * rng.uniform(0.38, 0.6), length * rng.uniform(0.14, 0.26)
        taper, sweep, dihedral = rng.uniform(0.2, 0.45), rng.uniform(0.35, 0.7), rng.uniform(0.02, 0.12)
        z_wing = z0 + length * rng.uniform(0.3, 0.42)
    y_wing = _pick(rng, [-0.6, 0.0, 0.6]) * r
    w = P.wing(c_root, c_root * taper, span, sweep, rng.uniform(0.08, 0.14), dihedral)
    parts += _mirrored(P.translate(w, (r * 0.3, y_wing, z_wing)))

    # Empennage: stabilisers and one fin (two canted fins on fighters), sometimes a T-tail.
    # The fin always tops the fuselage and the wing tips, as on real aircraft seen side-on.
    wing_top = max(y_wing + span * np.tan(dihedral) + 0.1 * c_root, 1.05 * r)
    fin_h = max(length * rng.uniform(0.08, 0.18), wing_top - y_tail - 0.5 * tail_r + 0.04)
    fin_c = length * rng.uniform(0.1, 0.2)
    fin_sweep = rng.uniform(0.3, 0.9)
    fin = P.wing(fin_c, fin_c * rng.uniform(0.3, 0.7), fin_h, fin_sweep, 0.1)
    fin_z = z_tail - fin_c * 1.05
    if style == "fighter" and rng.random() < 0.6:
        for sx in (-1, 1):
            cant = P.rotation("z", np.pi / 2 - sx * 0.3)
            parts.append(P.transform(fin, rotation=cant, translation=(sx * tail_r * 1.5, y_tail, fin_z)))
    else:
        parts.append(P.transform(fin, rotation=P.rotation("z", np.pi / 2), translation=(0.0, y_tail + tail_r * 0.5, fin_z)))
    stab_span = span * rng.uniform(0.25, 0.4)
    stab_c = fin_c * rng.uniform(0.6, 1.0)
    stab = P.wing(stab_c, stab_c * rng.uniform(0.4, 0.8), stab_span, fin_sweep * 0.8, 0.1, rng.uniform(0.0, 0.1))
    if style != "fighter" and rng.random() < 0.2:
        stab_pos = (0.0, y_tail + tail_r * 0.5 + fin_h, fin_z + fin_h * np.tan(fin_sweep))
    else:
        stab_pos = (tail_r * 0.5, y_tail, z_tail - stab_c * 1.1)
    parts += _mirrored(P.translate(stab, stab_pos))

    if style == "airliner":
        stations = [0.35] if rng.random() < 0.65 else [0.3, 0.6]
        nl = length * rng.uniform(0.1, 0.16)
        nr = r * rng.uniform(0.45, 0.7)
        for s in stations:
            x = r * 0.3 + s * span
            yw = y_wing + s * span * np.tan(dihedral)
            zl = z_wing + s * span * np.tan(sweep)
            nacelle = P.lathe([(0.0, 0.0), (nr * 0.8, 0.005), (nr, nl * 0.3), (nr * 0.85, nl * 0.85), (nr * 0.5, nl)],
                              12, base=(x, yw - nr * 1.4, zl - nl * 0.55), axis="z")
            pylon = P.box((nr * 0.25, nr * 1.2, nl * 0.5), (x, yw - nr * 0.6, zl + nl * 0.05))
            parts += _mirrored(P.concatenate([nacelle, pylon]))
    elif style == "prop":
        hub = P.cone(r * 0.5, nose * 0.6, 10, base=(0.0, 0.0, z0 + nose * 0.3), axis="-z")
        parts.append(hub)
        blades = int(rng.integers(2, 5))
        # Blades stay below the fin's top, which remains the highest point of every airplane.
        fin_top = y_tail + tail_r * 0.5 + fin_h
        blade_len = min(r * rng.uniform(1.6, 2.6), 0.8 * fin_top)
        for b in range(blades):
            spin = P.rotation("z", 2 * np.pi * b / blades + 0.3)
            parts.append(P.transform(P.box((blade_len * 0.12, blade_len, 0.008), (0.0, blade_len / 2, 0.0)),
                                     rotation=spin, translation=(0.0, 0.0, z0 - nose * 0.2)))
    return P.concatenate(parts)


def car(rng: np.random.Generator) -> Mesh:
    style = _pick(rng, ["sedan", "hatch", "suv", "pickup", "sports"])
    length, width = rng.uniform(3.6, 5.2), rng.uniform(1.6, 2.0)
    clearance = rng.uniform(0.12, 0.2) if style != "suv" else rng.uniform(0.2, 0.3)
    body_h = rng.uniform(0.45, 0.65) if style != "suv" else rng.uniform(0.6, 0.85)
    cab_h = rng.uniform(0.3, 0.42) if style == "sports" else rng.uniform(0.4, 0.65)
    wheel_r, wheel_w = rng.uniform(0.28, 0.4), rng.uniform(0.18, 0.3)
    y0 = clearance
    top = y0 + body_h
    # Body: rounded sections along z; the front drops for the bonnet, the rear for the boot.
    nose_drop, tail_drop = rng.uniform(0.1, 0.35) * body_h, rng.uniform(0.0, 0.2) * body_h
    stations = [(-0.5, 0.92, 1.0 - nose_drop / body_h * 1.3), (-0.47, 0.98, 1.0 - nose_drop / body_h),
                (-0.3, 1.0, 1.0 - nose_drop / body_h * 0.3), (0.3, 1.0, 1.0), (0.47, 0.98, 1.0 - tail_drop / body_h),
                (0.5, 0.94, 1.0 - tail_drop / body_h * 1.2)]
    corner = rng.uniform(0.05, 0.2)
    rings = []
    for s, fw, fh in stations:
        h = body_h * max(fh, 0.35)
        outline = P.rounded_rectangle(width * fw, h, min(corner, h * 0.45), 2)
        rings.append(np.stack([outline[:, 0], y0 + h / 2 + outline[:, 1], np.full(len(outline), s * length)], axis=1))
    parts = [P.loft(rings)]

    # Cabin: a trapezoid block, raked at the windscreen and the rear window.
    if style == "pickup":
        c0, c1 = -0.2, 0.08
    elif style in ("hatch", "suv"):
        c0, c1 = rng.uniform(-0.22, -0.12), rng.uniform(0.38, 0.46)
    else:
        c0, c1 = rng.uniform(-0.22, -0.1), rng.uniform(0.2, 0.32)
    rake_f, rake_r = rng.uniform(0.15, 0.45) * cab_h * 2, rng.uniform(0.05, 0.4) * cab_h * 2
    wb, wt = width * 0.92, width * rng.uniform(0.72, 0.85)
    zf, zr = c0 * length, c1 * length
    yb, yt = top - 0.02, top + cab_h
    parts.append(P.hexahedron([(-wb / 2, yb, zf), (wb / 2, yb, zf), (wb / 2, yb, zr), (-wb / 2, yb, zr),
                               (-wt / 2, yt, zf + rake_f), (wt / 2, yt, zf + rake_f),
                               (wt / 2, yt, max(zr - rake_r, zf + rake_f + 0.2)),
                               (-wt / 2, yt, max(zr - rake_r, zf + rake_f + 0.2))]))
    if style == "pickup":
        wall = 0.05
        bed0, bed1 = zr + 0.05, length * 0.5
        for sx in (-1, 1):
            parts.append(P.box_between((sx * width * 0.46 - wall / 2, top, bed0), (sx * width * 0.46 + wall / 2, top + 0.25, bed1)))
        parts.append(P.box_between((-width * 0.46, top, bed1 - wall), (width * 0.46, top + 0.25, bed1)))
    if style == "sports" and rng.random() < 0.6:
        parts.append(P.box((width * 0.8, 0.03, 0.25), (0.0, top + 0.15, length * 0.45)))
        for sx in (-1, 1):
            parts.append(P.box((0.03, 0.15, 0.08), (sx * width * 0.3, top + 0.07, length * 0.45)))
    if rng.random() < 0.7:  # door mirrors
        for sx in (-1, 1):
            parts.append(P.box((0.12, 0.08, 0.05), (sx * (wb / 2 + 0.05), top + 0.1, zf + rake_f * 0.4)))

    wheelbase = length * rng.uniform(0.55, 0.66)
    segments = 18
    for sz in (-1, 1):
        for sx in (-1, 1):
            x_out = sx * (width / 2 + 0.01)
            base = (x_out - sx * wheel_w, wheel_r, sz * wheelbase / 2)
            tyre = P.cylinder(wheel_r, wheel_w, segments, base=base, axis=(sx, 0, 0))
            hub = P.cylinder(wheel_r * 0.6, 0.02, segments, base=(x_out, wheel_r, sz * wheelbase / 2), axis=(sx, 0, 0))
            parts += [tyre, hub]
    return P.concatenate(parts)


def watercraft(rng: np.random.Generator) -> Mesh:
    style = _pick(rng, ["motor", "sail", "ship", "canoe"], p=[0.35, 0.25, 0.25, 0.15])
    length = 1.0
    beam = length * (rng.uniform(0.1, 0.16) if style == "canoe" else rng.uniform(0.18, 0.36))
    depth = length * rng.uniform(0.07, 0.14)
    fullness = rng.uniform(0.35, 0.9)    # <1 gives a boxy, U-shaped section; 1 a round bilge
    deadrise = rng.uniform(0.5, 1.6)     # <1 rounds the bottom out, >1 draws it into a V
    sheer = rng.uniform(0.0, 0.4) * depth  # deck rises towards the bow
    # Plan and profile along the hull (0 = bow, 1 = stern): half-beam factor and how far the
    # bottom is lifted towards the deck (the bow's forefoot rises out of the water).
    stern_w = 0.05 if style == "canoe" else rng.uniform(0.65, 0.9)
    knots = np.array([0.0, 0.04, 0.12, 0.3, 0.55, 0.8, 1.0])
    widths = np.array([0.03, 0.2, 0.52, 0.88, 1.0, 0.96, stern_w])
    lifts = np.array([0.75, 0.5, 0.22, 0.05, 0.0, 0.0, 0.0 if style != "canoe" else 0.6])
    if style == "canoe":
        widths[-2] = 0.6
        lifts[-2] = 0.15
    a = np.linspace(0.0, np.pi, 11)
    cos, sin = np.cos(a), np.sin(a)
    rings = []
    for st in (0.0, 0.02, 0.04, 0.08, 0.12, 0.2, 0.3, 0.42, 0.55, 0.68, 0.8, 0.9, 1.0):
        hb = beam / 2 * np.interp(st, knots, widths)
        lift = np.interp(st, knots, lifts)
        y_deck = depth + sheer * (1 - st) ** 2
        y_keel = depth * lift
        x = -hb * np.sign(cos) * np.abs(cos) ** fullness
        y = y_deck - (y_deck - y_keel) * sin ** deadrise
        rings.append(np.stack([x, y, np.full(len(a), -length / 2 + st * length)], axis=1))
    parts = [P.loft(rings)]

    def deck_box(w, h, l, z, y=depth):
        return P.box((w, h, l), (0.0, y + h / 2, z))

    if style == "motor":
        cl = length * rng.uniform(0.18, 0.35)
        cz = rng.uniform(-0.05, 0.15)
        ch = depth * rng.uniform(0.5, 1.1)
        parts.append(deck_box(beam * rng.uniform(0.5, 0.75), ch, cl, cz))
        if rng.random() < 0.6:
            parts.append(deck_box(beam * 0.45, ch * 0.6, cl * 0.5, cz + cl * 0.1, depth + ch))
    elif style == "ship":
        tiers = int(rng.integers(2, 4))
        w, l, z, y = beam * 0.8, length * rng.uniform(0.3, 0.5), rng.uniform(0.0, 0.15), depth
        for _ in range(tiers):
            h = depth * rng.uniform(0.35, 0.6)
            parts.append(deck_box(w, h, l, z, y))
            y += h
            w, l, z = w * rng.uniform(0.7, 0.9), l * rng.uniform(0.5, 0.8), z + l * 0.08
        for f in range(int(rng.integers(1, 3))):
            parts.append(P.frustum(beam * 0.12, beam * 0.1, depth * rng.uniform(0.6, 1.2), 12,
                                   base=(0.0, y - 0.01, z + (f - 0.5) * l * 0.6)))
    elif style == "sail":
        mast_z = -length * rng.uniform(0.1, 0.2)
        mast_h = length * rng.uniform(0.6, 1.3)
        parts.append(P.cylinder(0.008, mast_h, 8, base=(0.0, depth, mast_z)))
        boom = length * rng.uniform(0.3, 0.45)
        # Zero sweep keeps the main sail's leading edge on the mast.
        main = P.wing(boom, boom * 0.04, mast_h * 0.9, 0.0, 0.02)
        parts.append(P.transform(main, rotation=P.rotation("z", np.pi / 2), translation=(0.0, depth + mast_h * 0.08, mast_z)))
        if rng.random() < 0.7:
            bow_z = -length / 2 + 0.05
            jib_h = mast_h * 0.8
            jib = P.wing(mast_z - bow_z, 0.02, jib_h, np.arctan((mast_z - bow_z - 0.02) / jib_h), 0.02)
            parts.append(P.transform(jib, rotation=P.rotation("z", np.pi / 2), translation=(0.0, depth + 0.01, bow_z)))
        keel = P.wing(length * 0.22, length * 0.14, depth * rng.uniform(1.0, 2.2), 0.3, 0.08)
        parts.append(P.transform(keel, rotation=P.rotation("z", -np.pi / 2), translation=(0.0, depth * 0.1, -length * 0.12)))
        parts.append(deck_box(beam * 0.5, depth * 0.4, length * 0.2, length * 0.08))
    else:
        for s in (0.35, 0.5, 0.65):
            parts.append(P.box((beam * 0.8, depth * 0.08, length * 0.03), (0.0, depth * 0.7, -length / 2 + s * length)))
    return P.concatenate(parts)
