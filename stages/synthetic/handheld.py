"""Generators for hand-held objects: rifle, telephone.

Built with +y up, the business end (muzzle, screen) towards -z and x = 0 as the mirror plane (see
``stages.synthetic.classes``).
"""

from __future__ import annotations

import numpy as np

import stages.synthetic.parts as P
from stages.synthetic.parts import Mesh


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def rifle(rng: np.random.Generator) -> Mesh:
    barrel_l, barrel_r = rng.uniform(0.45, 0.75), rng.uniform(0.008, 0.015)
    recv_l, recv_h, recv_w = rng.uniform(0.2, 0.35), rng.uniform(0.05, 0.085), rng.uniform(0.03, 0.045)
    stock_l = rng.uniform(0.2, 0.35)
    # Along +z: muzzle at z = 0, receiver, then the stock; the bore line is y = 0.
    z_recv = barrel_l
    parts = [P.cylinder(barrel_r, barrel_l + 0.02, 12, base=(0.0, 0.0, 0.0), axis="z")]
    if rng.random() < 0.5:  # muzzle brake / flash hider
        parts.append(P.cylinder(barrel_r * 1.5, 0.04, 12, base=(0.0, 0.0, -0.01), axis="z"))
    recv_top, recv_bot = recv_h * 0.2, -recv_h * 0.8
    parts.append(P.box((recv_w, recv_h, recv_l), (0.0, (recv_top + recv_bot) / 2, z_recv + recv_l / 2)))
    if rng.random() < 0.65:
        # Handguard covers at most 55% of the barrel so the muzzle end stays bare.
        hg_l = barrel_l * rng.uniform(0.25, 0.55)
        hg_h = recv_h * rng.uniform(0.6, 0.9)
        if rng.random() < 0.5:
            parts.append(P.box((recv_w * 0.95, hg_h, hg_l), (0.0, -hg_h * 0.2, z_recv - hg_l / 2)))
        else:
            parts.append(P.cylinder(hg_h / 2, hg_l, 12, base=(0.0, -hg_h * 0.1, z_recv - hg_l), axis="z"))

    z_s = z_recv + recv_l
    butt_h = rng.uniform(0.09, 0.15)
    drop = rng.uniform(0.0, 0.06)
    top0, bot0 = recv_top, recv_bot
    top1 = top0 - drop
    bot1 = top1 - butt_h
    hw, hw1 = recv_w / 2, recv_w / 2 * rng.uniform(0.8, 1.1)
    stock = P.hexahedron([(-hw, bot0, z_s), (hw, bot0, z_s), (hw1, bot1, z_s + stock_l), (-hw1, bot1, z_s + stock_l),
                          (-hw, top0, z_s), (hw, top0, z_s), (hw1, top1, z_s + stock_l), (-hw1, top1, z_s + stock_l)])
    parts.append(stock)
    if rng.random() < 0.3:  # butt pad
        parts.append(P.box((recv_w * 1.05, butt_h, 0.015), (0.0, (top1 + bot1) / 2, z_s + stock_l + 0.006)))

    grip_l, grip_a = rng.uniform(0.08, 0.12), rng.uniform(0.2, 0.45)
    grip_top = np.array([0.0, -recv_h * 0.7, z_recv + recv_l * 0.8])
    grip_end = grip_top + grip_l * np.array([0.0, -np.cos(grip_a), np.sin(grip_a)])
    parts.append(P.beam(grip_top, grip_end, recv_w * 0.9, 0.035))
    guard_z = grip_top[2] - 0.05
    parts.append(P.box((0.008, 0.006, 0.07), (0.0, grip_top[1] - 0.03, guard_z)))
    if rng.random() < 0.6:
        mag_l, mag_a = rng.uniform(0.07, 0.15), rng.uniform(-0.1, 0.35)
        mag_top = np.array([0.0, -recv_h * 0.6, z_recv + recv_l * rng.uniform(0.25, 0.45)])
        mag_end = mag_top + mag_l * np.array([0.0, -np.cos(mag_a), -np.sin(mag_a)])
        parts.append(P.beam(mag_top, mag_end, recv_w * 0.8, rng.uniform(0.025, 0.05)))
    if rng.random() < 0.45:
        sr, sl = rng.uniform(0.012, 0.022), rng.uniform(0.18, min(0.32, recv_l + 0.1))
        ys = recv_top + rng.uniform(0.02, 0.04) + sr
        zs = z_recv + recv_l / 2 - sl / 2
        eye = rng.uniform(1.3, 1.8)
        tube = P.lathe([(sr * eye, 0.0), (sr * eye, 0.04), (sr, 0.07), (sr, sl - 0.05), (sr * 1.2, sl - 0.03),
                        (sr * 1.2, sl)], 14, base=(0.0, ys, zs), axis="z")
        parts.append(tube)
        for f in (0.3, 0.7):
            parts.append(P.box((recv_w * 0.6, ys - recv_top, 0.02), (0.0, (ys + recv_top) / 2, zs + sl * f)))
    else:
        parts.append(P.box((0.006, 0.025, 0.01), (0.0, barrel_r + 0.01, 0.04)))
        parts.append(P.box((0.02, 0.02, 0.02), (0.0, recv_top + 0.005, z_recv + recv_l * 0.85)))
    return P.concatenate(parts)


def telephone(rng: np.random.Generator) -> Mesh:
    style = _pick(rng, ["smartphone", "keypad", "handset"], p=[0.6, 0.25, 0.15])
    if style == "handset":
        return _handset(rng)
    # Upright like ShapeNet's phones: the face in the x-y plane, looking towards -z.
    if style == "smartphone":
        w = rng.uniform(0.06, 0.085)
        h = w * rng.uniform(1.6, 2.3)
        t = rng.uniform(0.007, 0.012)
    else:
        w = rng.uniform(0.042, 0.058)
        h = w * rng.uniform(1.9, 2.6)
        t = rng.uniform(0.012, 0.022)
    r = rng.uniform(0.08, 0.2) * w
    parts = [P.translate(P.rounded_slab(w, h, t, r, 4, axis="z"), (0.0, h / 2, 0.0))]
    b_side = rng.uniform(0.002, 0.006)
    if style == "smartphone":
        b_top, b_bot = rng.uniform(0.003, 0.015), rng.uniform(0.003, 0.018)
        sh = h - b_top - b_bot
        screen = P.rounded_slab(w - 2 * b_side, sh, 0.0006, r * 0.6, 3, axis="z")
        parts.append(P.translate(screen, (0.0, b_bot + sh / 2, -0.0005)))
        if b_bot > 0.012 and rng.random() < 0.6:  # home button
            parts.append(P.cylinder(b_bot * 0.3, 0.0006, 12, base=(0.0, b_bot / 2, 0.0), axis="-z"))
        parts.append(P.box((w * 0.2, 0.0015, 0.0008), (0.0, h - b_top / 2, -0.0003)))
        n_cam = int(rng.integers(1, 4))
        for i in range(n_cam):
            parts.append(P.cylinder(w * 0.06, 0.0015, 12, base=(-w * 0.3 + i * w * 0.16, h - w * 0.15, t), axis="z"))
    else:
        sh = h * rng.uniform(0.3, 0.42)
        parts.append(P.box((w - 2 * b_side - 0.004, sh, 0.0008), (0.0, h - 0.012 - sh / 2, -0.0003)))
        pad_top = h - 0.02 - sh
        rows, cols = 4, 3
        kw, kh = (w - 0.012) / cols, (pad_top - 0.012) / (rows + 1)
        for i in range(rows):
            for j in range(cols):
                parts.append(P.box((kw * 0.75, kh * 0.6, 0.002),
                                   (-w / 2 + 0.006 + (j + 0.5) * kw, 0.006 + (i + 0.5) * kh, -0.0008)))
        parts.append(P.cylinder(kh * 0.45, 0.002, 12, base=(0.0, 0.006 + (rows + 0.5) * kh, 0.0), axis="-z"))
        if rng.random() < 0.3:
            parts.append(P.cylinder(0.004, h * 0.25, 8, base=(w * 0.3, h - 0.005, t / 2)))
    return P.concatenate(parts)


def _handset(rng: np.random.Generator) -> Mesh:
    """A corded-phone receiver standing upright: earpiece on top, mouthpiece below, both facing
    -z, joined by a grip set back behind them."""
    length = rng.uniform(0.18, 0.23)
    cup_r = rng.uniform(0.02, 0.03)
    cup_d = rng.uniform(0.015, 0.025)
    grip_w, grip_t = rng.uniform(0.025, 0.04), rng.uniform(0.015, 0.025)
    back = cup_d + rng.uniform(0.005, 0.015)
    parts = []
    for y in (cup_r, length - cup_r):
        parts.append(P.frustum(cup_r, cup_r * rng.uniform(0.8, 1.0), cup_d, 16, base=(0.0, y, cup_d), axis="-z"))
        parts.append(P.sphere(cup_r * 0.8, (0.0, y, cup_d), 12, 6))
    grip_lo, grip_hi = np.array([0.0, cup_r * 1.6, back]), np.array([0.0, length - cup_r * 1.6, back])
    parts.append(P.beam(grip_lo, grip_hi, grip_w, grip_t))
    for y, end in ((cup_r, grip_lo), (length - cup_r, grip_hi)):
        parts.append(P.beam((0.0, y, cup_d * 0.6), end, grip_w * 0.9, grip_t))
    return P.concatenate(parts)
