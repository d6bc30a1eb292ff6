import math
import os
import shlex
from pathlib import Path

from snakemake.utils import validate


configfile: "config/config.yaml"


validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
DATA = config["data"]
SYNTHETIC_ROOT = f"{DATA}/synthetic/ShapeNetCore.v2"
# Images for `--sdm apptainer`: data rules run in the CPU image, GPU rules in the CUDA image.
CPU_IMAGE = config["containers"]["cpu"]
CUDA_IMAGE = config["containers"]["cuda"]
# voxelize is named voxelize_cuda when it runs on the GPU, so that a cluster profile can give
# the GPU jobs (and only them) a GPU partition and a GPU (profiles/slurm/config.yaml).
VOXELIZE_ON_GPU = config["voxelize"]["backend"] == "cuda"

# Rules call `python -m stages.<stage>`: the stages come from this checkout, in whatever folder
# Snakemake runs and whether or not the project is installed where the job runs (conda envs and
# images carry the dependencies; this keeps workflow and stage code of one version together).
# (The prefix is formatted like a command: braces are doubled once more.)
REPO_ROOT = Path(workflow.basedir).resolve().parent
shell.prefix(
    "set -euo pipefail; export PYTHONPATH=%s${{PYTHONPATH:+:$PYTHONPATH}}; "
    % shlex.quote(str(REPO_ROOT)).replace("{", "{{").replace("}", "}}")
)


wildcard_constraints:
    shard=r"\d{5}",
    split="train|val|test",
    realism="low|high",
    resolution=r"\d+",
    dataset=r"[A-Za-z0-9_]+",
    name=r"[A-Za-z0-9_.-]+",


def shapenet_root():
    source = config["source"]["shapenet"]
    return SYNTHETIC_ROOT if source == "synthetic" else source


def shapenet_ready(wildcards):
    """The file whose existence means the ShapeNet folder is complete."""
    source = config["source"]["shapenet"]
    if source == "synthetic":
        return SYNTHETIC_ROOT
    for name, archive in config["download"]["archives"].items():
        if Path(archive["extract_to"]) == Path(source):
            return f"{DATA}/downloads/{name}.done"
    return []


def mesh_shards(table="meshes"):
    return expand(
        f"{RESULTS}/{table}/shard-{{shard:05d}}.parquet",
        shard=range(config["meshes"]["shards"]),
    )


def meshes_complete():
    """The stamp that stands for the whole meshes table (rule meshes_complete)."""
    return f"{RESULTS}/meshes/_SUCCESS"


# The mesh shards as the jobs' --meshes arguments. Rule parameters cost time per job when
# Snakemake builds the DAG (tens of thousands of jobs at paper scale): a string is formatted with
# the job's wildcards and a function is inspected and called, a tuple is taken as it is.
MESH_SHARDS = tuple(mesh_shards())


def scene_layout_args(wildcards):
    """make_scenes arguments that depend on the job's dataset and split."""
    spec = config["scenes"]["datasets"][wildcards.dataset]
    count = spec["count"][wildcards.split]
    return f"--objects {spec['objects']} --count {wildcards.split}={count}"


def scene_shards(dataset):
    spec = config["scenes"]["datasets"][dataset]
    size = config["scenes"]["shard_size"]
    return [
        f"{RESULTS}/scenes/{dataset}/{split}/shard-{shard:05d}.parquet"
        for split, count in spec["count"].items()
        for shard in range(max(1, math.ceil(count / size)))
    ]


def derived_shards(table, dataset, level):
    """Shards of a per-scene table (renders/voxels) that mirror the scene shards."""
    return [
        p.replace(f"{RESULTS}/scenes/", f"{RESULTS}/{table}/{level}/")
        for p in scene_shards(dataset)
    ]


def all_tables():
    outputs = mesh_shards() + mesh_shards("quarantine")
    outputs += [f"{DATA}/downloads/{name}.done" for name in config["download"]["archives"]]
    for dataset in config["scenes"]["datasets"]:
        outputs += scene_shards(dataset)
        for realism in config["render"]["levels"].get(dataset, []):
            outputs += derived_shards("renders", f"{dataset}", realism)
        for resolution in config["voxelize"]["resolutions"].get(dataset, []):
            outputs += derived_shards("voxels", f"{dataset}", resolution)
    return outputs


def threads_for(rule_name):
    return config["threads"].get(rule_name, 1)


def mem_for(rule_name):
    return config["mem_mb"].get(rule_name, 2000)
