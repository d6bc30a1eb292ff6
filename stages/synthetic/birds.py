"""A parametric bird: the mesh behind the embedded CUB-200-2011 stand-in.

A bird is built from the primitives of ``stages.synthetic.parts``: an ellipsoid body pitched
nose-up, a neck (frustum), a spherical head with two eyes, a cone beak, a flat fanned tail, two
wings (flattened ellipsoids) and two legs with a toe each. The frame is the bird's own:

    +x  the bird's left (CUB's "Left Eye" etc. have x > 0)
    +y  up
    +z  forward (the beak points roughly along +z)

Units are body lengths (the body ellipsoid spans z in [-0.5, 0.5] before pitching). Every part
on the mid-plane is a surface of revolution about an axis in the plane x = 0 (built with 16
segments, whose ring points come in mirrored pairs), and every paired part (eye, wing, leg) is
built on the left and mirrored through x = 0, so the vertex set is mirror-symmetric.

Each face carries a part label in SCOPS's order (NVlabs/SCOPS evaluate_cub.py writes 4 parts
plus background; UMR data/base.py reads channel 1 head, 2 neck, 3 back, 4 belly):

    1 head   head, eyes, beak
    2 neck   neck
    3 back   upper half of the body, wings, tail
    4 belly  lower half of the body, legs, toes

and a material (for colouring only). The 15 landmarks follow CUB-200-2011's parts/parts.txt
order (the rows of CMR's ``parts`` 3x15 array, akanazawa/cmr preprocess/cub/cub_sfm.m
``kp_names``); each is a vertex of the part it belongs to, so it lies on the rendered surface.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

import stages.synthetic.parts as P

KEYPOINT_NAMES = (
    "Back", "Beak", "Belly", "Breast", "Crown", "Forehead", "Left Eye", "Left Leg",
    "Left Wing", "Nape", "Right Eye", "Right Leg", "Right Wing", "Tail", "Throat",
)
# Left/right swap of the keypoints (0-based): CMR data/cub.py and UMR data/cub.py
# kp_perm = [1, 2, 3, 4, 5, 6, 11, 12, 13, 10, 7, 8, 9, 14, 15] - 1.
KP_PERM = np.array([1, 2, 3, 4, 5, 6, 11, 12, 13, 10, 7, 8, 9, 14, 15]) - 1

PART_NAMES = ("background", "head", "neck", "back", "belly")
HEAD, NECK, BACK, BELLY = 1, 2, 3, 4

MATERIALS = ("back", "belly", "head", "beak", "eye", "wing", "tail", "leg")

SEGMENTS = 16  # a multiple of 4: ring points at 90 and 270 degrees sit exactly on the mid-plane


@dataclass(frozen=True)
class BirdParams:
    """Proportions of one bird, in body lengths and radians (see ``sample_bird_params``)."""

    body_width: float = 0.27  # x semi-axis of the body ellipsoid
    body_height: float = 0.27  # y semi-axis
    pitch: float = 0.35  # nose-up rotation of the body about x
    head_radius: float = 0.16
    neck_length: float = 0.08  # gap between body top-front and head
    beak_length: float = 0.18
    beak_radius: float = 0.045
    beak_droop: float = 0.15  # downward tilt of the beak from +z
    tail_length: float = 0.42
    tail_spread: float = 0.22  # width of the tail tip
    tail_angle: float = -0.35  # tail direction below horizontal (negative = down)
    wing_length: float = 0.62  # along the body, relative to the body length
    wing_height: float = 0.55  # relative to the body height
    leg_length: float = 0.18

    @classmethod
    def ranges(cls) -> dict[str, tuple[float, float]]:
        """Uniform sampling range of every field; the defaults are the mid-points."""
        return {
            "body_width": (0.22, 0.32), "body_height": (0.22, 0.32), "pitch": (0.15, 0.55),
            "head_radius": (0.13, 0.19), "neck_length": (0.03, 0.13),
            "beak_length": (0.08, 0.28), "beak_radius": (0.03, 0.06),
            "beak_droop": (0.0, 0.3), "tail_length": (0.3, 0.54), "tail_spread": (0.14, 0.3),
            "tail_angle": (-0.7, 0.0), "wing_length": (0.5, 0.74), "wing_height": (0.45, 0.65),
            "leg_length": (0.1, 0.26),
        }


def sample_bird_params(rng: np.random.Generator) -> BirdParams:
    """Proportions drawn uniformly from ``BirdParams.ranges()``, in field order."""
    ranges = BirdParams.ranges()
    return BirdParams(**{f.name: float(rng.uniform(*ranges[f.name])) for f in fields(BirdParams)})


@dataclass
class Bird:
    """A built bird: vertices float64 [N, 3] (bird frame, body lengths), faces int64 [M, 3]
    (outward, counter-clockwise), face_part int8 [M] (1..4, see PART_NAMES), face_material
    int8 [M] (index into MATERIALS), landmarks float64 [15, 3] (KEYPOINT_NAMES order),
    landmark_normals float64 [15, 3]: unit outward surface normals at the landmarks."""

    vertices: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray
    face_material: np.ndarray
    landmarks: np.ndarray
    landmark_normals: np.ndarray


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals, float64 [N, 3] (parts are not welded, so a vertex's
    normal comes from its own part's faces only)."""
    v, f = vertices, faces
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, f[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class _Assembly:
    """Collects labelled parts and remembers where each one's vertices are."""

    def __init__(self):
        self.meshes: list[P.Mesh] = []
        self.labels: list[np.ndarray] = []
        self.materials: list[np.ndarray] = []
        self.offset = 0

    def add(self, mesh: P.Mesh, part, material: str) -> np.ndarray:
        """Add a mesh; `part` is a label or a per-face label array. Returns its vertices."""
        v, f = mesh
        self.meshes.append(mesh)
        self.labels.append(np.broadcast_to(np.asarray(part, np.int8), (len(f),)).copy())
        self.materials.append(np.full(len(f), MATERIALS.index(material), np.int8))
        self.offset += len(v)
        return v

    def build(self, landmarks: np.ndarray, fixed_normals: dict[int, np.ndarray]) -> Bird:
        """`fixed_normals`: normals of landmarks that are not vertices, by landmark index."""
        v, f = P.concatenate(self.meshes)
        normals = vertex_normals(v, f)
        lm_normals = np.empty_like(landmarks)
        for k, point in enumerate(landmarks):
            if k in fixed_normals:
                lm_normals[k] = fixed_normals[k]
            else:
                lm_normals[k] = normals[int(np.argmin(np.linalg.norm(v - point, axis=1)))]
        return Bird(v, f, np.concatenate(self.labels), np.concatenate(self.materials), landmarks,
                    lm_normals)


def _nearest_vertex(vertices: np.ndarray, target) -> np.ndarray:
    d = np.linalg.norm(vertices - np.asarray(target, dtype=np.float64), axis=1)
    return vertices[int(np.argmin(d))].copy()


def _mirror_point(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, 1.0, 1.0])


def _axial_ellipsoid(radii, rings: int) -> P.Mesh:
    """A UV ellipsoid centred at the origin with semi-axes `radii` along (x, y, z) and its poles
    on the z axis (so its rings are cross-sections of a body that runs along z)."""
    rx, ry, rz = radii
    # `ellipsoid` puts the poles on y; a quarter turn about x takes y to z and z to -y.
    return P.transform(P.ellipsoid((rx, rz, ry), segments=SEGMENTS, rings=rings),
                       rotation=P.rotation("x", np.pi / 2))


def build_bird(params: BirdParams = BirdParams()) -> Bird:
    """Build the bird mesh, its part labels and its 15 landmarks (see the module docstring)."""
    p = params
    asm = _Assembly()
    pitch = P.rotation("x", -p.pitch)  # about x; -angle lifts +z towards +y
    rz = 0.5

    # Body: a UV ellipsoid whose poles lie on the body axis (z), pitched nose-up.
    body_local = _axial_ellipsoid((p.body_width, p.body_height, rz), rings=12)
    body = P.transform(body_local, rotation=pitch)
    bv, bf = body
    local_y = body_local[0][:, 1]
    body_part = np.where(local_y[bf].mean(axis=1) >= 0.0, BACK, BELLY)
    body_v = asm.add(body, body_part, "back")
    asm.materials[-1][body_part == BELLY] = MATERIALS.index("belly")

    def on_body(angle: float) -> np.ndarray:
        # Point of the body's mid-plane outline at `angle` from the forward axis (up positive).
        local = np.array([0.0, p.body_height * np.sin(angle), rz * np.cos(angle)])
        return pitch @ local

    front = on_body(0.0)
    head_centre = front * 0.8 + np.array(
        [0.0, p.head_radius + p.neck_length + 0.25 * p.body_height, 0.0])

    # Neck: a frustum from inside the body's front to the head centre.
    neck_base = front * 0.55
    neck_axis = head_centre - neck_base
    neck = P.frustum(0.6 * min(p.body_width, p.body_height), 0.5 * p.head_radius,
                     float(np.linalg.norm(neck_axis)), SEGMENTS, base=neck_base, axis=neck_axis)
    asm.add(neck, NECK, "head")

    head = P.sphere(p.head_radius, head_centre, segments=SEGMENTS, rings=10)
    head_v = asm.add(head, HEAD, "head")

    beak_dir = np.array([0.0, -np.sin(p.beak_droop), np.cos(p.beak_droop)])
    beak_base = head_centre + 0.8 * p.head_radius * beak_dir
    beak = P.cone(p.beak_radius, p.beak_length + 0.2 * p.head_radius, SEGMENTS, base=beak_base,
                  axis=beak_dir)
    beak_v = asm.add(beak, HEAD, "beak")

    eye_radius = 0.16 * p.head_radius
    eye_dir = np.array([0.72, 0.32, 0.62])
    eye_dir /= np.linalg.norm(eye_dir)
    eye_centre = head_centre + (p.head_radius - 0.3 * eye_radius) * eye_dir
    left_eye = P.sphere(eye_radius, eye_centre, segments=8, rings=4)
    left_eye_v = asm.add(left_eye, HEAD, "eye")
    asm.add(P.mirror(left_eye), HEAD, "eye")

    # Tail: a flat wedge from inside the body's rear, fanning out towards the tip.
    rear = on_body(np.pi)
    tail_dir = np.array([0.0, np.sin(p.tail_angle), -np.cos(p.tail_angle)])
    tail_up = np.array([0.0, np.cos(p.tail_angle), np.sin(p.tail_angle)])
    root = rear * 0.75
    tip = root + (p.tail_length + 0.25 * rz) * tail_dir
    root_w, tip_w, thick = 0.5 * p.body_width, 0.5 * p.tail_spread, 0.02
    corners = []
    for centre, half in ((root, root_w), (tip, tip_w)):
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            corners.append(centre + sx * half * np.array([1.0, 0.0, 0.0]) + sy * thick * tail_up)
    tail_corners = np.array(corners)
    # hexahedron wants a bottom quad then a top quad in the same cyclic order.
    quad_lo = tail_corners[[0, 1, 5, 4]]
    quad_hi = tail_corners[[3, 2, 6, 7]]
    tail = P.hexahedron(np.concatenate([quad_lo, quad_hi]))
    asm.add(tail, BACK, "tail")

    # Wings: flattened ellipsoids on the body's flanks, trailing edge drooping backwards.
    wing_radii = (0.05, p.wing_height * p.body_height, p.wing_length * rz)
    wing_local = _axial_ellipsoid(wing_radii, rings=8)
    wing_centre = pitch @ np.array([0.92 * p.body_width, 0.2 * p.body_height, -0.12 * rz])
    wing_rot = P.rotation("x", -p.pitch * 0.6) @ P.rotation("z", 0.12)
    left_wing = P.transform(wing_local, rotation=wing_rot, translation=wing_centre)
    left_wing_v = asm.add(left_wing, BACK, "wing")
    asm.add(P.mirror(left_wing), BACK, "wing")

    # Legs: thin cylinders straight down from the belly, a toe pointing forward.
    hip = pitch @ np.array([0.4 * p.body_width, -0.75 * p.body_height, 0.05 * rz])
    leg_r = 0.022
    lowest = bv[:, 1].min()
    foot_y = lowest - p.leg_length
    leg = P.cylinder(leg_r, hip[1] - foot_y, 8, base=(hip[0], foot_y, hip[2]))
    toe = P.beam((hip[0], foot_y + leg_r, hip[2] - 0.03), (hip[0], foot_y + leg_r, hip[2] + 0.12),
                 2 * leg_r)
    left_leg_v = asm.add(leg, BELLY, "leg")
    asm.add(toe, BELLY, "leg")
    asm.add(P.mirror(leg), BELLY, "leg")
    asm.add(P.mirror(toe), BELLY, "leg")

    hc, hr = head_centre, p.head_radius

    def on_head(dy: float, dz: float) -> np.ndarray:
        d = np.array([0.0, dy, dz])
        return _nearest_vertex(head_v, hc + hr * d / np.linalg.norm(d))

    left_eye_kp = _nearest_vertex(left_eye_v, eye_centre + eye_radius * eye_dir)
    left_leg_kp = _nearest_vertex(left_leg_v, (hip[0] + leg_r, foot_y + 0.02, hip[2] + leg_r))
    left_wing_kp = _nearest_vertex(left_wing_v, wing_centre + np.array([1.0, 0.3, 0.0]))
    landmarks = np.stack([
        _nearest_vertex(body_v, on_body(np.radians(100.0))),  # Back
        _nearest_vertex(beak_v, beak_base + 2.0 * beak_dir),  # Beak: the tip
        _nearest_vertex(body_v, on_body(np.radians(-95.0))),  # Belly
        _nearest_vertex(body_v, on_body(np.radians(-35.0))),  # Breast
        on_head(1.0, -0.15),  # Crown
        on_head(0.75, 0.65),  # Forehead
        left_eye_kp,  # Left Eye
        left_leg_kp,  # Left Leg
        left_wing_kp,  # Left Wing
        on_head(0.2, -1.0),  # Nape
        _mirror_point(left_eye_kp),  # Right Eye
        _mirror_point(left_leg_kp),  # Right Leg
        _mirror_point(left_wing_kp),  # Right Wing
        tip,  # Tail: the centre of the tail's tip face (a surface point on the mid-plane)
        on_head(-0.7, 0.7),  # Throat: below the beak, clear of the neck
    ])
    return asm.build(landmarks, {KEYPOINT_NAMES.index("Tail"): tail_dir})
