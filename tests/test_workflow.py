"""The Snakemake workflow itself: lint, format, config validation, and an end-to-end run."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from snakemake_runs import REPO, job_counts, scratch_workdir, snakemake
from stages.tables import MESHES, QUARANTINE, RENDERS, SCENES, VOXELS, read_table, unpack_array
from stages.voxel_codec import decode_planes


def test_lint_is_clean():
    result = snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run(["snakefmt", "--check", "workflow"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_is_validated(tmp_path):
    bad = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    bad["scenes"]["shard_size"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--configfile", str(path), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "shard_size" in output and "minimum of 1" in output


def _run(work: Path, *extra: str) -> subprocess.CompletedProcess:
    return snakemake("--cores", "2", "--configfile", "config/tiny.yaml", *extra, cwd=work)


@pytest.mark.e2e
def test_tiny_workflow_end_to_end(tmp_path):
    work = scratch_workdir(tmp_path)
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    _run(work)
    results = work / "results"

    meshes = read_table(results / "meshes", MESHES)
    quarantine = read_table(results / "quarantine", QUARANTINE)
    per_class = config["synthetic"]["per_class"]
    assert len(meshes) + len(quarantine) == per_class * len(config["synthetic"]["classes"])
    assert len(quarantine) == 0, quarantine.reason.tolist()

    for dataset, spec in config["scenes"]["datasets"].items():
        scenes = read_table(results / "scenes" / dataset, SCENES)
        assert scenes.groupby("split").size().to_dict() == spec["count"]
        assert set(scenes.num_objects) == {spec["objects"]}
        for realism in config["render"]["levels"][dataset]:
            renders = read_table(results / "renders" / realism / dataset, RENDERS)
            assert sorted(renders.scene_id) == sorted(scenes.scene_id)
            image = np.array(Image.open(io.BytesIO(renders.image.iloc[0])))
            assert image.shape == (config["render"]["size"],) * 2 + (3,)
            assert image.std() > 0, "a blank image"
        for resolution in config["voxelize"]["resolutions"][dataset]:
            voxels = read_table(results / "voxels" / str(resolution) / dataset, VOXELS)
            assert sorted(voxels.scene_id) == sorted(scenes.scene_id)
            for row in voxels.itertuples():
                planes = decode_planes(row.grid, row.num_objects, resolution)
                counts = unpack_array(row.object_voxels, "<i8", (-1,))
                assert np.array_equal(planes.reshape(len(planes), -1).sum(1), counts)
                assert np.all(counts > 0), f"{row.scene_id}: an object left no voxel"

    # The model chain: h5 trained for a few steps, evaluated, and the report built on it.
    for model in config["models"]["run"]:
        summary = json.loads((results / "eval" / model / "summary.json").read_text())
        if summary["family"] == "corenet":
            assert summary["test_scenes"] == config["scenes"]["datasets"]["single"]["count"]["test"]
        else:  # 3D-R2N2: the last 20% of each class's sorted models
            views = pd.read_csv(results / "eval" / model / "iou_by_views.csv")
            assert sorted(set(views["views"])) == [1, 2, 3, 4, 5]
            assert sorted(set(views["threshold"])) == [0.2, 0.3, 0.4, 0.5]
        assert summary["checkpoint_step"] == config["models"]["steps"]
        assert len(list((results / "eval" / model / "qualitative").glob("*.png"))) == config["models"]["qualitative"]
    page = (results / "report" / "index.html").read_text()
    assert all(f'id="model-{model}"' in page for model in config["models"]["run"])

    # A second run has nothing to do.
    again = _run(work, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    # Deleting one shard reruns that shard's job alone; every other file stays untouched.
    # (the 16^3 grids feed no model of tiny.yaml; deleting a 32^3 training shard would also,
    # rightly, retrain h5)
    victim = results / "voxels" / "16" / "single" / "train" / "shard-00001.parquet"
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*.parquet") if p != victim}
    victim.unlink()
    rerun = _run(work)
    log = rerun.stdout + rerun.stderr
    assert "voxelize" in log and victim.exists()
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before
    assert job_counts(log) == {"voxelize": 1, "all": 1}, log
