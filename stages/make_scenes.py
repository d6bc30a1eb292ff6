"""make_scenes: CoReNet-style scene tables (single / pairs / triplets), or an import of CoReNet's
released scene files.

    python -m stages.make_scenes synthetic --meshes MESHES_DIR --dataset pairs --objects 2 \\
        --count train=800 val=100 test=100 --shard-size 250 --seed 0 --out SCENES_DIR
    python -m stages.make_scenes import-corenet --npz-dir DIR --dataset pairs --split test \\
        --shard-size 250 --out SCENES_DIR --renders RENDERS_DIR

Scene i of a split depends only on (seed, dataset, split, i), so shards can be regenerated
one by one and a larger count extends, never reshuffles, a smaller one. Objects of a scene come
from meshes of the scene's split only (see stages.splits).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.camera import corenet_camera_transform
from stages.formats.corenet_npz import CorenetSceneError, image_to_png, read_corenet_scene
from stages.scene_layout import MeshBounds, place_objects
from stages.sharding import num_shards_for, stable_hash
from stages.splits import SplitFractions, assign_mesh_splits
from stages.tables import (
    MESHES,
    RENDERS,
    SCENES,
    SPLITS,
    ShardWriter,
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


def import_corenet(args: argparse.Namespace) -> None:
    files = sorted(args.npz_dir.glob("*.npz"))
    if not files:
        raise SystemExit(f"make_scenes: {args.npz_dir}: no .npz scene files")
    skipped: list[tuple[str, str]] = []
    shards = num_shards_for(len(files), args.shard_size)
    for shard in tqdm(range(shards), desc=f"import {args.dataset}/{args.split}", unit="shard"):
        scenes, renders = [], []
        for path in files[shard * args.shard_size : (shard + 1) * args.shard_size]:
            try:
                scene = read_corenet_scene(path)
                images = {
                    "low": image_to_png(scene.opengl_image, f"{path}: opengl_image"),
                    "high": image_to_png(scene.pbrt_image, f"{path}: pbrt_image"),
                }
            except CorenetSceneError as err:
                skipped.append((str(path), str(err)))
                continue
            scene_id = f"{args.dataset}-{args.split}-{Path(scene.scene_filename).stem or path.stem}"
            k = len(scene.mesh_labels)
            scenes.append(
                {
                    "scene_id": scene_id,
                    "dataset": args.dataset,
                    "split": args.split,
                    "num_objects": k,
                    "mesh_labels": scene.mesh_labels,
                    "mesh_ids": scene.mesh_filenames,
                    "object_to_world": pack_array(scene.mesh_object_to_world_transforms, "<f8"),
                    "view_transform": pack_array(scene.view_transform, "<f8"),
                    "camera_transform": pack_array(scene.camera_transform, "<f8"),
                    "seed": stable_hash(scene_id) % 2**62,
                    "source": "corenet",
                }
            )
            for realism, (png, width, height) in images.items():
                renders.append(
                    {
                        "realism": realism,
                        "scene_id": scene_id,
                        "width": width,
                        "height": height,
                        "image": png,
                        "num_objects": k,
                        "visible_fractions": pack_array(scene.mesh_visible_fractions, "<f4"),
                    }
                )
        rendered = pd.DataFrame(renders, columns=RENDERS.columns)
        with ShardWriter(shard_path(args.out, shard, args.split), SCENES) as writer:
            writer.write(pd.DataFrame(scenes, columns=SCENES.columns))
        for realism in ("low", "high"):
            out = shard_path(args.renders / realism / args.dataset, shard, args.split)
            with ShardWriter(out, RENDERS) as writer:
                writer.write(rendered[rendered.realism == realism].reset_index(drop=True))
    report = args.out / f"{args.split}-skipped.csv"
    with open(report, "w", newline="") as handle:
        csv.writer(handle).writerows([("file", "reason"), *skipped])
    for path, reason in skipped:
        print(f"make_scenes: skipped {reason}", file=sys.stderr)
    print(f"make_scenes: imported {len(files) - len(skipped)} scenes, skipped {len(skipped)} (see {report})", file=sys.stderr)


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

    imp = sub.add_parser("import-corenet", help="import CoReNet's released .npz scene files")
    imp.add_argument("--npz-dir", type=Path, required=True, help="folder of CoReNet .npz scenes")
    imp.add_argument("--dataset", required=True, help="dataset name for the imported scenes")
    imp.add_argument("--split", required=True, choices=SPLITS)
    imp.add_argument("--shard-size", type=int, default=250, help="scenes per shard (default 250)")
    imp.add_argument("--out", type=Path, required=True, help="scenes table folder for this dataset")
    imp.add_argument("--renders", type=Path, required=True, help="renders table root (REALISM/DATASET/ below it)")
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
    sys.exit(main())
