"""Importing the original CoReNet's PyTorch checkpoints: name mapping, config checks, and the
original's logits reproduced on the h7 reference fixture (written by the original code)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stages import import_checkpoint as ic
from stages.models.batch_renorm import BatchRenorm
from stages.models.corenet import CoReNet, CoReNetLayoutConfig, corenet_release_config

FIXTURE = Path("/work/shared/fixtures/corenet_reference/h7")
if not FIXTURE.is_dir():
    FIXTURE = Path(__file__).resolve().parents[1] / "shared" / "fixtures" / "corenet_reference" / "h7"
needs_fixture = pytest.mark.skipif(not FIXTURE.is_dir(), reason="corenet_reference/h7 fixture not present")


@pytest.fixture(scope="module")
def h7_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("h7") / "state_000000000.cpt"
    subprocess.run([sys.executable, str(FIXTURE / "make_checkpoint.py"), str(out)], check=True, capture_output=True)
    return out


@needs_fixture
def test_every_original_tensor_has_one_place_in_our_network():
    spec = json.loads((FIXTURE / "weights.json").read_text())
    ours = CoReNet(corenet_release_config(128, 2, 64, 0.75, 2)).state_dict()
    mapped = {}
    for entry in spec["tensors"]:
        target = ic.our_name(entry["name"])
        assert target in ours, entry["name"]
        assert list(ours[target].shape) == list(entry["shape"]), entry["name"]
        mapped[target] = entry["name"]
    assert len(mapped) == len(spec["tensors"]) == len(ours) == 458
    assert ic.our_name("decoder.rt_skip_5.compress_channels.weight") == "skips.64.compress.weight"
    assert ic.our_name("encoder.stage4.f.op_b.bn.running_var") == "encoder.stages.2.5.bn2.running_var"
    assert ic.our_name("decoder.stage_6.t1.bias") == "blocks.4.5.bias"


@needs_fixture
def test_imported_h7_reproduces_the_original_logits(h7_checkpoint):
    torch.set_num_threads(1)
    original, model = ic.import_corenet(h7_checkpoint)
    assert original.resolution == (128, 128, 128) and original.last_upscale_factor == 2
    expected = np.load(FIXTURE / "expected.npz")
    inputs = np.load(FIXTURE / "inputs.npz")
    with torch.no_grad():
        _, pooled = model.encode(torch.from_numpy(inputs["image"]))
    reference_pooled = expected["encoder_global_average_2048"]
    assert np.abs(pooled.numpy() - reference_pooled).max() <= 1e-5 * np.abs(reference_pooled).max()
    result = ic.run_reference(model, FIXTURE)
    # measured: max abs diff 3.4e-4 over a range of 186 (1.8e-6 relative), every voxel agrees
    assert result.agreement >= 99.9
    assert result.max_abs_diff <= 1e-3 * result.range
    assert result.max_abs_diff <= 1e-2  # the fixture README's absolute tolerance
    # full grid: 2,097,152 voxels; 34 have a top-2 margin below 1e-3
    assert sum(abs(a - b) for a, b in zip(result.argmax_counts, result.expected_counts)) <= 40


def test_batch_renorm_eval_is_affine_with_running_statistics():
    layer = BatchRenorm(3).eval()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        layer.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
        layer.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1, 1)
    expected = [1.5 * (1 - 0.5) / math.sqrt(4.001) + 0.1, -0.5 * 3 / math.sqrt(0.251) + 0.2,
                2.0 * 1 / math.sqrt(1.001) - 0.3]
    assert layer(x).flatten().tolist() == pytest.approx(expected, rel=1e-6)
    assert int(layer.num_batches_tracked) == 0


def test_batch_renorm_training_starts_as_batch_norm_and_tracks_statistics():
    # before 5,000 batches r_max = 1 and d_max = 0: plain batch normalisation
    layer = BatchRenorm(2).train()
    x = torch.tensor([[1.0, 10.0], [3.0, 14.0], [5.0, 12.0], [7.0, 16.0]]).view(4, 2, 1)
    y = layer(x).view(4, 2)
    mean, var = torch.tensor([4.0, 13.0]), torch.tensor([5.0, 5.0])
    assert torch.allclose(y, (x.view(4, 2) - mean) / torch.sqrt(var + 1e-3), atol=1e-6)
    # running statistics move by momentum 0.01; the variance factor is C / (C - 1) = 2, as the original
    assert torch.allclose(layer.running_mean, 0.01 * mean)
    assert torch.allclose(layer.running_var, 1 + 0.01 * (2 * var - 1))
    assert int(layer.num_batches_tracked) == 1
    # after 40,000 batches r may reach 3 and d 5
    layer.num_batches_tracked.fill_(40000)
    r_max, d_max = layer._limits()
    assert float(r_max) == 3.0 and float(d_max) == 5.0


def test_layout_config_refuses_what_the_release_cannot_build():
    with pytest.raises(ValueError, match="native resolution 128"):
        corenet_release_config(64, 2, 64, 0.75, 2)
    with pytest.raises(ValueError, match="5 channel entries"):
        CoReNetLayoutConfig(encoder=corenet_release_config(128, 2, 64, 0.75, 2).encoder, channels=(8, 8))


def _write(path: Path, payload) -> Path:
    torch.save(payload, path)
    return path


def test_foreign_files_are_refused_with_one_line(tmp_path):
    with pytest.raises(ic.CheckpointImportError, match="no such checkpoint"):
        ic.read_original_checkpoint(tmp_path / "missing.cpt")
    (tmp_path / "text.cpt").write_text("not a checkpoint")
    with pytest.raises(ic.CheckpointImportError, match="text.cpt: not a readable torch checkpoint"):
        ic.read_original_checkpoint(tmp_path / "text.cpt")
    with pytest.raises(ic.CheckpointImportError, match="expected keys global_step"):
        ic.read_original_checkpoint(_write(tmp_path / "list.cpt", [1, 2]))
    base = {"global_step": 0, "model_state": {}, "optimizer_state": {}, "extra_metadata": None}
    with pytest.raises(ic.CheckpointImportError, match="model_config.decoder must hold"):
        ic.read_original_checkpoint(_write(tmp_path / "cfg.cpt", {**base, "model_config": {"decoder": {}}}))


class _RunsCommand:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.cpt"
    torch.save({"global_step": _RunsCommand(str(marker))}, path)
    with pytest.raises(ic.CheckpointImportError, match="evil.cpt: not a readable torch checkpoint"):
        ic.read_original_checkpoint(path)
    assert not marker.exists()


def _decoder(**changes):
    decoder = {"resolution": [128, 128, 128], "num_output_channels": 2, "last_upscale_factor": 2,
               "latent_channels": 64, "skip_fraction": 0.75}
    return {**decoder, **changes}


def test_config_mismatch_names_the_key(tmp_path):
    ok = _write(tmp_path / "ok.cpt", {"global_step": 3, "model_state": {}, "optimizer_state": {},
                                      "extra_metadata": None, "model_config": {"decoder": _decoder()}})
    original = ic.read_original_checkpoint(ok)
    paper = corenet_release_config(128, 2, 64, 0.75, 2)
    ic.check_against_spec(original, paper, 2, "h7.yaml")
    with pytest.raises(ic.CheckpointImportError, match="latent_channels is 64 in the checkpoint but 32 in h7.yaml"):
        ic.check_against_spec(original, corenet_release_config(128, 2, 32, 0.75, 2), 2, "h7.yaml")
    with pytest.raises(ic.CheckpointImportError, match="output channels is 2 in the checkpoint but 14"):
        ic.check_against_spec(original, paper, 14, "m7.yaml")
    # this project's own paper network (uniform layout) cannot hold the release's weights
    from stages.models.configs import CoReNetConfig

    with pytest.raises(ic.CheckpointImportError, match="layout is 'corenet' in the checkpoint but 'uniform'"):
        ic.check_against_spec(original, CoReNetConfig(), 2, "h7.yaml")
    bad = _write(tmp_path / "bad.cpt", {"global_step": 3, "model_state": {}, "optimizer_state": {},
                                        "extra_metadata": None, "model_config": {"decoder": _decoder(resolution=[128, 64, 128])}})
    with pytest.raises(ic.CheckpointImportError, match="not cubic"):
        ic.build_network(ic.read_original_checkpoint(bad))


def _layout_in_model_files() -> bool:
    from stages.families.corenet.spec import CorenetNetwork

    return "layout" in CorenetNetwork.__dataclass_fields__


@needs_fixture
@pytest.mark.skipif(not _layout_in_model_files(), reason="model files cannot name the corenet layout yet")
def test_cli_writes_a_model_evaluation_can_read(h7_checkpoint, tmp_path, capsys):
    from stages.training import checkpoints

    out = tmp_path / "model.pt"
    code = ic.main(["corenet", "--checkpoint", str(h7_checkpoint), "--model", "h7", "--out", str(out),
                    "--reference", str(FIXTURE)])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("reference: max abs diff ")
    payload = checkpoints.load(out, checkpoints.WEIGHTS)
    assert payload["kind"] == "recon3d-model" and payload["spec"]["scale"] == "paper"
