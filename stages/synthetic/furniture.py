"""Generators for furniture: bench, cabinet, chair, sofa, table.

Built in metres with the floor at y = 0, the front towards -z and the x = 0 plane as the mirror
plane (see ``stages.synthetic.classes``); normalisation happens afterwards.
"""

from __future__ import annotations

import numpy as np

import stages.synthetic.parts as P
from stages.synthetic.parts import Mesh


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _legs(rng, corners_top, y_top: float, splay: float, round_legs: bool, width: float) -> list[Mesh]:
    """Four legs from points under a top down to the floor, splayed outwards by ``splay``."""
    legs = []
    segments = int(rng.integers(8, 13))
    taper = rng.uniform(0.6, 1.0)
    for x, z in corners_top:
        foot = np.array([x + np.sign(x) * splay, 0.0, z + np.sign(z) * splay])
        along = np.array([x, y_top, z]) - foot
        if round_legs:
            legs.append(P.frustum(width / 2 * taper, width / 2, float(np.linalg.norm(along)), segments,
                                  base=foot, axis=along))
        else:
            legs.append(P.beam(foot, foot + along, width))
    return legs


def _back_panel(rng, width: float, height: float, thickness: float) -> list[Mesh]:
    """A backrest in its own frame: bottom edge on y = 0, centred on x and z."""
    style = _pick(rng, ["panel", "slats", "rails"], p=[0.45, 0.3, 0.25])
    if style == "panel":
        r = rng.uniform(0.0, 0.45) * min(width, height)
        panel = P.rounded_slab(width, height, thickness, r, 3, axis="z")
        return [P.translate(panel, (0.0, height / 2, -thickness / 2))]
    post_w = rng.uniform(0.025, 0.05)
    parts = [P.box((post_w, height, thickness), (sx * (width - post_w) / 2, height / 2, 0.0)) for sx in (-1, 1)]
    rail_h = rng.uniform(0.04, 0.12)
    parts.append(P.box((width, rail_h, thickness), (0.0, height - rail_h / 2, 0.0)))
    inner = width - 2 * post_w
    if style == "slats":
        n = int(rng.integers(2, 6))
        slat_w = inner / n * rng.uniform(0.25, 0.6)
        for i in range(n):
            x = -inner / 2 + (i + 0.5) * inner / n
            parts.append(P.box((slat_w, height - rail_h, thickness * 0.6), (x, (height - rail_h) / 2, 0.0)))
    else:
        n = int(rng.integers(1, 4))
        for i in range(n):
            y = (height - rail_h) * (i + 1) / (n + 1)
            parts.append(P.box((inner, rail_h * 0.7, thickness * 0.7), (0.0, y, 0.0)))
    return parts


def chair(rng: np.random.Generator) -> Mesh:
    w, d = rng.uniform(0.38, 0.62), rng.uniform(0.38, 0.6)
    hs, t = rng.uniform(0.38, 0.52), rng.uniform(0.025, 0.08)
    hb, tilt = rng.uniform(0.32, 0.7), rng.uniform(0.0, 0.28)
    bt = rng.uniform(0.02, 0.06)
    parts = [P.rounded_slab(w, d, t, rng.uniform(0.0, 0.3) * min(w, d), 3, base=(0.0, hs - t, 0.0))]

    # Backs lean rearwards (+z): rotate the upright backrest about x around its bottom edge.
    back = P.concatenate(_back_panel(rng, w * rng.uniform(0.75, 1.0), hb, bt))
    parts.append(P.transform(back, rotation=P.rotation("x", tilt), translation=(0.0, hs - t / 2, d / 2 - bt / 2)))

    base = _pick(rng, ["legs", "legs", "swivel"])
    if base == "legs":
        lw = rng.uniform(0.025, 0.06)
        inset = rng.uniform(0.0, 0.06)
        cx, cz = w / 2 - lw / 2 - inset, d / 2 - lw / 2 - inset
        parts += _legs(rng, [(sx * cx, sz * cz) for sx in (-1, 1) for sz in (-1, 1)], hs - t,
                       rng.uniform(0.0, 0.04) if rng.random() < 0.4 else 0.0, rng.random() < 0.4, lw)
        if rng.random() < 0.4:  # stretchers between the legs
            y = rng.uniform(0.08, 0.2)
            for sx in (-1, 1):
                parts.append(P.box((lw * 0.6, lw * 0.6, 2 * cz), (sx * cx, y, 0.0)))
    else:
        pole_r = rng.uniform(0.02, 0.04)
        hub_y = rng.uniform(0.06, 0.1)
        parts.append(P.cylinder(pole_r, hs - t - hub_y, 12, base=(0.0, hub_y, 0.0)))
        n_feet = int(rng.integers(4, 6))
        reach = rng.uniform(0.22, 0.34)
        for k in range(n_feet):
            a = 2 * np.pi * k / n_feet + np.pi / 2
            tip = np.array([reach * np.cos(a), 0.05, reach * np.sin(a)])
            parts.append(P.beam((0.0, hub_y, 0.0), tip, 0.035, 0.03))
            parts.append(P.sphere(0.025, tip - (0.0, 0.025, 0.0), 8, 4))

    # Arms only where they fit well below the top fifth of the chair, which is the backrest alone.
    ah_max = 0.8 * (hs + hb * np.cos(tilt)) - hs - 0.05
    if rng.random() < 0.3 and ah_max > 0.12:
        ah = min(rng.uniform(0.15, 0.24), ah_max)
        aw = rng.uniform(0.03, 0.07)
        for sx in (-1, 1):
            x = sx * (w / 2 - aw / 2)
            parts.append(P.box((aw, 0.03, d * 0.9), (x, hs + ah, 0.0)))
            parts.append(P.box((aw * 0.7, ah, aw * 0.7), (x, hs + ah / 2, -d * 0.35)))
    return P.concatenate(parts)


def table(rng: np.random.Generator) -> Mesh:
    shape = _pick(rng, ["rect", "round", "oval"], p=[0.55, 0.25, 0.2])
    h, t = rng.uniform(0.42, 0.8), rng.uniform(0.02, 0.07)
    if shape == "round":
        w = d = rng.uniform(0.6, 1.3)
        top = P.cylinder(w / 2, t, 32, base=(0.0, h - t, 0.0))
    else:
        w = rng.uniform(0.6, 2.0)
        d = w * rng.uniform(0.45, 0.9)
        r = d / 2 if shape == "oval" else rng.uniform(0.0, 0.15) * d
        top = P.rounded_slab(w, d, t, r, 6, base=(0.0, h - t, 0.0))
    parts = [top]
    support = _pick(rng, ["legs", "pedestal", "trestle"], p=[0.6, 0.25, 0.15]) if shape == "rect" else \
        _pick(rng, ["legs", "pedestal"])
    under = h - t
    if support == "legs":
        lw = rng.uniform(0.03, 0.07) * min(1.0, 0.4 + w / 2)
        # Legs of round/oval tops sit inside the curved edge.
        f = 0.5 if shape == "rect" else 0.33
        cx, cz = w * f - lw / 2 - rng.uniform(0.0, 0.06), d * f - lw / 2 - rng.uniform(0.0, 0.06)
        splay = rng.uniform(0.0, 0.05) if rng.random() < 0.3 else 0.0
        parts += _legs(rng, [(sx * cx, sz * cz) for sx in (-1, 1) for sz in (-1, 1)], under, splay,
                       rng.random() < 0.4, lw)
        if rng.random() < 0.5:
            ah = rng.uniform(0.05, 0.12)
            parts.append(P.box((2 * cx, ah, 0.02), (0.0, under - ah / 2, -cz)))
            parts.append(P.box((2 * cx, ah, 0.02), (0.0, under - ah / 2, cz)))
            parts.append(P.box((0.02, ah, 2 * cz), (-cx, under - ah / 2, 0.0)))
            parts.append(P.box((0.02, ah, 2 * cz), (cx, under - ah / 2, 0.0)))
        if rng.random() < 0.25:
            st = rng.uniform(0.015, 0.03)
            parts.append(P.box((2 * cx, st, 2 * cz), (0.0, under * rng.uniform(0.15, 0.35), 0.0)))
    elif support == "pedestal":
        r = rng.uniform(0.04, 0.1)
        parts.append(P.frustum(r * rng.uniform(1.0, 1.6), r, under, 16))
        if rng.random() < 0.5:
            parts.append(P.cylinder(min(w, d) * rng.uniform(0.2, 0.35), 0.03, 24))
        else:
            n, reach = int(rng.integers(3, 5)), min(w, d) * rng.uniform(0.25, 0.38)
            for k in range(n):
                a = 2 * np.pi * k / n + np.pi / 4
                parts.append(P.beam((0.0, 0.05, 0.0), (reach * np.cos(a), 0.02, reach * np.sin(a)), 0.05, 0.04))
    else:
        pw = rng.uniform(0.03, 0.06)
        for sx in (-1, 1):
            x = sx * (w / 2 - rng.uniform(0.08, 0.2))
            parts.append(P.box((pw, under, d * rng.uniform(0.15, 0.3)), (x, under / 2, 0.0)))
            parts.append(P.box((pw * 1.5, 0.05, d * 0.8), (x, 0.025, 0.0)))
        parts.append(P.box((w * 0.6, 0.06, pw), (0.0, under * 0.3, 0.0)))
    return P.concatenate(parts)


def bench(rng: np.random.Generator) -> Mesh:
    w, d = rng.uniform(1.1, 2.0), rng.uniform(0.3, 0.55)
    hs, t = rng.uniform(0.38, 0.5), rng.uniform(0.03, 0.08)
    parts = []
    if rng.random() < 0.5:
        parts.append(P.rounded_slab(w, d, t, rng.uniform(0.0, 0.4) * d, 4, base=(0.0, hs - t, 0.0)))
    else:
        n = int(rng.integers(3, 6))
        pd = d / n * rng.uniform(0.6, 0.85)
        for i in range(n):
            parts.append(P.box((w, t, pd), (0.0, hs - t / 2, -d / 2 + (i + 0.5) * d / n)))
    support = _pick(rng, ["legs", "panels", "aframe"])
    inset = rng.uniform(0.03, 0.2) * w
    under = hs - t
    if support == "legs":
        lw = rng.uniform(0.04, 0.08)
        cx, cz = w / 2 - inset, d / 2 - lw / 2 - rng.uniform(0.0, 0.04)
        parts += _legs(rng, [(sx * cx, sz * cz) for sx in (-1, 1) for sz in (-1, 1)], under, 0.0,
                       rng.random() < 0.3, lw)
        if w > 1.4:
            parts += _legs(rng, [(0.0, -cz), (0.0, cz)], under, 0.0, False, lw)
    elif support == "panels":
        pt = rng.uniform(0.03, 0.08)
        for sx in (-1, 1):
            parts.append(P.box((pt, under, d * rng.uniform(0.8, 1.0)), (sx * (w / 2 - inset), under / 2, 0.0)))
    else:
        lw = rng.uniform(0.04, 0.06)
        for sx in (-1, 1):
            x = sx * (w / 2 - inset)
            for sz in (-1, 1):
                parts.append(P.beam((x, 0.0, sz * d * 0.5), (x, under, 0.0), lw))
            parts.append(P.box((lw, lw, d * 0.6), (x, under * 0.45, 0.0)))
    if rng.random() < 0.55:
        hb, tilt, bt = rng.uniform(0.22, 0.42), rng.uniform(0.05, 0.3), rng.uniform(0.03, 0.05)
        back = P.concatenate(_back_panel(rng, w * rng.uniform(0.9, 1.0), hb, bt))
        parts.append(P.transform(back, rotation=P.rotation("x", tilt), translation=(0.0, hs, d / 2 - bt / 2)))
        for sx in (-1, 1):  # posts that carry the back
            parts.append(P.box((0.05, hb * 0.5 + t, 0.05), (sx * (w / 2 - inset), hs - t + (hb * 0.5 + t) / 2,
                                                           d / 2 - 0.025)))
        if rng.random() < 0.4:
            for sx in (-1, 1):
                x = sx * (w / 2 - 0.03)
                parts.append(P.box((0.05, 0.04, d), (x, hs + 0.2, 0.0)))
                parts.append(P.box((0.04, 0.2, 0.04), (x, hs + 0.1, -d / 2 + 0.04)))
    return P.concatenate(parts)


def sofa(rng: np.random.Generator) -> Mesh:
    w, d = rng.uniform(1.3, 2.6), rng.uniform(0.75, 1.05)
    leg_h = rng.uniform(0.04, 0.16) if rng.random() < 0.6 else 0.0
    base_h = rng.uniform(0.18, 0.32)
    bh, bt = rng.uniform(0.3, 0.55), rng.uniform(0.15, 0.3)
    # Arms (roll included) stay well below the back, which is always the sofa's top.
    ah = rng.uniform(0.12, 0.6 * bh)
    aw = rng.uniform(0.08, 0.28)
    cush_t = rng.uniform(0.07, 0.15)
    y0 = leg_h
    seat_y = y0 + base_h + cush_t
    parts = [P.box((w, base_h, d), (0.0, y0 + base_h / 2, 0.0))]
    parts.append(P.rounded_slab(w, bt, base_h + cush_t + bh, rng.uniform(0.0, 0.5) * bt, 3,
                                base=(0.0, y0, d / 2 - bt / 2)))
    arm_style = _pick(rng, ["box", "roll"])
    roll = min(aw * 0.6, ah * 0.5) if arm_style == "roll" else 0.0
    for sx in (-1, 1):
        x = sx * (w / 2 - aw / 2)
        top = seat_y + ah - roll
        parts.append(P.box((aw, top - y0, d), (x, (top + y0) / 2, 0.0)))
        if roll:
            parts.append(P.cylinder(roll, d, 12, base=(x, top, -d / 2), axis="z"))
    n = int(rng.integers(1, 4))
    inner = w - 2 * aw
    cw = inner / n
    r = rng.uniform(0.01, 0.05)
    for i in range(n):
        x = -inner / 2 + (i + 0.5) * cw
        parts.append(P.rounded_slab(cw * 0.97, d - bt, cush_t, r, 2, base=(x, y0 + base_h, -bt / 2)))
        if rng.random() < 0.6 or i == 0:
            # Back cushions lean on the back and stay below its top edge.
            ch = bh * rng.uniform(0.6, 0.9)
            cushion = P.rounded_slab(cw * 0.95, ch, cush_t, r * 2, 2, axis="z")
            lean = P.rotation("x", rng.uniform(0.05, 0.2))
            parts.append(P.transform(cushion, rotation=lean,
                                     translation=(x, seat_y + ch / 2, d / 2 - bt - cush_t)))
    if leg_h > 0:
        lr = rng.uniform(0.02, 0.04)
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(P.frustum(lr * 0.7, lr, leg_h, 8, base=(sx * (w / 2 - 0.08), 0.0, sz * (d / 2 - 0.08))))
    return P.concatenate(parts)


def cabinet(rng: np.random.Generator) -> Mesh:
    w, h, d = rng.uniform(0.35, 1.6), rng.uniform(0.35, 2.0), rng.uniform(0.3, 0.65)
    feet = _pick(rng, ["legs", "plinth", "none"], p=[0.35, 0.35, 0.3])
    y0 = rng.uniform(0.05, 0.2) if feet == "legs" else rng.uniform(0.04, 0.1) if feet == "plinth" else 0.0
    parts = [P.box((w, h, d), (0.0, y0 + h / 2, 0.0))]
    if feet == "legs":
        lr = rng.uniform(0.015, 0.035)
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(P.frustum(lr * 0.6, lr, y0, 10, base=(sx * (w / 2 - 0.05), 0.0, sz * (d / 2 - 0.05))))
    elif feet == "plinth":
        parts.append(P.box((w - 0.04, y0, d - 0.04), (0.0, y0 / 2, 0.02)))
    if rng.random() < 0.4:
        oh = rng.uniform(0.01, 0.04)
        parts.append(P.box((w + 2 * oh, rng.uniform(0.02, 0.04), d + oh), (0.0, y0 + h + 0.015, -oh / 2)))

    # Front panels: a grid of doors and drawers proud of the carcass by a few millimetres.
    gap, pt = 0.006, rng.uniform(0.01, 0.025)
    z = -d / 2 - pt / 2
    layout = _pick(rng, ["doors", "drawers", "mixed"])
    n_cols = int(np.clip(round(w / rng.uniform(0.35, 0.6)), 1, 4))
    rows: list[tuple[float, str]] = []
    if layout == "drawers":
        rows = [(1.0, "drawer")] * int(np.clip(round(h / rng.uniform(0.15, 0.3)), 2, 6))
    elif layout == "mixed":
        rows = [(0.18, "drawer")] * int(rng.integers(1, 3))
        rows.append((1.0 - 0.18 * len(rows), "door"))
    else:
        rows = [(1.0, "door")]
    total = sum(fr for fr, _ in rows)
    knob = _pick(rng, ["bar", "knob"])
    y_top = y0 + h
    for frac, kind in rows:
        rh = h * frac / total
        cols = 1 if (kind == "drawer" and w < 0.9) else n_cols
        cw = w / cols
        for c in range(cols):
            x = -w / 2 + (c + 0.5) * cw
            yc = y_top - rh / 2
            parts.append(P.box((cw - 2 * gap, rh - 2 * gap, pt), (x, yc, z)))
            if kind == "door":
                hx = x + (cw / 2 - 0.05) * (1 if c % 2 == 0 else -1) * (1 if cols > 1 else 0)
                hy = yc + rh * 0.3 if rh > 0.5 else yc
            else:
                hx, hy = x, yc
            if knob == "bar":
                # A pull: a round grip on two standoffs, vertical on doors, level on drawers.
                length = min(0.12, rh * 0.5) if kind == "door" else min(0.15, cw * 0.4)
                along = np.array([0.0, 1.0, 0.0]) if kind == "door" else np.array([1.0, 0.0, 0.0])
                mid = np.array([hx, hy, z - pt / 2 - 0.025])
                parts.append(P.cylinder(0.006, length, 6, base=mid - along * length / 2, axis=along))
                for end in (-0.4, 0.4):
                    foot = mid + along * length * end
                    parts.append(P.cylinder(0.005, 0.025, 6, base=foot, axis="z"))
            else:
                parts.append(P.cylinder(0.012, 0.025, 10, base=(hx, hy, z - pt / 2 + 0.001), axis="-z"))
        y_top -= rh
    return P.concatenate(parts)
