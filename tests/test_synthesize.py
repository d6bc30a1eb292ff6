"""Tests for the `synthesize` stage and the procedural ShapeNet-like generators behind it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st

from stages import synthesize as stage
from stages.synthetic import GENERATORS, generate_mesh
from stages.synthetic import parts as P
from stages.taxonomy import SYNSETS

ALL = list(SYNSETS)
DRAWS = 8


def _draws(synset: str, n: int = DRAWS, seed: int = 7):
    return [generate_mesh(synset, stage.mesh_rng(seed, synset, i)) for i in range(n)]


def _areas(v, f):
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)


def _surface_samples(v, f, n: int = 6000, seed: int = 0) -> np.ndarray:
    """Area-weighted points on the surface: long faces count along their whole length, which
    vertices alone would miss."""
    rng = np.random.default_rng(seed)
    a = _areas(v, f)
    idx = rng.choice(len(f), size=n, p=a / a.sum())
    r1, r2 = rng.random(n), rng.random(n)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    t = v[f[idx]]
    return t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])


def _band(pts, axis: int, lo: float, hi: float) -> np.ndarray:
    """Points whose coordinate along ``axis`` lies in the fraction [lo, hi] of its range."""
    c = pts[:, axis]
    a, b = c.min(), c.max()
    return pts[(c >= a + lo * (b - a)) & (c <= a + hi * (b - a))]


def _span(pts, axis: int) -> float:
    return float(np.ptp(pts[:, axis])) if len(pts) else 0.0


# ----------------------------------------------------------------- what makes each class itself

def _airplane(v, f, s, ext):
    assert ext[0] >= 0.45 * ext[2], "wingspan comparable to length"
    assert ext[1] <= 0.45 * ext[2], "flat: much lower than long"
    assert _band(s, 1, 0.9, 1.0)[:, 2].mean() > 0.15 * ext[2], "the tail fin is the top, at the rear (+z)"


def _bench(v, f, s, ext):
    assert ext[0] >= 1.4 * ext[2], "long seat"
    assert ext[0] > ext[1]


def _cabinet(v, f, s, ext):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    a = np.linalg.norm(n, axis=1)
    aligned = np.abs(n / np.maximum(a, 1e-30)[:, None]).max(axis=1) > 0.999
    assert a[aligned].sum() >= 0.85 * a.sum(), "boxy: mostly axis-aligned faces"
    for lo in (0.5, 0.8):
        band = _band(s, 1, lo, lo + 0.1)
        assert _span(band, 0) >= 0.8 * ext[0] and _span(band, 2) >= 0.8 * ext[2], "a full-size carcass"


def _car(v, f, s, ext):
    assert ext[2] > 1.6 * ext[1] and ext[2] > 1.5 * ext[0], "longer than tall and than wide"
    low = _band(s, 1, 0.0, 0.1)
    for sx in (-1, 1):
        for sz in (-1, 1):
            hit = (np.sign(low[:, 0]) == sx) & (low[:, 2] * sz > 0.2 * ext[2])
            assert hit.any(), "a wheel touches the ground at each corner"


def _chair(v, f, s, ext):
    top = _band(s, 1, 0.8, 1.0)
    assert _span(top, 2) < 0.6 * ext[2], "the top is a thin back, not the deep seat"
    assert top[:, 2].mean() > s[:, 2].mean(), "the back is behind the seat (front faces -z)"


def _display(v, f, s, ext):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    a = np.linalg.norm(n, axis=1)
    front = (n[:, 2] < -0.95 * a) & (v[f].mean(axis=1)[:, 1] > 0.0)
    assert a[front].sum() / 2 >= 0.2 * ext[0] * ext[1], "a large screen facing -z in the upper half"
    assert ext[2] < ext[0] and ext[2] < ext[1], "thin compared to the screen"


def _lamp(v, f, s, ext):
    mid = _band(s, 1, 0.35, 0.45)
    width = max(ext[0], ext[2])
    assert max(_span(mid, 0), _span(mid, 2)) < 0.35 * width, "a thin pole between base and shade"
    assert _span(_band(s, 1, 0.0, 0.05), 0) > 2 * _span(mid, 0), "a base wider than the pole"


def _speaker(v, f, s, ext):
    z = v[:, 2]
    front = (z < z.min() + 0.15 * ext[2]).sum()
    back = (z > z.max() - 0.15 * ext[2]).sum()
    assert front >= 3 * back, "round drivers on the front (-z), a plain back"


def _rifle(v, f, s, ext):
    assert ext[2] > 2.5 * ext[1] and ext[2] > 6 * ext[0], "long and slender along z"
    assert _span(_band(s, 2, 0.0, 0.1), 1) < 0.5 * ext[1], "a bare barrel at the muzzle end (-z)"


def _sofa(v, f, s, ext):
    assert ext[0] > ext[1] and ext[0] > ext[2], "wider than tall and deep"
    assert _band(s, 1, 0.9, 1.0)[:, 2].mean() > 0.0, "the back is the top, at the rear"


def _table(v, f, s, ext):
    a = _areas(v, f)
    y = v[f].mean(axis=1)[:, 1]
    edges = np.linspace(y.min(), y.max() + 1e-9, 6)
    per_band = np.array([a[(y >= lo) & (y < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    assert per_band.argmax() == 4 and per_band[4] >= 0.3 * a.sum(), "most of the area in the top"


def _telephone(v, f, s, ext):
    assert ext[2] < 0.35 * ext[1] and ext[0] < ext[1], "an upright slab or handset, thin in z"


def _watercraft(v, f, s, ext):
    assert ext[2] > 2 * ext[0], "a long, narrow hull"
    assert _span(_band(s, 2, 0.0, 0.04), 0) < 0.6 * ext[0], "a pointed bow at -z"


CHECKS = {
    "02691156": _airplane, "02828884": _bench, "02933112": _cabinet, "02958343": _car,
    "03001627": _chair, "03211117": _display, "03636649": _lamp, "03691459": _speaker,
    "04090263": _rifle, "04256520": _sofa, "04379243": _table, "04401088": _telephone,
    "04530566": _watercraft,
}


def check_recognisable(synset: str, mesh) -> None:
    v, f = mesh
    CHECKS[synset](v, f, _surface_samples(v, f), np.ptp(v, axis=0))


# ----------------------------------------------------------------- parts

@pytest.mark.parametrize("mesh", [
    P.box((1, 2, 3)), P.box((1, 1, 1), (1, 2, 3), P.rotation("z", 0.4)), P.beam((0, 0, 0), (1, 2, 0.5), 0.1),
    P.cylinder(0.5, 2.0, 12, axis="x"), P.frustum(1.0, 0.3, 1.0, 10, axis=(1, 1, 0)), P.cone(1, 2, 9, axis="-z"),
    P.ellipsoid((1, 2, 3)), P.torus(2, 0.4), P.hollow_frustum(1, 0.5, 1, 0.05),
    P.rounded_slab(1, 2, 0.1, 0.3, axis="z"), P.wing(1.0, 0.4, 3.0, 0.5, 0.1, 0.1),
    P.mirror(P.wing(1.0, 0.4, 3.0, 0.5, 0.1, 0.1)), P.apply_matrix(P.box((1, 1, 1)), np.diag([-1.0, 1, 1, 1])),
], ids=lambda m: f"{len(m[1])}faces")
def test_parts_are_closed_and_outward(mesh):
    tm = trimesh.Trimesh(*mesh, process=True)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.volume > 0 and P.signed_volume(mesh) > 0


def test_part_geometry_is_exact():
    assert P.signed_volume(P.box((1, 2, 3))) == pytest.approx(6.0)
    v, _ = P.cylinder(0.5, 2.0, 16, base=(1, 0, 0), axis="x")
    np.testing.assert_allclose(v.min(axis=0), [1, -0.5, -0.5], atol=1e-12)
    np.testing.assert_allclose(v.max(axis=0), [3, 0.5, 0.5], atol=1e-12)
    both = P.concatenate([P.box((1, 1, 1)), P.box((1, 1, 1), (5, 0, 0))])
    assert both[1].max() == 15 and len(both[1]) == 24
    m = np.eye(4)
    m[:3, :3] = P.rotation("z", np.pi / 2)
    m[:3, 3] = (10, 0, 0)
    v, _ = P.apply_matrix(P.box((2, 1, 1)), m)  # the 2-long x edge turns onto y, then shifts
    np.testing.assert_allclose(v.min(axis=0), [9.5, -1, -0.5], atol=1e-12)
    np.testing.assert_allclose(v.max(axis=0), [10.5, 1, 0.5], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(r0=st.one_of(st.just(0.0), st.floats(0.01, 2.0)), r1=st.floats(0.05, 2.0), h=st.floats(0.05, 3.0), n=st.integers(3, 24),
       axis=st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)).filter(lambda a: np.linalg.norm(a) > 0.1),
       flip_=st.booleans())
def test_revolved_parts_are_closed_and_outward(r0, r1, h, n, axis, flip_):
    lo, hi = (r1, r0) if flip_ else (r0, r1)
    mesh = P.frustum(lo, hi, h, n, base=(1, 2, 3), axis=axis)
    tm = trimesh.Trimesh(*mesh, process=True)
    assert tm.is_watertight and tm.is_winding_consistent and P.signed_volume(mesh) > 0
    assert np.linalg.norm(mesh[0] - (1, 2, 3), axis=1).max() <= np.hypot(max(r0, r1), h) + 1e-9


# ----------------------------------------------------------------- generators

@pytest.mark.parametrize("synset", ALL, ids=[SYNSETS[s] for s in ALL])
def test_meshes_are_normalised_and_sound(synset):
    for v, f in _draws(synset):
        assert v.dtype == np.float64 and f.dtype == np.int64
        assert np.isfinite(v).all()
        assert f.min() >= 0 and f.max() < len(v)
        lo, hi = v.min(axis=0), v.max(axis=0)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-6)
        assert (_areas(v, f) < 1e-12).mean() < 0.001
        assert 50 <= len(f) <= 3000
        # Parts are closed and outward, so the whole soup encloses positive volume.
        assert P.signed_volume((v, f)) > 0


@pytest.mark.parametrize("synset", ALL, ids=[SYNSETS[s] for s in ALL])
def test_meshes_vary_between_draws(synset):
    extents = np.array([np.ptp(v, axis=0) for v, _ in _draws(synset)])
    # Normalisation fixes the diagonal, so compare shapes by their aspect ratios: some ratio must
    # spread by more than 8% of its mean (cars, the most uniform class, reach about 12%).
    ratios = extents / extents.max(axis=1, keepdims=True)
    spread = ratios.std(axis=0) / ratios.mean(axis=0)
    assert spread.max() > 0.08, f"proportions barely change: {spread}"
    assert len({tuple(np.round(e, 6)) for e in extents}) == DRAWS


@pytest.mark.parametrize("synset", ALL, ids=[SYNSETS[s] for s in ALL])
def test_meshes_are_recognisable(synset):
    for mesh in _draws(synset, seed=11):
        check_recognisable(synset, mesh)


def test_generate_mesh_rejects_unknown_synset():
    with pytest.raises(ValueError):
        generate_mesh("12345678", np.random.default_rng(0))


def test_every_class_has_a_generator():
    assert set(GENERATORS) == set(SYNSETS)


# ----------------------------------------------------------------- the stage

def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    a = stage.synthesize(tmp_path / "a", 2, seed=5, classes=["chair", "04379243"], progress=False)
    stage.synthesize(tmp_path / "b", 2, seed=5, classes=["chair", "04379243"], progress=False)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    stage.synthesize(tmp_path / "c", 2, seed=6, classes=["chair", "04379243"], progress=False)
    assert set(_tree(tmp_path / "a")) != set(_tree(tmp_path / "c"))
    assert len(a) == 4


def test_mesh_depends_only_on_seed_synset_index(tmp_path):
    small = stage.synthesize(tmp_path / "s", 2, seed=1, classes=["lamp"], progress=False)
    big = stage.synthesize(tmp_path / "b", 5, seed=1, classes=["chair", "lamp", "car"], progress=False)
    big_by_rel = {str(p.relative_to(tmp_path / "b")): p for p in big}
    for p in small:
        rel = str(p.relative_to(tmp_path / "s"))
        assert big_by_rel[rel].read_bytes() == p.read_bytes()


def test_layout_taxonomy_and_json(tmp_path):
    out = tmp_path / "shapenet"
    paths = stage.synthesize(out, 3, seed=0, classes=["telephone", "airplane", "02691156"], progress=False)
    synsets = ["02691156", "04401088"]
    taxonomy = json.loads((out / "taxonomy.json").read_text())
    assert taxonomy == [{"synsetId": s, "name": SYNSETS[s], "children": [], "numInstances": 3} for s in synsets]
    assert sorted(p.name for p in out.iterdir()) == synsets + ["taxonomy.json"]
    assert not list(out.rglob("*.tmp"))
    assert len(paths) == 6
    for synset in synsets:
        ids = sorted(p.name for p in (out / synset).iterdir())
        assert ids == sorted(stage.model_id(0, synset, i) for i in range(3))
        for mid in ids:
            assert re.fullmatch(r"[0-9a-f]{32}", mid)
            models = out / synset / mid / "models"
            assert sorted(p.name for p in models.iterdir()) == ["model_normalized.json", "model_normalized.obj"]
            meta = json.loads((models / "model_normalized.json").read_text())
            assert meta["id"] == mid
            v = np.loadtxt([ln[2:] for ln in (models / "model_normalized.obj").read_text().splitlines()
                            if ln.startswith("v ")])
            assert meta["numVertices"] == len(v)
            np.testing.assert_allclose(meta["min"], v.min(axis=0), atol=2e-6)
            np.testing.assert_allclose(meta["max"], v.max(axis=0), atol=2e-6)
            np.testing.assert_allclose(meta["centroid"], v.mean(axis=0), atol=2e-6)


def test_written_objs_load_with_trimesh(tmp_path):
    paths = stage.synthesize(tmp_path, 1, seed=3, progress=False)
    assert len(paths) == len(ALL)
    for path in paths:
        synset = path.parts[-4]
        v, f = generate_mesh(synset, stage.mesh_rng(3, synset, 0))
        text = path.read_text()
        assert text.startswith(f"# synthetic {SYNSETS[synset]} ({synset}) from stages.synthetic.")
        tm = trimesh.load(path, force="mesh", process=False)
        assert len(tm.faces) == len(f) and len(tm.vertices) == len(v)
        np.testing.assert_allclose(tm.vertices, v, atol=1e-6)


def test_model_ids_are_distinct_and_stable():
    ids = {stage.model_id(0, s, i) for s in ALL for i in range(50)}
    assert len(ids) == 50 * len(ALL)
    assert stage.model_id(0, "03001627", 0) == stage.model_id(0, "03001627", 0)
    assert stage.model_id(0, "03001627", 0) != stage.model_id(1, "03001627", 0)


def test_synthesize_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        stage.synthesize(tmp_path, 0, seed=0)
    with pytest.raises(ValueError):
        stage.synthesize(tmp_path, 1, seed=0, classes=["spaceship"])
    assert not (tmp_path / "taxonomy.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["--per-class", "0"], "--per-class must be at least 1"),
    (["--classes", "chair", "spaceship"], "unknown class 'spaceship'"),
])
def test_cli_bad_arguments_exit_with_one_line(tmp_path, argv, message):
    with pytest.raises(SystemExit) as exc:
        stage.main(["--out", str(tmp_path / "o"), *argv])
    assert message in str(exc.value.code) and "\n" not in str(exc.value.code)
    assert not (tmp_path / "o" / "taxonomy.json").exists()


def test_cli_end_to_end(tmp_path):
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "stages.synthesize", "--out", str(tmp_path), "--per-class", "1",
                          "--seed", "2", "--classes", "car", "sofa"], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "synthesize" in run.stderr  # the progress bar and summary go to stderr
    assert run.stdout == ""
    assert [t["name"] for t in json.loads((tmp_path / "taxonomy.json").read_text())] == ["car", "sofa"]
    helped = subprocess.run([sys.executable, "-m", "stages.synthesize", "--help"], cwd=root,
                            capture_output=True, text=True)
    assert helped.returncode == 0
    for option in ("--out", "--per-class", "--seed", "--classes", "--no-progress"):
        assert option in helped.stdout
