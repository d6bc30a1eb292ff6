"""Same seed, same machine -> same weights: every registered family trains twice, in process, on
a tiny data set of its own, and both runs end bit-identical (weights and logged statistics), while
another seed gives other weights. Adding a family means adding its builder to TINY_RUNS."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mesh_fixtures import write_mesh_table
from model_fixtures import write_box_scenes, write_tiny_model
from stages import r2n2_views, render_views
from stages.families import families, family_named
from stages.model_config import load_model_spec
from stages.training.checkpoints import load
from stages.training.loop import RunOptions, train

REPO = Path(__file__).resolve().parents[1]


def tiny_corenet(root: Path):
    scenes, renders, voxels = write_box_scenes(root, "train", 8, resolution=16, seed=0)
    spec = load_model_spec(write_tiny_model(root / "tiny.yaml", steps=3, every=3), "small")
    return spec, {"scenes": [scenes], "renders": [renders], "voxels": [voxels]}


def tiny_r2n2(root: Path):
    shards = write_mesh_table(root / "meshes", per_class=3)
    rendering, voxels = root / "ShapeNetRendering", root / "ShapeNetVox32"
    for shard in shards:
        render_views.main(["--meshes", str(shard), "--rendering-out", str(rendering), "--voxels-out", str(voxels)])
    table = root / "views.parquet"
    r2n2_views.main(["--rendering", str(rendering), "--voxels", str(voxels), "--out", str(table),
                     "--quarantine", str(root / "quarantine.parquet")])
    spec = load_model_spec(REPO / "config" / "models" / "r2n2.yaml", "small")
    spec = replace(spec, train=replace(spec.train, steps=3, batch_size=2, checkpoint_every=3, log_every=1))
    return spec, {"views": [str(table)]}


def tiny_umr(root: Path):
    from stages import import_cub, synthesize_birds

    synthesize_birds.main(["--out", str(root / "birds"), "--train", "4", "--val", "0", "--test", "0",
                           "--size", "64", "--seed", "0", "--no-progress"])
    import_cub.main(["--cub-root", str(root / "birds/CUB_200_2011"), "--annotations", str(root / "birds/cachedir"),
                     "--parts", str(root / "birds/scops"), "--out", str(root / "tables"), "--splits", "train",
                     "--no-progress"])
    spec = load_model_spec(REPO / "config" / "models" / "umr.yaml", "small")
    net = replace(spec.network, conv_channels=16, feature=16, latent=8, uv_channels=8, hypotheses=2)
    net = replace(net, resnet=replace(net.resnet, widths=(4, 8, 8, 8), stem_width=4))
    opts = replace(spec.train_options, stage1_steps=2, render_size=16, part_points=4)  # both stages
    spec = replace(spec, network=net, train_options=opts,
                   train=replace(spec.train, steps=3, batch_size=2, checkpoint_every=3, log_every=1))
    return spec, {"train": [str(root / "tables" / "train.parquet")]}


def tiny_ioar(root: Path):
    from test_ioar_family import tiny_ioar_spec, write_tiny_scannet

    data = write_tiny_scannet(root)
    return tiny_ioar_spec(steps=3), data["train"]


TINY_RUNS = {"corenet": tiny_corenet, "r2n2": tiny_r2n2, "umr": tiny_umr, "ioar": tiny_ioar}


def test_every_family_has_a_tiny_run():
    assert set(TINY_RUNS) == {f.name for f in families()}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_training_twice_gives_identical_weights(name, tmp_path):
    spec, inputs = TINY_RUNS[name](tmp_path / "data")
    family = family_named(name)

    def run(out: str, seed: int):
        options = RunOptions(out_dir=tmp_path / out, seed=seed, device="cpu", threads=1)
        assert train(spec, family, inputs, options) == 0
        payload = load(tmp_path / out / "model.pt", ("recon3d-model",))
        return payload["model"], (tmp_path / out / "metrics.csv").read_text()

    first, first_log = run("a", 0)
    second, second_log = run("b", 0)
    other, _ = run("c", 1)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first), "same seed, different weights"
    # the logs differ only in timing columns: compare the loss and statistics columns
    def stats(log):
        rows = [line.split(",") for line in log.strip().splitlines()]
        keep = [i for i, c in enumerate(rows[0]) if c not in ("examples_per_s", "elapsed_s")]
        return [[row[i] for i in keep] for row in rows]

    assert stats(first_log) == stats(second_log)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())
