"""UMR prediction's output files: `<stem>.obj` with its own `<stem>.mtl` and `<stem>.png`, or one
`<stem>.glb`, each written atomically, so that two predictions into one folder keep their own
textures (a tiny randomly initialised model, saved as a model.pt)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from stages.families import family_named
from stages.model_config import load_model_spec
from stages.training import checkpoints

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """model.pt of an untrained small UMR network with narrow layers (random weights, seed 0)."""
    spec = load_model_spec(REPO / "config" / "models" / "umr.yaml", "small")
    net = replace(spec.network, conv_channels=16, feature=16, latent=8, uv_channels=8, hypotheses=2)
    net = replace(net, resnet=replace(net.resnet, widths=(4, 8, 8, 8), stem_width=4))
    spec = replace(spec, network=net)
    torch.manual_seed(0)
    model = family_named("umr").build_model(spec)
    path = tmp_path_factory.mktemp("umr_model") / "model.pt"
    checkpoints.save(path, {"kind": "recon3d-model", "spec": spec.to_dict(), "model": model.state_dict(),
                            "step": 0, "examples": 0})
    return path


def predict_into(model: Path, photo: Path, out: Path) -> None:
    from stages import predict

    assert predict.main(["--model", str(model), "--image", str(photo), "--out", str(out), "--device", "cpu"]) == 0


@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "photos" / "bird.png"
    path.parent.mkdir()
    Image.fromarray((np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)).save(path)
    return path


def obj_directives(path: Path, keyword: str) -> list[str]:
    return [line.split(None, 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith(keyword + " ")]


def test_two_obj_predictions_in_one_folder_keep_their_own_textures(tiny_model, photo, tmp_path):
    import trimesh

    torch.set_num_threads(1)
    out = tmp_path / "out"
    predict_into(tiny_model, photo, out / "a.obj")
    predict_into(tiny_model, photo, out / "b.obj")
    assert sorted(p.name for p in out.iterdir()) == ["a.mtl", "a.obj", "a.png", "b.mtl", "b.obj", "b.png"]
    for stem in "ab":
        assert obj_directives(out / f"{stem}.obj", "mtllib") == [f"{stem}.mtl"]
        assert obj_directives(out / f"{stem}.mtl", "map_Kd") == [f"{stem}.png"]
        assert obj_directives(out / f"{stem}.mtl", "Kd") == ["1.00000000 1.00000000 1.00000000"]  # texture as sampled
    mesh = trimesh.load(out / "a.obj", force="mesh")
    assert len(mesh.faces) == 320
    assert mesh.visual.material.image is not None and mesh.visual.material.image.size == (128, 64)  # UV flow 64 x 128
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)


def test_glb_is_one_file(tiny_model, photo, tmp_path):
    import trimesh

    torch.set_num_threads(1)
    out = tmp_path / "out"
    predict_into(tiny_model, photo, out / "a.glb")
    assert [p.name for p in out.iterdir()] == ["a.glb"]
    mesh = trimesh.load(out / "a.glb", force="mesh")
    assert mesh.visual.material.baseColorTexture.size == (128, 64)
    assert mesh.visual.material.baseColorFactor.tolist() == [255, 255, 255, 255]  # texture as sampled


def test_a_failed_write_leaves_no_obj_and_no_temporary_file(tiny_model, photo, tmp_path):
    """The .png is written first and the .obj last: when the .mtl cannot be written (here its name
    is taken by a folder) there is no .obj naming a missing file and no temporary file is left."""
    out = tmp_path / "out"
    (out / "a.mtl").mkdir(parents=True)
    with pytest.raises(OSError):
        predict_into(tiny_model, photo, out / "a.obj")
    assert not (out / "a.obj").exists() and (out / "a.mtl").is_dir()
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]


def test_an_output_that_would_overwrite_the_input_photo_is_refused(tiny_model, photo):
    # bird.obj beside bird.png would write its texture over the photo: refused before any write.
    import hashlib

    from stages import predict
    from stages.errors import StageError

    before = hashlib.md5(photo.read_bytes()).hexdigest()
    with pytest.raises(StageError, match=r"bird\.png: is an input of this prediction"):
        predict.main(["--model", str(tiny_model), "--image", str(photo), "--out", str(photo.with_suffix(".obj")),
                      "--device", "cpu"])
    assert hashlib.md5(photo.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in photo.parent.iterdir()) == ["bird.png"]


@pytest.mark.parametrize("box, message", [((30, 30, 10, 10), "needs X1 < X2"), ((10, 10, 10, 40), "needs X1 < X2"),
                                          ((0, 0, 80, 59), "is not inside the 80x60 picture")])
def test_bad_bbox_is_one_clear_line(box, message):
    from stages.errors import StageError
    from stages.families.umr.predict import crop_input

    with pytest.raises(StageError, match=message):
        crop_input(np.zeros((60, 80, 3), np.uint8), box, 64)
    assert crop_input(np.zeros((60, 80, 3), np.uint8), (0, 0, 79, 59), 64).shape == (3, 64, 64)
