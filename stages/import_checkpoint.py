"""import_checkpoint: a released CoReNet PyTorch checkpoint as one of our trained models.

    python -m stages.import_checkpoint corenet --checkpoint state_000000000.cpt --model h7 \\
        --out results/models/h7/model.pt [--models-dir config/models] [--reference DIR] \\
        [--training-log results/models/h7/metrics.csv]

The original's checkpoint (google-research/corenet, src/corenet/state.py, `encode_state`) is a
torch.save'd dict with global_step, model_state, model_config, optimizer_state and
extra_metadata; it is read with torch.load(weights_only=True), so nothing in it can run code.
Its model config must match the paper scale of config/models/<model>.yaml (resolution, output
channels, decoder channels, latent channels, skip fraction, last upscale factor); its state dict
is renamed onto our network in the corenet layout (stages.models.corenet) and written as a
"recon3d-model" file that evaluation reads like a trained one. `--reference DIR` then runs the
imported network on a folder laid out like tests' corenet_reference fixtures (inputs.npz,
expected.npz) and prints, last, `reference: max abs diff <x>, argmax agreement <y>%`; the exit
status is 1 when the agreement is below 99.9 %.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stages.cli import run
from stages.errors import StageError
from stages.models.corenet import CoReNet, corenet_release_config, last_upscale_factor, layout_of

CHECKPOINT_KEYS = ("global_step", "model_state", "model_config", "optimizer_state", "extra_metadata")
DECODER_KEYS = ("resolution", "num_output_channels", "last_upscale_factor", "latent_channels", "skip_fraction")
MIN_AGREEMENT = 99.9  # percent of voxels whose argmax must match the reference
SUBSAMPLE = 8  # expected.npz's logits_sub = logits[0, :, ::8, ::8, ::8]

# Original state-dict names -> ours (corenet layout). Encoder blocks: op_a/op_b/op_c are the
# bottleneck's 1x1 / 3x3 / 1x1 (conv, bn) pairs; decoder stage_k (k >= 2) is
# (r1, b1, c1, r2, b2, t1) = our blocks[k - 2] entries 0..5; stage_1 (r1, b1, t1) = initial.
_BLOCK_OPS = {"op_a.conv": "conv1", "op_a.bn": "bn1", "op_b.conv": "conv2", "op_b.bn": "bn2",
              "op_c.conv": "conv3", "op_c.bn": "bn3", "shortcut.conv": "shortcut.0", "shortcut.bn": "shortcut.1"}
_DECODER_OPS = {"b1": "1", "c1": "2", "b2": "4", "t1": "5"}
_RULES = (
    (re.compile(r"encoder\.stage1\.conv\.(\w+)"), lambda m: f"encoder.stem.0.{m[1]}"),
    (re.compile(r"encoder\.stage1_part2\.bn\.(\w+)"), lambda m: f"encoder.stem.1.{m[1]}"),
    (re.compile(r"encoder\.stage([2-5])\.([a-z])\.(op_[abc]\.conv|op_[abc]\.bn|shortcut\.conv|shortcut\.bn)\.(\w+)"),
     lambda m: f"encoder.stages.{int(m[1]) - 2}.{ord(m[2]) - ord('a')}.{_BLOCK_OPS[m[3]]}.{m[4]}"),
    (re.compile(r"decoder\.stage_0\.(\w+)"), lambda m: f"latent.{m[1]}"),
    (re.compile(r"decoder\.stage_1\.(b1|t1)\.(\w+)"), lambda m: f"initial.{dict(b1='1', t1='2')[m[1]]}.{m[2]}"),
    (re.compile(r"decoder\.stage_([2-6])\.(b1|c1|b2|t1)\.(\w+)"),
     lambda m: f"blocks.{int(m[1]) - 2}.{_DECODER_OPS[m[2]]}.{m[3]}"),
    (re.compile(r"decoder\.rt_skip_([2-5])\.compress_channels\.(\w+)"),
     lambda m: f"skips.{4 * 2 ** (int(m[1]) - 1)}.compress.{m[2]}"),
)


class CheckpointImportError(StageError):
    """A checkpoint or reference folder that cannot be imported; the message names the file."""


@dataclass(frozen=True)
class OriginalCheckpoint:
    """The parts of an original checkpoint the import uses. resolution: (depth, height, width)."""

    path: Path
    global_step: int
    state: dict[str, torch.Tensor]
    resolution: tuple[int, int, int]
    num_output_channels: int
    last_upscale_factor: int
    latent_channels: int
    skip_fraction: float


def read_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Read and check an original checkpoint (torch.load with weights_only=True).

    Raises CheckpointImportError (one line naming the file) for an unreadable file, missing keys, a model
    config without the decoder's five keys, or a state dict that is not name -> tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointImportError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or truncated files
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointImportError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {first[:200]})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in CHECKPOINT_KEYS):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointImportError(f"{path}: not a CoReNet checkpoint: expected keys {', '.join(CHECKPOINT_KEYS)}, found {found}")
    decoder = payload["model_config"].get("decoder") if isinstance(payload["model_config"], dict) else None
    if not isinstance(decoder, dict) or any(k not in decoder for k in DECODER_KEYS):
        raise CheckpointImportError(f"{path}: model_config.decoder must hold {', '.join(DECODER_KEYS)}")
    state = payload["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointImportError(f"{path}: model_state is not a mapping of tensors")
    resolution = tuple(int(r) for r in decoder["resolution"])
    if len(resolution) != 3:
        raise CheckpointImportError(f"{path}: model_config.decoder.resolution must have 3 entries, got {resolution}")
    return OriginalCheckpoint(
        path=path, global_step=int(payload["global_step"]), state=dict(state), resolution=resolution,
        num_output_channels=int(decoder["num_output_channels"]),
        last_upscale_factor=int(decoder["last_upscale_factor"]),
        latent_channels=int(decoder["latent_channels"]), skip_fraction=float(decoder["skip_fraction"]),
    )


def our_name(name: str) -> str | None:
    """Our state-dict name for an original one, None for a name no rule covers."""
    for pattern, rename in _RULES:
        match = pattern.fullmatch(name)
        if match:
            return rename(match)
    return None


def build_network(original: OriginalCheckpoint) -> CoReNet:
    """Our network in the corenet layout for the original's model config (cubic grids only)."""
    depth, height, width = original.resolution
    if not depth == height == width:
        raise CheckpointImportError(f"{original.path}: resolution {original.resolution} is not cubic; only cubic grids import")
    try:
        config = corenet_release_config(depth, original.num_output_channels, original.latent_channels,
                                        original.skip_fraction, original.last_upscale_factor)
    except ValueError as err:
        raise CheckpointImportError(f"{original.path}: model_config: {err}") from None
    return CoReNet(config)


def load_original_state(model: CoReNet, original: OriginalCheckpoint) -> None:
    """Copy the original's tensors into `model` (renamed, shapes checked); every tensor on both
    sides must be used. Raises CheckpointImportError naming the first unknown, missing or mis-shaped one."""
    ours = model.state_dict()
    renamed = {}
    for name, tensor in original.state.items():
        target = our_name(name)
        if target is None or target not in ours:
            raise CheckpointImportError(f"{original.path}: model_state has {name!r}, which the CoReNet network does not have")
        if tuple(tensor.shape) != tuple(ours[target].shape):
            raise CheckpointImportError(f"{original.path}: {name} has shape {tuple(tensor.shape)}, "
                               f"the network expects {tuple(ours[target].shape)}")
        renamed[target] = tensor.to(ours[target].dtype)
    missing = [k for k in ours if k not in renamed]
    if missing:
        raise CheckpointImportError(f"{original.path}: model_state lacks {len(missing)} tensors of the network, e.g. {missing[0]}")
    model.load_state_dict(renamed, strict=True)


def import_corenet(path: str | Path) -> tuple[OriginalCheckpoint, CoReNet]:
    """The original checkpoint at `path` and our network (eval mode) holding its weights."""
    original = read_original_checkpoint(path)
    model = build_network(original)
    load_original_state(model, original)
    return original, model.eval()


def check_against_spec(original: OriginalCheckpoint, config, num_classes: int, where: str) -> None:
    """Compare the original's decoder config with our network config of the model file `where`
    (a CoReNetConfig at paper scale). Raises CheckpointImportError naming the first differing key."""
    release = build_network(original).config
    pairs = (
        ("layout", layout_of(config), "corenet"),
        ("resolution", config.resolution, release.resolution),
        ("output channels", num_classes, original.num_output_channels),
        ("channels", tuple(config.channels), tuple(release.channels)),
        ("latent_channels", config.latent_channels, original.latent_channels),
        ("skip_fraction", config.skip_fraction, original.skip_fraction),
        ("last_upscale_factor", last_upscale_factor(config), original.last_upscale_factor),
    )
    for key, ours, theirs in pairs:
        if ours != theirs:
            raise CheckpointImportError(f"{original.path}: {key} is {theirs!r} in the checkpoint but {ours!r} in {where} (paper scale)")


@dataclass(frozen=True)
class ReferenceResult:
    max_abs_diff: float  # over expected.npz's logits_sub
    range: float  # max - min of the reference's logits_sub
    agreement: float  # percent of logits_sub voxels with the same argmax
    argmax_counts: tuple[int, ...]  # ours, full grid
    expected_counts: tuple[int, ...]


def _npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointImportError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise CheckpointImportError(f"{path}: missing arrays {', '.join(missing)}")
            return {n: data[n] for n in data.files}
    except (OSError, ValueError) as err:
        raise CheckpointImportError(f"{path}: unreadable npz ({err})") from None


@torch.no_grad()
def run_reference(model: CoReNet, folder: str | Path) -> ReferenceResult:
    """Run `model` on a reference folder's inputs.npz (image uint8 [1, 3, H, W] RGB;
    camera_transform [1, 4, 4] reconstruction -> clip space, or voxel_projection_matrix = camera .
    scale(1 / R); voxel_sample_locations [1, 3]) and compare with its expected.npz (logits_sub
    [C, R/8, R/8, R/8] = logits[0, :, ::8, ::8, ::8]; argmax_counts [C] over the full grid)."""
    folder = Path(folder)
    inputs = _npz(folder / "inputs.npz", ("image", "voxel_sample_locations"))
    expected = _npz(folder / "expected.npz", ("logits_sub", "argmax_counts"))
    resolution = model.config.resolution
    if "camera_transform" in inputs:
        camera = torch.from_numpy(inputs["camera_transform"].astype(np.float32))
    elif "voxel_projection_matrix" in inputs:
        camera = torch.from_numpy(inputs["voxel_projection_matrix"].astype(np.float32)).clone()
        camera[:, :, :3] *= resolution
    else:
        raise CheckpointImportError(f"{folder / 'inputs.npz'}: needs camera_transform or voxel_projection_matrix")
    image = torch.from_numpy(inputs["image"])
    if image.dtype != torch.uint8 or image.dim() != 4 or image.shape[1] != 3:
        raise CheckpointImportError(f"{folder / 'inputs.npz'}: image must be uint8 [B, 3, H, W], got {image.dtype} {tuple(image.shape)}")
    offset = torch.from_numpy(inputs["voxel_sample_locations"].astype(np.float32))
    logits = model.eval()(image, camera, offset)[0]
    sub = logits[:, ::SUBSAMPLE, ::SUBSAMPLE, ::SUBSAMPLE].numpy()
    ref = expected["logits_sub"]
    if sub.shape != ref.shape:
        raise CheckpointImportError(f"{folder / 'expected.npz'}: logits_sub has shape {ref.shape}, the model gives {sub.shape}")
    counts = torch.bincount(logits.argmax(0).reshape(-1), minlength=logits.shape[0])
    return ReferenceResult(
        max_abs_diff=float(np.abs(sub - ref).max()),
        range=float(ref.max() - ref.min()),
        agreement=100.0 * float(np.mean(sub.argmax(0) == ref.argmax(0))),
        argmax_counts=tuple(int(c) for c in counts),
        expected_counts=tuple(int(c) for c in expected["argmax_counts"]),
    )


def _write_model(original: OriginalCheckpoint, model: CoReNet, spec, out: Path) -> None:
    from stages.training import checkpoints

    checkpoints.save(out, {
        "kind": "recon3d-model",
        "spec": spec.to_dict(),
        "model": model.state_dict(),
        "step": original.global_step,
        "examples": 0,  # unknown: the original trained on several GPUs with its own batches
        "imported_from": f"google-research/corenet checkpoint {original.path.name} (global_step {original.global_step})",
        "released": True,  # evaluation records `source: released checkpoint` (stages.families.corenet.evaluate)
    })


def _write_training_log(path: Path) -> None:
    """An empty training log (the header stages.train writes): the model was not trained here,
    and the report reads every evaluated model's log."""
    from stages.families.corenet import CORENET
    from stages.training.loop import write_metrics

    write_metrics(path, [], CORENET.statistics)


def import_command(args: argparse.Namespace) -> int:
    from stages.families.corenet.spec import network_config, num_classes
    from stages.model_config import load_model_spec, model_config_path

    where = model_config_path(args.model, args.models_dir)
    spec = load_model_spec(where, "paper")
    if spec.family != "corenet":
        raise CheckpointImportError(f"{where}: model {args.model} is of family {spec.family}, not corenet")
    original = read_original_checkpoint(args.checkpoint)
    check_against_spec(original, network_config(spec), num_classes(spec), str(where))
    original, model = import_corenet(args.checkpoint)
    _write_model(original, model, spec, args.out)
    if args.training_log is not None:
        _write_training_log(args.training_log)
    print(f"import_checkpoint: {original.path} (global_step {original.global_step}) -> {args.out}", file=sys.stderr)
    if args.reference is None:
        return 0
    result = run_reference(model, args.reference)
    print(f"argmax counts: ours {list(result.argmax_counts)}, reference {list(result.expected_counts)}")
    print(f"reference: max abs diff {result.max_abs_diff:.6g}, argmax agreement {result.agreement:.3f}%")
    return 0 if result.agreement >= MIN_AGREEMENT else 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.import_checkpoint", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="family", required=True)
    cn = sub.add_parser("corenet", help="a google-research/corenet PyTorch checkpoint (state_*.cpt)")
    cn.add_argument("--checkpoint", type=Path, required=True, help="the original's checkpoint file")
    cn.add_argument("--model", required=True, help="model name: config/models/<model>.yaml (paper scale)")
    cn.add_argument("--models-dir", type=Path, default=Path("config/models"), help="model files folder")
    cn.add_argument("--out", type=Path, required=True, help="our model file to write (recon3d-model)")
    cn.add_argument("--reference", type=Path, default=None, help="reference folder (inputs.npz, expected.npz)")
    cn.add_argument("--training-log", type=Path, default=None,
                    help="also write an empty training log here (metrics.csv with stages.train's header)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with torch.no_grad():  # inference only; never changes the caller's grad mode
        return import_command(args)


if __name__ == "__main__":
    run(main)
