# Model rules: train_<model> and eval_<model> for every config/models/<model>.yaml, so that
# `snakemake eval_h7` works whether or not h7 is in models.run. A model's data (dataset,
# realism, ground-truth resolution) comes from its config file and the chosen scale.


def model_file(name):
    import yaml

    return yaml.safe_load((Path(MODEL_CONFIGS) / f"{name}.yaml").read_text())


def model_family(name):
    return model_file(name).get("family", "corenet")


def model_data(name):
    """(dataset, realism, ground-truth resolution) of a model at the configured scale; the
    stage (stages/model_config.py) validates the whole file when it runs."""
    path = Path(MODEL_CONFIGS) / f"{name}.yaml"
    spec = model_file(name)
    scale = config["models"]["scale"]
    try:
        block = spec["scale"][scale]
        resolution = block.get("eval_resolution", block["resolution"])
        return spec.get("dataset", "single"), spec.get("realism", "low"), resolution
    except (KeyError, TypeError, AttributeError):
        raise ValueError(f"{path}: no scale.{scale} block with a resolution") from None


def model_names():
    return sorted(p.stem for p in Path(MODEL_CONFIGS).glob("*.yaml"))


def model_shards(name, split, table):
    """Input shards of one table for a model: scenes, renders (its realism) or voxels (its
    evaluation resolution), one per scene shard of its dataset's split."""
    dataset, realism, resolution = model_data(name)
    if dataset not in config["scenes"]["datasets"]:
        raise ValueError(
            f"model {name} trains on dataset {dataset!r}, which config scenes.datasets "
            f"does not define (it has {sorted(config['scenes']['datasets'])})"
        )
    scenes = split_shards(dataset, split)
    if table == "scenes":
        return scenes
    level = realism if table == "renders" else resolution
    return [p.replace(f"{RESULTS}/scenes/", f"{RESULTS}/{table}/{level}/") for p in scenes]


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


def eval_outputs(name):
    if model_family(name) == "r2n2":
        tables = [f"{RESULTS}/eval/{name}/iou_by_views.csv"]
    else:
        tables = [
            f"{RESULTS}/eval/{name}/voxel_metrics.csv",
            f"{RESULTS}/eval/{name}/baseline_metrics.csv",
        ]
    return [f"{RESULTS}/eval/{name}/summary.json", *tables, f"{RESULTS}/models/{name}/metrics.csv"]


R2N2_VIEWS = f"{RESULTS}/r2n2/views.parquet"


for _model in [m for m in model_names() if model_family(m) == "r2n2"]:

    rule:
        name:
            f"train_{_model}"
        input:
            config=str(Path(MODEL_CONFIGS) / f"{_model}.yaml"),
            views=R2N2_VIEWS,
        output:
            model=f"{RESULTS}/models/{_model}/model.pt",
            metrics=report(
                f"{RESULTS}/models/{_model}/metrics.csv",
                category="Training",
                subcategory=_model,
                caption="../report/training_curve.rst",
            ),
        log:
            f"{RESULTS}/logs/train/{_model}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{_model}.tsv"
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        threads: threads_for("train")
        resources:
            mem_mb=mem_for("train"),
            gpu=config["models"].get("gpus", 0),
        params:
            scale=config["models"]["scale"],
            out_dir=lambda wc, output: str(Path(output.model).parent),
            device=device(),
            overrides=overrides(),
        shell:
            launcher("stages.train")
            + " --model-config {input.config} --scale {params.scale} --views {input.views}"
            " --out-dir {params.out_dir} --device {params.device} --threads {threads}"
            " {params.overrides} 2> {log}"

    rule:
        name:
            f"eval_{_model}"
        input:
            model=f"{RESULTS}/models/{_model}/model.pt",
            views=R2N2_VIEWS,
        output:
            summary=f"{RESULTS}/eval/{_model}/summary.json",
            metrics=report(
                f"{RESULTS}/eval/{_model}/iou_by_views.csv",
                category="Evaluation",
                subcategory=_model,
                caption="../report/voxel_metrics.rst",
            ),
            qualitative=report(
                directory(f"{RESULTS}/eval/{_model}/qualitative"),
                patterns=["{name}.png"],
                category="Qualitative",
                subcategory=_model,
                caption="../report/qualitative.rst",
            ),
        log:
            f"{RESULTS}/logs/eval/{_model}.log",
        benchmark:
            f"{RESULTS}/benchmarks/eval/{_model}.tsv"
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        threads: threads_for("eval")
        resources:
            mem_mb=mem_for("eval"),
            gpu=min(1, config["models"].get("gpus", 0)),
        params:
            out_dir=lambda wc, output: str(Path(output.summary).parent),
            device=device(),
            qualitative=config["models"].get("qualitative", 8),
        shell:
            "python -m stages.eval_r2n2 --model {input.model} --views {input.views}"
            " --out-dir {params.out_dir} --qualitative {params.qualitative}"
            " --device {params.device} --threads {threads} 2> {log}"


for _model in [m for m in model_names() if model_family(m) == "corenet"]:

    rule:
        name:
            f"train_{_model}"
        input:
            config=str(Path(MODEL_CONFIGS) / f"{_model}.yaml"),
            scenes=lambda wc, m=_model: model_shards(m, "train", "scenes"),
            renders=lambda wc, m=_model: model_shards(m, "train", "renders"),
            voxels=lambda wc, m=_model: model_shards(m, "train", "voxels"),
        output:
            model=f"{RESULTS}/models/{_model}/model.pt",
            metrics=report(
                f"{RESULTS}/models/{_model}/metrics.csv",
                category="Training",
                subcategory=_model,
                caption="../report/training_curve.rst",
            ),
        log:
            f"{RESULTS}/logs/train/{_model}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{_model}.tsv"
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        threads: threads_for("train")
        resources:
            mem_mb=mem_for("train"),
            gpu=config["models"].get("gpus", 0),
        params:
            scale=config["models"]["scale"],
            out_dir=lambda wc, output: str(Path(output.model).parent),
            device=device(),
            overrides=overrides(),
        shell:
            launcher("stages.train") + " --model-config {input.config} --scale {params.scale}"
            " --scenes {input.scenes} --renders {input.renders} --voxels {input.voxels}"
            " --out-dir {params.out_dir} --device {params.device} --threads {threads}"
            " {params.overrides} 2> {log}"

    rule:
        name:
            f"eval_{_model}"
        input:
            model=f"{RESULTS}/models/{_model}/model.pt",
            scenes=lambda wc, m=_model: model_shards(m, "test", "scenes"),
            renders=lambda wc, m=_model: model_shards(m, "test", "renders"),
            voxels=lambda wc, m=_model: model_shards(m, "test", "voxels"),
            train_scenes=lambda wc, m=_model: model_shards(m, "train", "scenes"),
            train_voxels=lambda wc, m=_model: model_shards(m, "train", "voxels"),
        output:
            summary=f"{RESULTS}/eval/{_model}/summary.json",
            metrics=report(
                f"{RESULTS}/eval/{_model}/voxel_metrics.csv",
                category="Evaluation",
                subcategory=_model,
                caption="../report/voxel_metrics.rst",
            ),
            baseline=f"{RESULTS}/eval/{_model}/baseline_metrics.csv",
            scenes=f"{RESULTS}/eval/{_model}/scenes.parquet",
            qualitative=report(
                directory(f"{RESULTS}/eval/{_model}/qualitative"),
                patterns=["{name}.png"],
                category="Qualitative",
                subcategory=_model,
                caption="../report/qualitative.rst",
            ),
        log:
            f"{RESULTS}/logs/eval/{_model}.log",
        benchmark:
            f"{RESULTS}/benchmarks/eval/{_model}.tsv"
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        threads: threads_for("eval")
        resources:
            mem_mb=mem_for("eval"),
            gpu=min(1, config["models"].get("gpus", 0)),
        params:
            out_dir=lambda wc, output: str(Path(output.summary).parent),
            device=device(),
            qualitative=config["models"].get("qualitative", 8),
        shell:
            "python -m stages.eval --model {input.model} --scenes {input.scenes}"
            " --renders {input.renders} --voxels {input.voxels}"
            " --train-scenes {input.train_scenes} --train-voxels {input.train_voxels}"
            " --out-dir {params.out_dir} --qualitative {params.qualitative}"
            " --device {params.device} --threads {threads} 2> {log}"
