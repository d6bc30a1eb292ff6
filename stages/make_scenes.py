"""make_scenes: CoReNet-style scene tables (single / pairs / triplets), or an import of CoReNet's
released scene files.

    python -m stages.make_scenes synthetic --meshes MESHES_DIR --dataset pairs --objects 2 \\
        --count train=800 val=100 test=100 --shard-size 250 --seed 0 --out SCENES_DIR
    python -m stages.make_scenes import-corenet --dataset-json DATA/pairs.test/dataset.json \\
        --dataset pairs --split test --shard-size 250 [--shard K] --out SCENES_DIR \\
        --renders RENDERS_DIR --quarantine QUARANTINE_DIR [--meshes MESHES_DIR]

Scene i of a split depends only on (seed, dataset, split, i), so shards can be regenerated
one by one and a larger count extends, never reshuffles, a smaller one. Objects of a scene come
from meshes of the scene's split only (see stages.splits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from tqdm import tqdm

from stages.camera import corenet_camera_transform
from stages.cli import run
from stages.errors import StageError, one_line
from stages.formats.corenet_npz import CorenetSceneError, image_to_png, read_corenet_scene
from stages.scene_layout import MeshBounds, place_objects
from stages.sharding import check_shard, num_shards_for, stable_hash
from stages.splits import SplitFractions, assign_mesh_splits
from stages.tables import (
    MESHES,
    RENDERS,
    SCENES,
    SPLITS,
    ShardWriter,
    TableSpec,
    pack_array,
    read_table,
    shard_path,
)

INDEX_COLUMNS = ["synset", "mesh_id", "min_x", "min_y", "min_z", "max_x", "max_y", "max_z"]


def load_mesh_index(meshes: list[Path], fractions: SplitFractions) -> pd.DataFrame:
    index = read_table(meshes, MESHES, columns=INDEX_COLUMNS)
    if index.empty:
        raise SystemExit(f"make_scenes: no meshes in {', '.join(map(str, meshes))}")
    index["split"] = assign_mesh_splits(index, fractions)
    return index


def scene_rng(seed: int, dataset: str, split: str, number: int) -> np.random.Generator:
    return np.random.default_rng([seed, stable_hash(f"{dataset}/{split}") % 2**32, number])


def make_scene(
    pool: dict[str, pd.DataFrame], dataset: str, split: str, number: int, objects: int, seed: int
) -> dict:
    rng = scene_rng(seed, dataset, split, number)
    classes = sorted(pool)
    # Distinct classes while there are enough of them, as in CoReNet's pairs and triplets.
    chosen = rng.choice(classes, size=objects, replace=len(classes) < objects)
    rows = [pool[c].iloc[int(rng.integers(len(pool[c])))] for c in chosen]
    bounds = [
        MeshBounds(
            lo=np.array([r.min_x, r.min_y, r.min_z], dtype=np.float64),
            hi=np.array([r.max_x, r.max_y, r.max_z], dtype=np.float64),
        )
        for r in rows
    ]
    transforms = place_objects(bounds, rng)
    return {
        "scene_id": f"{dataset}-{split}-{number:07d}",
        "dataset": dataset,
        "split": split,
        "num_objects": objects,
        "mesh_labels": [str(r.synset) for r in rows],
        "mesh_ids": [str(r.mesh_id) for r in rows],
        "object_to_world": pack_array(np.stack(transforms), "<f8"),
        "view_transform": pack_array(np.eye(4), "<f8"),
        "camera_transform": pack_array(corenet_camera_transform(), "<f8"),
        "seed": int(rng.integers(2**62)),
        "source": "synthetic",
    }


def write_synthetic(args: argparse.Namespace) -> None:
    fractions = SplitFractions(args.train_fraction, args.val_fraction)
    index = load_mesh_index(args.meshes, fractions)
    for split, count in sorted(args.count.items(), key=lambda kv: SPLITS.index(kv[0])):
        pool = {s: g.reset_index(drop=True) for s, g in index[index.split == split].groupby("synset")}
        if count and not pool:
            raise SystemExit(f"make_scenes: no {split} meshes to build {count} {split} scenes from")
        shards = range(num_shards_for(count, args.shard_size))
        if args.shard is not None:
            if args.shard not in shards:
                raise SystemExit(f"make_scenes: --shard {args.shard} is outside 0..{len(shards) - 1} for {count} {split} scenes")
            shards = [args.shard]
        for shard in tqdm(shards, desc=f"make_scenes {args.dataset}/{split}", unit="shard"):
            first, last = shard * args.shard_size, min(count, (shard + 1) * args.shard_size)
            rows = [make_scene(pool, args.dataset, split, n, args.objects, args.seed) for n in range(first, last)]
            with ShardWriter(shard_path(args.out, shard, split), SCENES) as writer:
                writer.write(pd.DataFrame(rows, columns=SCENES.columns))


SCENE_QUARANTINE = TableSpec(
    name="scene_quarantine",
    arrow=pyarrow.schema([("entry", pyarrow.string()), ("source_path", pyarrow.string()), ("reason", pyarrow.string())]),
    checks=pa.DataFrameSchema(
        {"entry": pa.Column(str), "source_path": pa.Column(str), "reason": pa.Column(str, pa.Check.str_length(min_value=1))},
        strict=True,
    ),
    doc="One row per scene of a released dataset json that was not imported: the json's entry, "
    "the file it names and the reason (no such file, unreadable, refused pickle, wrong image size, "
    "missing mesh, listed twice).",
)


def read_dataset_json(path: Path) -> list[str]:
    """The scene files a released dataset json lists (`files`, relative to the json's folder,
    e.g. "0c8/0c8066....npz"; google-research/corenet src/corenet/data/dataset.py)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StageError(f"{path}: not a readable dataset json ({one_line(err)[:120]})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise StageError(f"{path}: expected a mapping with a 'files' list of scene paths")
    return files


def _corenet_row(args: argparse.Namespace, entry: str, meshes: set | None) -> tuple[dict, list[dict]]:
    """(scene row, render rows) of one listed scene; CorenetSceneError names the problem."""
    path = args.dataset_json.parent / entry
    if not path.is_file():
        raise CorenetSceneError(f"{path}: listed in {args.dataset_json.name} but no such file")
    scene = read_corenet_scene(path)
    images = {"low": image_to_png(scene.opengl_image, f"{path}: opengl_image"),
              "high": image_to_png(scene.pbrt_image, f"{path}: pbrt_image")}
    for realism, (_, width, height) in images.items():
        if (width, height) != (args.image_size, args.image_size):
            raise CorenetSceneError(f"{path}: {realism}-realism image is {width}x{height}, expected "
                                    f"{args.image_size}x{args.image_size}")
    if meshes is not None:
        for synset, mesh_id in zip(scene.mesh_labels, scene.mesh_filenames):
            if (synset, mesh_id) not in meshes:
                raise CorenetSceneError(f"{path}: mesh {synset}/{mesh_id} is not in the meshes table")
    scene_id = f"{args.dataset}-{args.split}-{Path(entry).stem}"
    k = len(scene.mesh_labels)
    row = {
        "scene_id": scene_id, "dataset": args.dataset, "split": args.split, "num_objects": k,
        "mesh_labels": scene.mesh_labels, "mesh_ids": scene.mesh_filenames,
        "object_to_world": pack_array(scene.mesh_object_to_world_transforms, "<f8"),
        "view_transform": pack_array(scene.view_transform, "<f8"),
        "camera_transform": pack_array(scene.camera_transform, "<f8"),
        "seed": stable_hash(scene_id) % 2**62, "source": "corenet",
    }
    renders = [
        {"realism": realism, "scene_id": scene_id, "width": width, "height": height, "image": png,
         "num_objects": k, "visible_fractions": pack_array(scene.mesh_visible_fractions, "<f4")}
        for realism, (png, width, height) in images.items()
    ]
    return row, renders


def import_corenet_shard(args: argparse.Namespace, entries: list[str], shard: int, meshes: set | None) -> tuple[int, int]:
    """Import one shard of the json's list; returns (imported, quarantined)."""
    scenes, renders, quarantined, seen = [], [], [], set()
    for entry in entries:
        source = str(args.dataset_json.parent / entry)
        if entry in seen:
            quarantined.append({"entry": entry, "source_path": source, "reason": f"{source}: listed twice"})
            continue
        seen.add(entry)
        try:
            row, rows = _corenet_row(args, entry, meshes)
        except CorenetSceneError as err:
            quarantined.append({"entry": entry, "source_path": source, "reason": one_line(err)})
            continue
        scenes.append(row)
        renders.extend(rows)
    rendered = pd.DataFrame(renders, columns=RENDERS.columns)
    with ShardWriter(shard_path(args.out, shard, args.split), SCENES) as writer:
        writer.write(pd.DataFrame(scenes, columns=SCENES.columns))
    for realism in ("low", "high"):
        with ShardWriter(shard_path(args.renders / realism / args.dataset, shard, args.split), RENDERS) as writer:
            writer.write(rendered[rendered.realism == realism].reset_index(drop=True))
    with ShardWriter(shard_path(args.quarantine, shard, args.split), SCENE_QUARANTINE) as writer:
        writer.write(pd.DataFrame(quarantined, columns=SCENE_QUARANTINE.columns))
    for item in quarantined:
        print(f"make_scenes: quarantined {item['reason']}", file=sys.stderr)
    return len(scenes), len(quarantined)


def import_corenet(args: argparse.Namespace) -> None:
    """Import the scenes a released dataset json lists, shard by shard (all, or --shard)."""
    files = read_dataset_json(args.dataset_json)
    meshes = None
    if args.meshes:
        index = read_table(args.meshes, MESHES, columns=["synset", "mesh_id"])
        meshes = set(zip(index.synset, index.mesh_id))
    count = num_shards_for(len(files), args.shard_size)
    shards = range(count)
    if args.shard is not None:
        check_shard(args.shard, count)
        shards = [args.shard]
    imported = quarantined = 0
    for shard in tqdm(shards, desc=f"import {args.dataset}/{args.split}", unit="shard"):
        entries = files[shard * args.shard_size : (shard + 1) * args.shard_size]
        done, bad = import_corenet_shard(args, entries, shard, meshes)
        imported, quarantined = imported + done, quarantined + bad
    print(f"make_scenes: imported {imported} scenes, quarantined {quarantined} (see {args.quarantine})", file=sys.stderr)


def _counts(values: list[str]) -> dict[str, int]:
    counts = {}
    for value in values:
        split, _, number = value.partition("=")
        if split not in SPLITS or not number.isdigit():
            raise argparse.ArgumentTypeError(f"--count takes SPLIT=N with SPLIT in {SPLITS}, got {value!r}")
        counts[split] = int(number)
    return counts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.make_scenes", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    syn = sub.add_parser("synthetic", help="lay out scenes from the meshes table")
    syn.add_argument("--meshes", type=Path, nargs="+", required=True, help="meshes table folder(s) or shard files")
    syn.add_argument("--dataset", required=True, help="dataset name (single, pairs, triplets, ...)")
    syn.add_argument("--objects", type=int, required=True, choices=[1, 2, 3], help="objects per scene")
    syn.add_argument("--count", nargs="+", required=True, help="scenes per split, e.g. train=800 val=100 test=100")
    syn.add_argument("--shard-size", type=int, default=250, help="scenes per shard (default 250)")
    syn.add_argument("--shard", type=int, default=None, help="write only this shard of each split (default: all)")
    syn.add_argument("--seed", type=int, default=0, help="layout seed (default 0)")
    syn.add_argument("--train-fraction", type=float, default=0.8, help="meshes per class for training (0.8)")
    syn.add_argument("--val-fraction", type=float, default=0.1, help="meshes per class for validation (0.1)")
    syn.add_argument("--out", type=Path, required=True, help="scenes table folder for this dataset")

    imp = sub.add_parser("import-corenet", help="import the scenes a released CoReNet dataset json lists")
    imp.add_argument("--dataset-json", type=Path, required=True,
                     help="the release's dataset json (e.g. pairs.test/dataset.json); its 'files' are read")
    imp.add_argument("--dataset", required=True, help="dataset name for the imported scenes")
    imp.add_argument("--split", required=True, choices=SPLITS)
    imp.add_argument("--shard-size", type=int, default=250, help="scenes per shard (default 250)")
    imp.add_argument("--shard", type=int, default=None, help="import only this shard of the json's list (default: all)")
    imp.add_argument("--out", type=Path, required=True, help="scenes table folder for this dataset")
    imp.add_argument("--renders", type=Path, required=True, help="renders table root (REALISM/DATASET/ below it)")
    imp.add_argument("--quarantine", type=Path, required=True, help="scene quarantine table folder (SPLIT/ below it)")
    imp.add_argument("--meshes", type=Path, nargs="*", default=None,
                     help="meshes table folder(s): scenes naming a mesh not in it are quarantined")
    imp.add_argument("--image-size", type=int, default=256, help="required image side in pixels (256)")
    args = parser.parse_args(argv)
    if getattr(args, "count", None) is not None:
        try:
            args.count = _counts(args.count)
        except argparse.ArgumentTypeError as err:
            parser.error(str(err))
    if args.shard_size < 1:
        parser.error("--shard-size must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "synthetic":
        write_synthetic(args)
    else:
        import_corenet(args)
    return 0


if __name__ == "__main__":
    run(main)
