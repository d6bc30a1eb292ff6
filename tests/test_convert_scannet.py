"""convert_scannet: keyframe rule, colour warp, skipped frames, quarantine, tables, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from stages.cli import run
from stages.convert_scannet import convert, keyframe_flags, main, warp_color_to_depth
from stages.formats import scannet as layout
from stages.scannet_tables import (
    FRAMES,
    SCANNET_QUARANTINE,
    SCANS,
    decode_depth,
    decode_frame,
    encode_depth_mm,
    frames_shard,
    quarantine_path,
    scans_path,
)
from stages.synthetic.rooms import look_rotation
from stages.synthesize_rooms import main as synthesize_main
from stages.tables import read_table

DW, DH = 16, 12  # depth image of the hand-made scans
K_DEPTH = np.array([[20.0, 0.0, 7.5], [0.0, 20.0, 5.5], [0.0, 0.0, 1.0]])
K_COLOR = np.array([[41.0, 0.0, 16.2], [0.0, 41.0, 11.7], [0.0, 0.0, 1.0]])


def _pose(position=(0.0, 0.0, 1.5), yaw_deg=0.0):
    pose = np.eye(4)
    pose[:3, :3] = look_rotation(np.radians(yaw_deg), np.radians(20.0))
    pose[:3, 3] = position
    return pose


# Keyframes ----------------------------------------------------------------------------------


def test_keyframe_rule_on_a_hand_made_trajectory():
    poses = np.stack([
        _pose((0.0, 0.0, 1.5)),  # first frame: always a keyframe
        _pose((0.05, 0.0, 1.5)),  # moved 0.05 m: no
        _pose((0.11, 0.0, 1.5)),  # 0.11 m from the last keyframe: yes
        _pose((0.11, 0.0, 1.5), yaw_deg=10.0),  # turned 10 degrees: no
        _pose((0.11, 0.0, 1.5), yaw_deg=16.0),  # turned 16 degrees: yes
        _pose((0.11, 0.08, 1.5), yaw_deg=16.0),  # 0.08 m: no
        _pose((0.11, 0.16, 1.5), yaw_deg=16.0),  # 0.16 m from the keyframe at 0.0 (not 0.08): yes
        _pose((0.11, 0.16, 1.5), yaw_deg=6.0),  # -10 degrees: no
        _pose((0.11, 0.16, 1.5), yaw_deg=0.0),  # -16 degrees: yes
    ])
    expected = [True, False, True, False, True, False, True, False, True]
    assert keyframe_flags(poses).tolist() == expected


def test_keyframe_turn_is_the_optical_axis_angle():
    # A roll about the optical axis moves no axis: never a keyframe, however large.
    a = np.eye(4)
    b = np.eye(4)
    b[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    assert keyframe_flags(np.stack([a, b])).tolist() == [True, False]


# Colour warp --------------------------------------------------------------------------------


def _coordinate_image(width, height):
    """uint8 RGB image whose pixel (r, c) holds (c % 256, r % 256, 255)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols % 256, rows % 256, np.full_like(rows, 255)], axis=-1).astype(np.uint8)


def test_warp_reads_the_colour_pixel_under_each_depth_pixel():
    color = _coordinate_image(32, 24)
    warped = warp_color_to_depth(color, K_COLOR, K_DEPTH, DW, DH)
    assert warped.shape == (DH, DW, 3) and warped.dtype == np.uint8
    # Hand computed: depth column u maps to colour column 41/20 (u - 7.5) + 16.2.
    for u, v in [(0, 0), (7, 5), (15, 11), (3, 9)]:
        x = 41.0 / 20.0 * (u - 7.5) + 16.2
        y = 41.0 / 20.0 * (v - 5.5) + 11.7
        col, row = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        if 0 <= col < 32 and 0 <= row < 24:
            assert warped[v, u].tolist() == [col, row, 255]
        else:
            assert warped[v, u].tolist() == [0, 0, 0]
    assert (warped[:, :, 2] == 0).any()  # the colour camera is narrower here: a black margin


def test_warp_matches_grid_sample_with_exact_normalisation():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (97, 130, 3), dtype=np.uint8)
    K_c = np.array([[118.3, 0.0, 63.7], [0.0, 117.9, 49.1], [0.0, 0.0, 1.0]])
    K_d = np.array([[57.1, 0.0, 31.2], [0.0, 57.4, 23.8], [0.0, 0.0, 1.0]])
    ours = warp_color_to_depth(color, K_c, K_d, 64, 48)
    # The original's grid_sample, normalised by (W-1)/2 as align_corners=True expects.
    u, v = np.meshgrid(np.arange(64.0), np.arange(48.0))
    p = (K_c @ np.linalg.inv(K_d) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])).T
    x, y = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    grid = np.stack([x / ((130 - 1) / 2) - 1, y / ((97 - 1) / 2) - 1], axis=-1).reshape(1, 48, 64, 2)
    image = torch.from_numpy(color.transpose(2, 0, 1)[None].astype(np.float64))
    reference = torch.nn.functional.grid_sample(image, torch.from_numpy(grid), mode="nearest",
                                                padding_mode="zeros", align_corners=True)
    reference = reference[0].numpy().transpose(1, 2, 0).astype(np.uint8)
    np.testing.assert_array_equal(ours, reference)


# Hand-made releases -----------------------------------------------------------------------


def _write_scan(root, split, scene, frames, *, nonfinite=(), empty=(), mesh=True, skip_folder=None,
                depth_m=2.0):
    scan = layout.scan_dir(root, split, scene)
    for kind in ("color", "depth", "pose"):
        (scan / kind).mkdir(parents=True, exist_ok=True)
    layout.write_intrinsics(scan, K_COLOR, K_DEPTH)
    color = _coordinate_image(32, 24)
    poses = {}
    for i in range(frames):
        pose = _pose((0.3 * i, 0.0, 1.5))
        if i in nonfinite:
            pose = np.full((4, 4), -np.inf)
        depth = np.zeros((DH, DW), np.uint16) if i in empty else np.full((DH, DW), int(depth_m * 1000), np.uint16)
        depth[0, 0] = 0
        (scan / "depth" / f"{i}.png").write_bytes(encode_depth_mm(depth))
        Image.fromarray(color).save(scan / "color" / f"{i}.jpg", quality=95)
        layout.write_matrix(scan / "pose" / f"{i}.txt", pose)
        poses[i] = layout.read_matrix(scan / "pose" / f"{i}.txt")
    if mesh:
        layout.mesh_file(scan).write_bytes(b"ply\n")
    if skip_folder:
        for p in (scan / skip_folder).iterdir():
            p.unlink()
        (scan / skip_folder).rmdir()
    return poses


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "release"
    good = _write_scan(root, "train", "scene0000_00", 6, nonfinite=(2,), empty=(3,))
    _write_scan(root, "train", "scene0001_00", 2, skip_folder="pose")
    _write_scan(root, "val", "scene0002_00", 2, mesh=False)
    _write_scan(root, "test", "scene0707_00", 3)
    _write_scan(root, "train", "scene0003_00", 2, nonfinite=(0, 1))
    _write_scan(root, "train", "scene0099_00", 1)  # in no split file
    layout.write_split_file(root, "train", ["scene0000_00", "scene0001_00", "scene0003_00", "scene0004_00"])
    layout.write_split_file(root, "val", ["scene0002_00", "scene0000_00"])
    layout.write_split_file(root, "test", ["scene0707_00"])
    return root, good


def test_counts_skips_and_quarantine(release, tmp_path):
    root, poses = release
    out = tmp_path / "out"
    summary = convert(root, out, shard_size=2, progress=False)
    scans = read_table(scans_path(out), SCANS).set_index("scene")
    assert sorted(scans.index) == ["scene0000_00", "scene0707_00"]
    row = scans.loc["scene0000_00"]
    assert (row.split, row.frames, row.skipped_nonfinite_pose, row.skipped_empty_depth, row.skipped_unreadable) == (
        "train", 4, 1, 1, 0)
    assert row.keyframes == 4  # 0.3 m apart, except frame 4 is 0.6 m from frame 1: all keyframes
    assert row.mesh_path == str((root / "scans" / "scene0000_00" / "scene0000_00_vh_clean_2.ply").resolve())
    assert scans.loc["scene0707_00"].split == "test"

    quarantine = read_table(quarantine_path(out), SCANNET_QUARANTINE).set_index("scene")
    reasons = quarantine["reason"].to_dict()
    assert reasons["scene0001_00"].startswith("pose/ folder missing in ")
    assert reasons["scene0002_00"].startswith("mesh missing: ") and reasons["scene0002_00"].endswith(
        "scene0002_00_vh_clean_2.ply")
    assert reasons["scene0003_00"].startswith("no usable frame in ") and reasons["scene0003_00"].endswith(
        "(2 nonfinite pose)")
    assert reasons["scene0004_00"].startswith("scan folder missing: ")
    assert quarantine.loc["scene0000_00"].split == "val" and "also listed in scannetv2_train.txt" in reasons["scene0000_00"]
    assert summary["unlisted"] == ["scene0099_00"]
    assert summary["frames"] == 7 and summary["skipped_nonfinite_pose"] == 1

    # Shards: train holds scene0000_00, scene0001_00 | scene0003_00, scene0004_00 (the second empty).
    frames = read_table(frames_shard(out, "train", 0), FRAMES)
    assert frames["frame"].tolist() == [0, 1, 4, 5] and set(frames["scene"]) == {"scene0000_00"}
    assert len(read_table(frames_shard(out, "train", 1), FRAMES)) == 0
    assert len(read_table(frames_shard(out, "test", 0), FRAMES)) == 3
    assert not frames_shard(out, "val", 0).parent.joinpath("shard-00001.parquet").exists()

    for _, r in frames.iterrows():
        frame = decode_frame(r)
        np.testing.assert_array_equal(frame.cam_to_world, poses[frame.frame])
        np.testing.assert_allclose(frame.K, K_DEPTH)
        assert frame.depth.shape == (DH, DW) and frame.depth[0, 0] == 0 and frame.depth[5, 5] == np.float32(2.0)
        assert frame.color.shape == (DH, DW, 3)
        # The JPEG holds the warped coordinate image: blue 255 inside the colour view, 0 outside.
        expected = warp_color_to_depth(_coordinate_image(32, 24), K_COLOR, K_DEPTH, DW, DH)
        assert np.abs(frame.color.astype(int) - expected.astype(int)).mean() < 8


def test_bounds_are_quantiles_of_the_observed_points(release, tmp_path):
    root, _ = release
    out = tmp_path / "out"
    convert(root, out, progress=False)
    row = read_table(scans_path(out), SCANS).set_index("scene").loc["scene0707_00"]
    # Every valid pixel lies on the plane 2 m along the optical axis of a camera pitched down 20
    # degrees at height 1.5 m looking along +x: points at z = 1.5 - 2 sin(20) + (v - 5.5)/20 * 2 cos(20) ...
    pitch = np.radians(20.0)
    rows, cols = np.nonzero(np.ones((DH, DW)))
    keep = ~((rows == 0) & (cols == 0))
    y_cam = (rows[keep] - 5.5) / 20.0 * 2.0
    z = 1.5 - 2.0 * np.sin(pitch) - y_cam * np.cos(pitch)
    assert row.min_z == pytest.approx(np.quantile(z, 0.005), abs=1e-5)
    assert row.max_z == pytest.approx(np.quantile(z, 0.995), abs=1e-5)
    x_cam = (cols[keep] - 7.5) / 20.0 * 2.0
    assert row.min_y == pytest.approx(np.quantile(-x_cam, 0.005), abs=1e-5)


def test_unreadable_frame_files_are_counted(release, tmp_path):
    root, _ = release
    scan = layout.scan_dir(root, "train", "scene0000_00")
    (scan / "pose" / "5.txt").write_text("1 2 3\n")
    (scan / "color" / "4.jpg").write_bytes(b"not a jpeg")
    (scan / "depth" / "0.png").unlink()
    (scan / "pose" / "3.txt").write_text("0 0 0 0\n" * 4)  # finite, but not a rigid transform
    out = tmp_path / "out"
    convert(root, out, progress=False)
    row = read_table(scans_path(out), SCANS).set_index("scene").loc["scene0000_00"]
    assert (row.frames, row.skipped_unreadable) == (1, 4)


def test_no_split_file_is_one_line_and_exit_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(main, ["--root", str(tmp_path), "--out", str(tmp_path / "out")], prog="convert_scannet")
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"convert_scannet: {tmp_path}: no split file")


def test_synthetic_rooms_convert_end_to_end(tmp_path, capsys):
    root, out = tmp_path / "rooms", tmp_path / "out"
    assert synthesize_main(["--out", str(root), "--scenes-train", "1", "--scenes-test", "1", "--frames", "3",
                            "--width", "24", "--height", "18", "--no-progress"]) == 0
    assert main(["--root", str(root), "--out", str(out), "--no-progress"]) == 0
    assert "2 scans (train 1, val 0, test 1), 0 quarantined, 6 frames" in capsys.readouterr().err
    frames = read_table(frames_shard(out, "test", 0), FRAMES)
    scan = root / "scans_test" / "synth0001_00"
    for _, r in frames.iterrows():
        frame = decode_frame(r)
        i = frame.frame
        np.testing.assert_array_equal(frame.cam_to_world, layout.read_matrix(scan / "pose" / f"{i}.txt"))
        np.testing.assert_array_equal(frame.depth, decode_depth((scan / "depth" / f"{i}.png").read_bytes()))
        assert frame.color.shape == (18, 24, 3) and frame.color.mean() > 20
    scans = pd.read_parquet(scans_path(out))
    assert (scans["frames"] == 3).all()
    assert (scans["min_z"] > -0.01).all() and (scans["max_z"] < 2.9).all()
