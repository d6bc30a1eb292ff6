import json
import math
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# the project's package, importable by the workflow itself whether or not it is installed
sys.path.insert(0, str(Path(workflow.basedir).parent))


configfile: "config/config.yaml"


validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
DATA = config["data"]
SYNTHETIC_ROOT = f"{DATA}/synthetic/ShapeNetCore.v2"
MODEL_CONFIGS = config["models"].get("configs", "config/models")
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


# CoReNet's released artefacts (rules/corenet_release.smk): source.corenet, the folder of the
# extracted release (<dataset>.<split>/dataset.json and the .npz scenes it lists), replaces our
# make_scenes and render for every dataset of scenes.datasets; models.checkpoint imports released
# networks instead of training them.


def corenet_release():
    """source.corenet, or None (our own scenes)."""
    return config["source"].get("corenet")


def corenet_dataset_json(dataset, split):
    """The release's list of a split's scenes (source.corenet_json.<dataset>, default dataset.json)."""
    name = (config["source"].get("corenet_json") or {}).get(dataset, "dataset.json")
    return f"{corenet_release()}/{dataset}.{split}/{name}"


def archives_extracting(path):
    """Download stamps of the download.archives entries that extract to `path` or a folder above it."""
    path = Path(path).resolve()
    return [
        f"{DATA}/downloads/{name}.done"
        for name, archive in config["download"]["archives"].items()
        if Path(archive["extract_to"]).resolve() in (path, *path.parents)
    ]


def corenet_release_inputs(wildcards):
    """An import job's input: the split's dataset json, or the downloads that extract it."""
    json_file = corenet_dataset_json(wildcards.dataset, wildcards.split)
    return archives_extracting(json_file) or [json_file]


_CORENET_COUNTS = {}


def corenet_scene_count(dataset, split):
    """Scenes the split's dataset json lists (read once, when the DAG is built). Before the json
    exists (an archive not fetched yet, or a split not extracted) the config's count stands in."""
    key = (dataset, split)
    if key not in _CORENET_COUNTS:
        path = Path(corenet_dataset_json(dataset, split))
        count = config["scenes"]["datasets"][dataset]["count"][split]
        if path.is_file():
            try:
                count = len(json.loads(path.read_text())["files"])
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
                raise WorkflowError(
                    f"source.corenet: {path} is not a dataset json with a 'files' list ({err})"
                ) from None
        _CORENET_COUNTS[key] = count
    return _CORENET_COUNTS[key]


def model_checkpoints():
    """models.checkpoint: {model: released checkpoint file}, imported instead of trained."""
    return config["models"].get("checkpoint") or {}


# The dataset wildcard of make_scenes and render: every dataset, or none when the release is
# imported (so that a split the release lacks fails as a missing input, never falls back to ours).
OWN_SCENES = "no-dataset" if corenet_release() else r"[A-Za-z0-9_]+"


def split_shards(dataset, split):
    count = config["scenes"]["datasets"][dataset]["count"].get(split, 0)
    if count and corenet_release():
        count = corenet_scene_count(dataset, split)
    size = config["scenes"]["shard_size"]
    return [
        f"{RESULTS}/scenes/{dataset}/{split}/shard-{shard:05d}.parquet"
        for shard in range(max(1, math.ceil(count / size)) if count else 0)
    ]


def scene_shards(dataset):
    splits = config["scenes"]["datasets"][dataset]["count"]
    return [path for split in splits for path in split_shards(dataset, split)]


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


def r2n2_roots():
    """(ShapeNetRendering roots, ShapeNetVox32 roots) that r2n2_views reads: render_views'
    shard folders (r2n2.source: synthetic) or the configured real roots."""
    source = config["r2n2"]["source"]
    if source == "synthetic":
        shards = range(config["meshes"]["shards"])
        return (
            [f"{RESULTS}/r2n2/ShapeNetRendering/shard-{shard:05d}" for shard in shards],
            [f"{RESULTS}/r2n2/ShapeNetVox32/shard-{shard:05d}" for shard in shards],
        )
    return [source["rendering"]], [source["voxels"]]


def r2n2_inputs(wildcards):
    """render_views' folders, or the download stamps of archives that extract the real roots;
    plus the Pix2Vox split file when r2n2.split is pix2vox."""
    inputs = []
    if config["r2n2"]["split"] == "pix2vox":
        inputs.append(config["r2n2"]["split_file"])
    if config["r2n2"]["source"] == "synthetic":
        rendering, voxels = r2n2_roots()
        return inputs + rendering + voxels
    roots = [Path(root).resolve() for group in r2n2_roots() for root in group]
    for name, archive in config["download"]["archives"].items():
        target = Path(archive["extract_to"]).resolve()
        if any(root == target or target in root.parents for root in roots):
            inputs.append(f"{DATA}/downloads/{name}.done")
    return inputs


def r2n2_split_arguments(wildcards):
    split = config["r2n2"]["split"]
    if split == "pix2vox":
        return f"--split pix2vox --split-file '{config['r2n2']['split_file']}'"
    return f"--split {split}"


# Models (rules/models.smk): every config/models/*.yaml read and checked when the DAG is built.
from stages.families import DataLayout, families, family_named, input_options
from stages.model_config import load_model_spec


def _model_specs():
    scale = config["models"]["scale"]
    return {p.stem: load_model_spec(p, scale) for p in sorted(Path(MODEL_CONFIGS).glob("*.yaml"))}


MODEL_SPECS = _model_specs()
MODEL_FAMILIES = {name: spec.family for name, spec in MODEL_SPECS.items()}
LAYOUT = DataLayout(results=RESULTS, config=config, split_shards=split_shards)


def model_names():
    return sorted(MODEL_SPECS)


# The model wildcard of train: models.checkpoint's models are imported (rules/corenet_release.smk).
TRAINED_MODELS = "|".join(m for m in model_names() if m not in model_checkpoints()) or "no-model"


def model_family(name):
    if name not in MODEL_SPECS:
        raise ValueError(
            f"model {name!r} has no config file {MODEL_CONFIGS}/{name}.yaml (known: {', '.join(model_names())})"
        )
    return family_named(MODEL_FAMILIES[name])


def model_inputs(stage):
    """Input function: the model's data files by role for `stage` (train or eval)."""

    def inputs(wildcards):
        spec = MODEL_SPECS[wildcards.model]
        return family_named(spec.family).input_files(spec, stage, LAYOUT)

    return inputs


def data_options(stage):
    """Params function: the family's `--<role> PATH...` options from the job's inputs."""

    def options(wildcards, input):
        family = model_family(wildcards.model)
        roles = family.train_inputs if stage == "train" else family.eval_inputs
        return input_options({role: input[role] for role in roles})

    return options


def eval_outputs(name):
    """Everything eval_<name> writes (files only) and the training log: the targets of `all`."""
    paths = model_family(name).output_paths(RESULTS, name)
    return [str(p) for role, p in paths.items() if role != "qualitative"]


def launcher(module):
    """torchrun with one process per GPU (or per CPU process when models.processes > 1)."""
    if config["models"].get("gpus", 0) > 0:
        return f"torchrun --standalone --nproc-per-node={{resources.gpu}} -m {module}"
    processes = config["models"].get("processes", 1)
    if processes > 1:
        return f"torchrun --standalone --nproc-per-node={processes} -m {module}"
    return f"python -m {module}"


def device():
    return "cuda" if config["models"].get("gpus", 0) > 0 else "auto"


def overrides():
    """--steps/--batch-size when the config overrides every model's (smoke runs, tests)."""
    options = []
    for key in ("steps", "batch_size"):
        if config["models"].get(key):
            options.append(f"--{key.replace('_', '-')} {config['models'][key]}")
    return " ".join(options)


def _family_outputs(family):
    """The evaluation rule's outputs: the family's list, with report() where it asks for it."""
    outputs = {}
    for out in family.outputs:
        path = f"{RESULTS}/eval/{{model}}/{out.name}"
        if out.directory:
            path = directory(path)
        if out.report is not None:
            category, caption = out.report
            extra = {"patterns": ["{name}.png"]} if out.directory else {}
            path = report(
                path,
                category=category,
                subcategory="{model}",
                caption=f"../report/{caption}",
                **extra,
            )
        outputs[out.role] = path
    return outputs


# ScanNet-style scene data (rules/scannet.smk).
SCANNET = f"{RESULTS}/scannet"
SCANNET_SYNTHETIC = f"{DATA}/synthetic/scannet"


def scannet_root():
    source = config["scannet"]["source"]
    return SCANNET_SYNTHETIC if source == "synthetic" else source


def scannet_shards(split):
    count = config["scannet"]["scenes"].get(split, 0)
    return range(-(-count // config["scannet"]["shard_size"])) if count else range(0)


# Models whose family has a Pix3D evaluation (its CLI module: Family.pix3d_module).
PIX3D_MODELS = [m for m in model_names() if getattr(model_family(m), "pix3d_module", None)]


def pix3d_evaluations():
    """The Pix3D tables of the models of models.run that have one, when pix3d.root is set: `all`
    and the report depend on them, so the report shows them next to the ShapeNet figures."""
    if not config.get("pix3d", {}).get("root"):
        return []
    return [
        f"{RESULTS}/eval/{m}/pix3d_iou.csv" for m in config["models"]["run"] if m in PIX3D_MODELS
    ]
