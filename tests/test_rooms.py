"""Synthetic rooms in ScanNet's SensReader layout: folder layout, poses, depth against analytic
ray/box distances, furniture placement, determinism."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from stages.formats import scannet as layout
from stages.rendering.surfaces import SceneGeometry
from stages.scannet_tables import decode_depth, encode_depth
from stages.synthesize_rooms import (
    ScanSettings,
    as_written,
    depth_intrinsics,
    main,
    render_depth,
    scene_rng,
    write_scan,
)
from stages.synthetic.rooms import RoomConfig, camera_walk, free_space, generate_room, look_rotation

W, H, FRAMES = 32, 24, 3


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    code = main(["--out", str(root), "--scenes-train", "1", "--scenes-val", "1", "--scenes-test", "1",
                 "--frames", str(FRAMES), "--width", str(W), "--height", str(H), "--seed", "7",
                 "--no-progress"])
    assert code == 0
    return root


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_folder_layout_is_scannets(release):
    expected = ["scannetv2_test.txt", "scannetv2_train.txt", "scannetv2_val.txt"]
    for folder, scene in (("scans", "synth0000_00"), ("scans", "synth0001_00"), ("scans_test", "synth0002_00")):
        base = f"{folder}/{scene}"
        expected.append(f"{base}/{scene}_vh_clean_2.ply")
        expected += [f"{base}/intrinsic/{name}" for name in layout.INTRINSIC_FILES]
        for i in range(FRAMES):
            expected += [f"{base}/color/{i}.jpg", f"{base}/depth/{i}.png", f"{base}/pose/{i}.txt"]
    assert _files(release) == sorted(expected)
    assert (release / "scannetv2_train.txt").read_text() == "synth0000_00\n"
    assert (release / "scannetv2_val.txt").read_text() == "synth0001_00\n"
    assert (release / "scannetv2_test.txt").read_text() == "synth0002_00\n"

    scan = release / "scans" / "synth0000_00"
    with Image.open(scan / "depth" / "0.png") as depth:
        assert depth.format == "PNG" and depth.mode.startswith("I;16") and depth.size == (W, H)
    with Image.open(scan / "color" / "0.jpg") as color:
        assert color.format == "JPEG" and color.mode == "RGB" and color.size == (2 * W, 2 * H)
    # SensorData.save_mat_to_file: four lines of four '%f' values.
    lines = (scan / "intrinsic" / "intrinsic_depth.txt").read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split(" ")) == 4 for line in lines)
    assert all(len(v.split(".")[1]) == 6 for line in lines for v in line.split(" "))
    K_depth, K_color = layout.read_intrinsics(scan, "depth"), layout.read_intrinsics(scan, "color")
    np.testing.assert_allclose(K_depth, depth_intrinsics(W, H), atol=5e-7)
    assert not np.allclose(K_color / 2, K_depth, atol=0.1)  # not a plain 2x resize
    np.testing.assert_array_equal(layout.read_matrix(scan / "intrinsic" / "extrinsic_color.txt"), np.eye(4))
    header = (scan / "synth0000_00_vh_clean_2.ply").read_bytes().split(b"end_header")[0].decode()
    for line in ("format binary_little_endian 1.0", "property uchar red", "property uchar alpha",
                 "property list uchar int vertex_indices"):
        assert line in header
    assert all(not layout.REAL_SCENE_ID.match(s) and layout.SYNTHETIC_SCENE_ID.match(s)
               for s in ("synth0000_00", "synth0001_00", "synth0002_00"))


def test_poses_read_back_equal_the_generated_ones(release, tmp_path):
    settings = ScanSettings(FRAMES, W, H, 2)
    written = write_scan(tmp_path / "synth0000_00", 7, 0, settings)
    rng = scene_rng(7, 0)
    room = generate_room(rng)
    generated = camera_walk(room, rng, FRAMES)
    np.testing.assert_allclose(written, generated, atol=5e-7)  # the files hold six decimals
    for i in range(FRAMES):
        read = layout.read_matrix(release / "scans" / "synth0000_00" / "pose" / f"{i}.txt")
        np.testing.assert_array_equal(read, written[i])
        np.testing.assert_allclose(read[:3, :3].T @ read[:3, :3], np.eye(3), atol=1e-5)
        assert 1.2 <= read[2, 3] <= 1.6  # eye height
        assert read[2, 2] < -np.sin(np.radians(10))  # optical axis pitched down


def _shell_depth(room, pose, K, width, height):
    """Analytic depth of the empty shell: the exit distance of each pixel's ray from the
    interior box, 0 where it leaves through the open top; and the exit height."""
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    rays_cam = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    d = (pose[:3, :3] @ rays_cam).T  # camera z of each ray is 1, so t is the depth
    c = pose[:3, 3]
    hi = np.array([room.size[0], room.size[1], room.height])
    with np.errstate(divide="ignore"):
        t = np.where(d > 0, (hi - c) / d, np.where(d < 0, (0.0 - c) / d, np.inf))
    axis = np.argmin(t, axis=1)
    depth = t[np.arange(len(t)), axis]
    exit_z = c[2] + depth * d[:, 2]
    through_top = (axis == 2) & (d[:, 2] > 0)
    depth[through_top] = 0.0
    return depth.reshape(height, width), exit_z.reshape(height, width)


def test_wall_depth_equals_the_analytic_distance():
    room = generate_room(np.random.default_rng(3), RoomConfig(furniture=(0, 0)))
    assert room.furniture == []
    pose = np.eye(4)
    pose[:3, :3] = look_rotation(yaw=np.radians(10.0), pitch=np.radians(20.0), roll=np.radians(2.0))
    pose[:3, 3] = [1.0, room.size[1] / 2, 1.4]
    width, height = 64, 48
    K = depth_intrinsics(width, height)
    rendered, face = render_depth(SceneGeometry.from_objects(room.objects()), pose, K, width, height)
    measured = decode_depth(encode_depth(rendered))  # through the uint16-millimetre PNG
    expected, exit_z = _shell_depth(room, pose, K, width, height)
    # The centre pixel looks at the +x wall (x = size_x) at depth (size_x - 1) / cos(20 deg) / cos(10 deg)
    # up to the roll and the half-pixel principal point; the analytic ray gives it exactly.
    centre = expected[height // 2, width // 2]
    assert abs(measured[height // 2, width // 2] - centre) <= 1e-3
    assert centre == pytest.approx((room.size[0] - 1.0) / np.cos(np.radians(20)) / np.cos(np.radians(10)), rel=0.05)
    clear = np.abs(exit_z - room.height) > 0.02  # away from the walls' top edge
    assert clear.mean() > 0.9
    np.testing.assert_allclose(measured[clear], expected[clear], atol=1e-3)
    assert (measured[clear & (expected == 0)] == 0).all()


def test_furniture_only_occludes_the_shell(release):
    scan = release / "scans" / "synth0000_00"
    rng = scene_rng(7, 0)
    room = generate_room(rng)
    K = layout.read_intrinsics(scan, "depth")
    equal = total = 0
    for i in range(FRAMES):
        pose = layout.read_matrix(scan / "pose" / f"{i}.txt")
        measured = decode_depth((scan / "depth" / f"{i}.png").read_bytes())
        expected, exit_z = _shell_depth(room, pose, K, W, H)
        valid = (measured > 0) & (expected > 0) & (np.abs(exit_z - room.height) > 0.02)
        assert (measured[valid] <= expected[valid] + 1e-3).all()
        equal += int((np.abs(measured[valid] - expected[valid]) <= 1e-3).sum())
        total += int(valid.sum())
    assert total > 0.8 * FRAMES * W * H and equal > 0.3 * total


@pytest.mark.parametrize("seed", range(6))
def test_furniture_footprints_are_disjoint_and_the_walk_avoids_them(seed):
    config = RoomConfig()
    rng = np.random.default_rng(seed)
    room = generate_room(rng, config)
    prints = [p.footprint for p in room.furniture]
    for k, (x0, y0, x1, y1) in enumerate(prints):
        assert 0 < x0 < x1 < room.size[0] and 0 < y0 < y1 < room.size[1]
        piece = room.furniture[k]
        assert piece.vertices[:, 2].min() == pytest.approx(0.0, abs=1e-9)  # stands on the floor
        np.testing.assert_allclose(piece.vertices[:, :2].min(0), [x0, y0], atol=1e-9)
        for other in prints[k + 1:]:
            assert x1 <= other[0] or other[2] <= x0 or y1 <= other[1] or other[3] <= y0
    poses = camera_walk(room, rng, 30, config)
    xy = poses[:, :2, 3]
    margin = config.clearance - 0.1 - 0.05  # path safety margin minus shake
    assert (xy > margin).all() and (xy < np.array(room.size) - margin).all()
    for x0, y0, x1, y1 in prints:
        dx = np.maximum(np.maximum(x0 - xy[:, 0], xy[:, 0] - x1), 0)
        dy = np.maximum(np.maximum(y0 - xy[:, 1], xy[:, 1] - y1), 0)
        assert (np.hypot(dx, dy) >= margin).all()
    assert free_space(room, config.clearance).sum() >= 400  # at least 1 m^2 to walk in
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    assert steps.max() < 4 * np.median(steps)  # constant speed, no jumps


def test_same_seed_same_files(tmp_path):
    settings = ScanSettings(2, 16, 12, 2)
    a = write_scan(tmp_path / "a" / "synth0005_00", 11, 5, settings)
    b = write_scan(tmp_path / "b" / "synth0005_00", 11, 5, settings)
    np.testing.assert_array_equal(a, b)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for name in _files(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = write_scan(tmp_path / "c" / "synth0005_00", 12, 5, settings)
    assert not np.array_equal(a, c)


def test_pose_rounding_is_what_the_file_holds():
    pose = np.eye(4)
    pose[:3, 3] = [1.23456789, -0.0000004, 2.0]
    back = as_written(pose)
    assert back[0, 3] == 1.234568 and back[1, 3] == 0.0
    assert layout.format_matrix(pose).splitlines()[0] == "1.000000 0.000000 0.000000 1.234568"


def test_bad_options_exit_with_one_line(tmp_path, capsys):
    from stages.cli import run

    with pytest.raises(SystemExit) as exit_:
        run(main, ["--out", str(tmp_path), "--frames", "0"], prog="synthesize_rooms")
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == "synthesize_rooms: --frames must be at least 1, got 0"
