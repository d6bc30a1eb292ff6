"""Furnished synthetic rooms and a hand-held camera walk through them (ScanNet-like scans).

World frame: z up, metres; the room's interior is the box [0, size_x] x [0, size_y] x [0, height].

Shell. The floor is a slab under z = 0 and the four walls are boxes of `wall_thickness` standing
outside the interior, so the space behind a wall (and under the floor) is solid: a TSDF fused
from the interior sees it as "inner" (IOAR's class 0), as the space behind a real wall is. The
top is left open (no ceiling): ScanNet's vh_clean_2 meshes mostly lack the ceiling because the
hand-held sensor points down, and a camera pitched down 10-35 degrees sees little of it anyway;
a ray leaving through the top hits nothing and its depth pixel is 0 (invalid), as in real scans.

Furniture. The project's procedural generators (`stages.synthetic.furniture`, `devices`) build
in metres, +y up, front towards -z, floor at y = 0; a piece is turned z-up (its front then faces
+y), yawed and stood on the floor. Cabinets, sofas and benches stand against a wall facing the
room; chairs, tables and lamps stand anywhere at any yaw. Footprints (the xy bounding rectangles
of the placed meshes, plus a 5 cm gap) never overlap each other or the walls.

Camera walk. Free floor is what lies at least `clearance` from every wall and footprint, on a
5 cm grid; waypoints spread over the largest free region (farthest-point sampling from a
random first one), ordered around its centre, are joined by
8-connected shortest grid paths into a closed loop, smoothed (as much as the free space allows)
and walked once at constant speed. The yaw follows the path's heading, turned part way towards
the room's centre, plus a slow look-around sweep; the camera is pitched down; eye height, pitch, position and roll carry a small smooth
shake. Poses are camera-to-world with OpenCV camera axes (x right, y down, z forward).

Everything random is drawn from the `numpy.random.Generator` passed in: same seed, same room.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

import stages.synthetic.devices as devices
import stages.synthetic.furniture as furniture
import stages.synthetic.parts as P
from stages.rendering.shading import SceneObject

GRID = 0.05  # metres per cell of the free-space grid
GAP = 0.05  # metres kept between footprints, and between a footprint and a wall
WORLD_UP = np.array([0.0, 0.0, 1.0])
INWARD_PULL = 0.8  # weight of the direction to the room centre in the camera's heading

# class name -> (generator, placement): "wall" pieces back onto a wall, "free" ones stand anywhere.
FURNITURE = {
    "chair": (furniture.chair, "free"),
    "table": (furniture.table, "free"),
    "lamp": (devices.lamp, "free"),
    "sofa": (furniture.sofa, "wall"),
    "cabinet": (furniture.cabinet, "wall"),
    "bench": (furniture.bench, "wall"),
}
FURNITURE_WEIGHTS = {"chair": 3.0, "table": 2.0, "lamp": 1.0, "sofa": 1.0, "cabinet": 1.5, "bench": 0.5}


@dataclass(frozen=True)
class RoomConfig:
    """Ranges a room is drawn from (metres, radians, counts); each is (low, high)."""

    size: tuple[float, float] = (3.5, 6.0)  # interior extent along x and along y
    height: tuple[float, float] = (2.4, 2.8)  # wall height
    wall_thickness: tuple[float, float] = (0.12, 0.25)
    floor_thickness: float = 0.1
    furniture: tuple[int, int] = (4, 8)  # pieces attempted (fewer stay if the floor is full)
    eye_height: tuple[float, float] = (1.2, 1.6)
    pitch: tuple[float, float] = (np.radians(15.0), np.radians(30.0))  # downwards
    clearance: float = 0.4  # camera path to walls and footprints
    look_around: float = np.radians(30.0)  # amplitude of the yaw sweep around the heading
    shake_position: float = 0.01  # standard deviation of the positional shake
    shake_angle: float = np.radians(1.0)  # standard deviation of the angular shake


@dataclass
class PlacedFurniture:
    """One piece on the floor: class name, its mesh in world space, colour RGB in [0, 1],
    footprint (x_min, y_min, x_max, y_max) in metres and yaw in radians about +z."""

    name: str
    vertices: np.ndarray  # [N, 3] float64, world
    faces: np.ndarray  # [M, 3] int64
    color: np.ndarray  # [3]
    footprint: tuple[float, float, float, float]
    yaw: float


@dataclass
class Room:
    """A room: interior size (x, y) and wall height in metres, wall and floor thickness, and
    the furniture on its floor."""

    size: tuple[float, float]
    height: float
    wall_thickness: float
    floor_thickness: float
    furniture: list[PlacedFurniture] = field(default_factory=list)
    floor_color: np.ndarray = field(default_factory=lambda: np.array([0.55, 0.42, 0.3]))
    wall_color: np.ndarray = field(default_factory=lambda: np.array([0.85, 0.83, 0.78]))

    def shell(self) -> list[SceneObject]:
        """Floor slab and four wall boxes, each a SceneObject (world space, z up)."""
        sx, sy = self.size
        t, h = self.wall_thickness, self.height
        floor = P.box_between((-t, -t, -self.floor_thickness), (sx + t, sy + t, 0.0))
        walls = [
            P.box_between((-t, -t, 0.0), (0.0, sy + t, h)),
            P.box_between((sx, -t, 0.0), (sx + t, sy + t, h)),
            P.box_between((0.0, -t, 0.0), (sx, 0.0, h)),
            P.box_between((0.0, sy, 0.0), (sx, sy + t, h)),
        ]
        objects = [SceneObject(*floor, self.floor_color)]
        objects += [SceneObject(*w, self.wall_color) for w in walls]
        return objects

    def objects(self) -> list[SceneObject]:
        """Shell then furniture, as SceneObjects; object 0 is the floor, 1-4 the walls."""
        return self.shell() + [SceneObject(f.vertices, f.faces, f.color) for f in self.furniture]

    def mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole room as one mesh: vertices float64 [N, 3] (metres, z up), faces int64
        [M, 3] (outward winding), vertex colours uint8 [N, 3] (each object's colour)."""
        vertices, faces, colors, offset = [], [], [], 0
        for obj in self.objects():
            vertices.append(obj.vertices)
            faces.append(obj.faces + offset)
            colors.append(np.repeat(np.rint(obj.color * 255).astype(np.uint8)[None], len(obj.vertices), 0))
            offset += len(obj.vertices)
        return np.concatenate(vertices), np.concatenate(faces), np.concatenate(colors)


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _color(rng: np.random.Generator) -> np.ndarray:
    """A muted random colour (hue anywhere, saturation 0.2-0.7, value 0.35-0.9)."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.2, 0.7), rng.uniform(0.35, 0.9)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def z_up(vertices: np.ndarray) -> np.ndarray:
    """A generator's +y-up, front -z frame -> z up, front +y: (x, y, z) -> (x, -z, y)."""
    v = np.asarray(vertices, dtype=np.float64)
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)


def _yawed(vertices: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return vertices @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T


def _overlaps(a, b, gap: float) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _place(rng, name: str, size, placed: list[PlacedFurniture], attempts: int = 40):
    """Draw a piece of class `name` and try to stand it on the floor without overlaps."""
    generate, placement = FURNITURE[name]
    local, faces = generate(rng)
    local = z_up(local)
    local[:, 2] -= local[:, 2].min()
    sx, sy = size
    for _ in range(attempts):
        if placement == "wall":
            wall = int(rng.integers(4))
            inward = [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)][wall]
            # The front (+y after z_up) turned to face into the room.
            yaw = float(np.arctan2(inward[1], inward[0]) - np.pi / 2)
        else:
            yaw = float(rng.uniform(0.0, 2 * np.pi))
        turned = _yawed(local, yaw)
        lo, hi = turned[:, :2].min(axis=0), turned[:, :2].max(axis=0)
        extent = hi - lo
        if extent[0] > sx - 2 * GAP or extent[1] > sy - 2 * GAP:
            return None
        corner = np.array([rng.uniform(GAP, sx - GAP - extent[0]), rng.uniform(GAP, sy - GAP - extent[1])])
        if placement == "wall":
            corner[0] = {0: GAP, 1: sx - GAP - extent[0]}.get(wall, corner[0])
            corner[1] = {2: GAP, 3: sy - GAP - extent[1]}.get(wall, corner[1])
        footprint = (corner[0], corner[1], corner[0] + extent[0], corner[1] + extent[1])
        if any(_overlaps(footprint, p.footprint, GAP) for p in placed):
            continue
        world = turned + np.array([corner[0] - lo[0], corner[1] - lo[1], 0.0])
        return PlacedFurniture(name, world, np.asarray(faces, np.int64), _color(rng),
                               tuple(float(x) for x in footprint), yaw)
    return None


def generate_room(rng: np.random.Generator, config: RoomConfig = RoomConfig()) -> Room:
    """Draw a room shell and furnish it (see the module docstring). Pieces that find no free
    floor after 40 tries are left out, so a room holds at most config.furniture[1] pieces."""
    size = (_uniform(rng, config.size), _uniform(rng, config.size))
    room = Room(size, _uniform(rng, config.height), _uniform(rng, config.wall_thickness),
                config.floor_thickness)
    room.floor_color = _color(rng) * 0.8
    room.wall_color = 0.75 + 0.2 * _color(rng)
    names = list(FURNITURE_WEIGHTS)
    weights = np.array([FURNITURE_WEIGHTS[n] for n in names])
    count = int(rng.integers(config.furniture[0], config.furniture[1] + 1))
    for _ in range(count):
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        piece = _place(rng, name, size, room.furniture)
        if piece is not None:
            room.furniture.append(piece)
    # The walk needs a connected free region; give up pieces (last placed first) until it has one.
    while room.furniture and free_space(room, config.clearance).sum() < _min_free_cells(room):
        room.furniture.pop()
    return room


# Free space and the walk --------------------------------------------------------------------


def _min_free_cells(room: Room) -> int:
    # At least 1 square metre of connected free floor to walk in.
    return int(round(1.0 / GRID**2))


def _grid_centres(room: Room) -> tuple[np.ndarray, np.ndarray]:
    nx, ny = int(np.floor(room.size[0] / GRID)), int(np.floor(room.size[1] / GRID))
    return (np.arange(nx) + 0.5) * GRID, (np.arange(ny) + 0.5) * GRID


def free_space(room: Room, clearance: float) -> np.ndarray:
    """bool [nx, ny] over the 5 cm floor grid (cell (i, j) centred at ((i + 0.5) * 5 cm,
    (j + 0.5) * 5 cm)): True where the centre is at least `clearance` metres from every wall
    and every footprint, restricted to the largest 8-connected such region."""
    xs, ys = _grid_centres(room)
    x, y = np.meshgrid(xs, ys, indexing="ij")
    free = (x >= clearance) & (x <= room.size[0] - clearance) & (y >= clearance) & (y <= room.size[1] - clearance)
    for piece in room.furniture:
        x0, y0, x1, y1 = piece.footprint
        dx = np.maximum(np.maximum(x0 - x, x - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - y, y - y1), 0.0)
        free &= np.hypot(dx, dy) >= clearance
    labels, count = ndimage.label(free, structure=np.ones((3, 3)))
    if count == 0:
        return free
    sizes = ndimage.sum(free, labels, index=np.arange(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


_STEPS = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]


def grid_path(free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Shortest 8-connected path of cells from start to goal through `free` (breadth first, so
    fewest steps; ties broken by the fixed step order). Raises ValueError if none exists."""
    parent = {start: start}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = [cell]
            while path[-1] != start:
                path.append(parent[path[-1]])
            return path[::-1]
        for di, dj in _STEPS:
            nxt = (cell[0] + di, cell[1] + dj)
            if (0 <= nxt[0] < free.shape[0] and 0 <= nxt[1] < free.shape[1] and free[nxt]
                    and nxt not in parent):
                parent[nxt] = cell
                queue.append(nxt)
    raise ValueError(f"no free path from {start} to {goal}")


def _resample_loop(points: np.ndarray, count: int) -> np.ndarray:
    """`count` points at equal arc length along the closed polyline `points` [K, 2]."""
    closed = np.concatenate([points, points[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(count) * s[-1] / count
    return np.stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])], axis=1)


def walk_loop(room: Room, rng: np.random.Generator, clearance: float) -> np.ndarray:
    """A smooth closed walk through the free floor: float64 [K, 2] xy points about 5 cm apart,
    each at least clearance - 10 cm from walls and footprints. Raises ValueError when the room
    has no free floor."""
    free = free_space(room, clearance)
    cells = np.argwhere(free)
    if len(cells) < 2:
        raise ValueError("no free floor for a camera walk")
    centre = cells.mean(axis=0)
    picks = _spread_out(cells, int(rng.integers(4, 7)), rng)
    # Waypoints in angular order around the free region's centre make the loop go round the room.
    picks = picks[np.argsort(np.arctan2(picks[:, 1] - centre[1], picks[:, 0] - centre[0]))]
    path: list[tuple[int, int]] = []
    for a, b in zip(picks, np.roll(picks, -1, axis=0)):
        path += grid_path(free, tuple(int(v) for v in a), tuple(int(v) for v in b))[:-1]
    raw = (np.asarray(path, dtype=np.float64) + 0.5) * GRID
    if len(raw) < 3:
        raw = (cells[:3].astype(np.float64) + 0.5) * GRID
    raw = _resample_loop(raw, max(int(np.ceil(_loop_length(raw) / GRID)), 8))
    safe = free_space(room, clearance - 0.1)
    for sigma in (8.0, 4.0, 2.0, 1.0, 0.0):
        smooth = ndimage.gaussian_filter1d(raw, sigma, axis=0, mode="wrap") if sigma else raw
        index = np.clip(np.floor(smooth / GRID).astype(int), 0, np.array(safe.shape) - 1)
        if safe[index[:, 0], index[:, 1]].all():
            return smooth
    return raw


def _spread_out(cells: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` cells by farthest-point sampling from a random first one, so the loop spans
    the free floor instead of circling in one corner."""
    chosen = [int(rng.integers(len(cells)))]
    distance = np.linalg.norm(cells - cells[chosen[0]], axis=1)
    while len(chosen) < min(count, len(cells)):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(cells - cells[chosen[-1]], axis=1))
    return cells[chosen]


def _loop_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(np.concatenate([points, points[:1]]), axis=0), axis=1).sum())


def _smooth_noise(rng: np.random.Generator, count: int, sigma: float, scale: float) -> np.ndarray:
    """White noise smoothed over `sigma` frames, scaled to standard deviation `scale` (that of
    the smoothed process, so short walks shake as much as long ones): float64 [count]."""
    pad = 4 * int(np.ceil(sigma)) + 1
    noise = ndimage.gaussian_filter1d(rng.standard_normal(count + 2 * pad), sigma)[pad:pad + count]
    impulse = np.zeros(2 * pad + 1)
    impulse[pad] = 1.0
    process_std = float(np.linalg.norm(ndimage.gaussian_filter1d(impulse, sigma)))
    return noise / process_std * scale


def look_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """float64 [3, 3] camera-to-world rotation, columns = camera x (right), y (down), z
    (forward) in world coordinates (z up). yaw: heading of the optical axis from +x towards +y;
    pitch: downwards tilt of the optical axis; roll: turn about the optical axis (radians)."""
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch)])
    right = np.cross(forward, WORLD_UP)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([c * right + s * down, -s * right + c * down, forward], axis=1)


def camera_walk(room: Room, rng: np.random.Generator, frames: int,
                config: RoomConfig = RoomConfig()) -> np.ndarray:
    """`frames` camera-to-world poses walking once round the room: float64 [frames, 4, 4],
    OpenCV camera axes (x right, y down, z forward), world z up, metres. Eye height is drawn in
    config.eye_height and the pitch in config.pitch (each with +-3 % / +-3 degrees of slow drift),
    plus a smooth shake of config.shake_position metres and config.shake_angle radians."""
    if frames < 1:
        raise ValueError("a walk needs at least one frame")
    loop = walk_loop(room, rng, config.clearance)
    xy = _resample_loop(loop, frames)
    ahead = _resample_loop(loop, 4 * frames)[(np.arange(frames) * 4 + 2) % (4 * frames)]
    # The heading is turned part way towards the room's centre, so the camera looks across the
    # room (as a person scanning it does) rather than into the wall ahead.
    along = ahead - xy
    along /= np.maximum(np.linalg.norm(along, axis=1, keepdims=True), 1e-9)
    inward = np.array(room.size) / 2.0 - xy
    inward /= np.maximum(np.linalg.norm(inward, axis=1, keepdims=True), 1e-9)
    look = along + INWARD_PULL * inward
    heading = np.unwrap(np.arctan2(look[:, 1], look[:, 0]))
    phase = rng.uniform(0, 2 * np.pi)
    sweeps = rng.uniform(1.5, 3.0)
    yaw = heading + config.look_around * np.sin(phase + 2 * np.pi * sweeps * np.arange(frames) / frames)
    eye = _uniform(rng, config.eye_height) * (1.0 + _smooth_noise(rng, frames, 6.0, 0.01))
    eye = np.clip(eye, config.eye_height[0], config.eye_height[1])
    pitch = _uniform(rng, config.pitch) + _smooth_noise(rng, frames, 6.0, np.radians(3.0))
    sigma = 2.0
    yaw = yaw + _smooth_noise(rng, frames, sigma, config.shake_angle)
    pitch = pitch + _smooth_noise(rng, frames, sigma, config.shake_angle)
    roll = _smooth_noise(rng, frames, sigma, config.shake_angle)
    shake = np.stack([_smooth_noise(rng, frames, sigma, config.shake_position) for _ in range(3)], axis=1)
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        poses[i, :3, :3] = look_rotation(yaw[i], pitch[i], roll[i])
        poses[i, :3, 3] = np.array([xy[i, 0], xy[i, 1], eye[i]]) + shake[i]
    # The shake must not carry the eye out of its range.
    poses[:, 2, 3] = np.clip(poses[:, 2, 3], config.eye_height[0], config.eye_height[1])
    return poses
