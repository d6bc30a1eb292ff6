# CoReNet's released artefacts (google-research/corenet; README, "Reproducing CoReNet's released
# models"). Both parts exist only when configured, so the default DAG is unchanged.
#
# source.corenet: DIR: every split of every dataset in scenes.datasets is imported from
# DIR/<dataset>.<split>/<json> instead of being made (make_scenes) and rendered (render): one job per
# shard of the json's scene list writes the scenes shard, both renders (OpenGL image -> low, PBRT
# image -> high, 256 x 256 as released) and the split's scene quarantine shard. voxelize then builds
# the ground truth from the real meshes (source.shapenet) as for our own scenes.
#
# models.checkpoint: {model: FILE}: import_checkpoint writes results/models/<model>/model.pt (and an
# empty training log) from the released checkpoint, so eval_<model> scores it instead of training.
# The helpers are in common.smk (corenet_release, corenet_scene_count, model_checkpoints, ...).
import re

if corenet_release():
    if not (Path(corenet_release()).is_dir() or archives_extracting(corenet_release())):
        raise WorkflowError(
            f"source.corenet: {corenet_release()} is not a folder (it must hold the extracted "
            "release: single.test/, pairs.train/, ...; or a download.archives entry extracts there)"
        )

    rule import_corenet:
        input:
            release=corenet_release_inputs,
            meshes=meshes_complete(),
        output:
            scenes=f"{RESULTS}/scenes/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
            low=f"{RESULTS}/renders/low/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
            high=f"{RESULTS}/renders/high/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
            quarantine=f"{RESULTS}/scene_quarantine/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
        log:
            f"{RESULTS}/logs/import_corenet/{{dataset}}/{{split}}/{{shard}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/import_corenet/{{dataset}}/{{split}}/{{shard}}.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CPU_IMAGE
        resources:
            mem_mb=mem_for("import_corenet"),
        params:
            dataset_json=lambda wildcards: corenet_dataset_json(wildcards.dataset, wildcards.split),
            meshes=MESH_SHARDS,
            shard_size=config["scenes"]["shard_size"],
            # results/scenes/<dataset>, results/renders, results/scene_quarantine/<dataset>
            out=lambda wildcards, output: Path(output.scenes).parents[1],
            renders=lambda wildcards, output: Path(output.low).parents[3],
            quarantine=lambda wildcards, output: Path(output.quarantine).parents[1],
        shell:
            "python -m stages.make_scenes import-corenet --dataset-json {params.dataset_json:q}"
            " --dataset {wildcards.dataset} --split {wildcards.split}"
            " --shard $((10#{wildcards.shard})) --shard-size {params.shard_size}"
            " --out {params.out:q} --renders {params.renders:q} --quarantine {params.quarantine:q}"
            " --meshes {params.meshes} 2> {log}"


if model_checkpoints():
    for _model, _file in model_checkpoints().items():
        if _model not in MODEL_SPECS:
            raise WorkflowError(
                f"models.checkpoint.{_model}: no model file {MODEL_CONFIGS}/{_model}.yaml"
            )
        if not (Path(_file).is_file() or archives_extracting(_file)):
            raise WorkflowError(f"models.checkpoint.{_model}: {_file} is not a file")
    if config["models"]["scale"] != "paper":
        raise WorkflowError(
            "models.checkpoint: released checkpoints are paper-scale networks; set models.scale: paper"
        )

    localrules:
        import_checkpoint,

    rule import_checkpoint:
        input:
            checkpoint=lambda wildcards: archives_extracting(model_checkpoints()[wildcards.model])
            or model_checkpoints()[wildcards.model],
            config=f"{MODEL_CONFIGS}/{{model}}.yaml",
        output:
            model=f"{RESULTS}/models/{{model}}/model.pt",
            metrics=f"{RESULTS}/models/{{model}}/metrics.csv",
        log:
            f"{RESULTS}/logs/import_checkpoint/{{model}}.log",
        wildcard_constraints:
            model="|".join(map(re.escape, model_checkpoints())),
        conda:
            "../../envs/gpu.yaml"
        container:
            CUDA_IMAGE
        params:
            # the importer's subcommand is the model's family (stages.import_checkpoint)
            family=lambda wildcards: MODEL_FAMILIES[wildcards.model],
            checkpoint=lambda wildcards: model_checkpoints()[wildcards.model],
            models_dir=lambda wildcards, input: Path(input.config).parent,
        shell:
            "python -m stages.import_checkpoint {params.family} --checkpoint {params.checkpoint:q}"
            " --model {wildcards.model} --models-dir {params.models_dir:q}"
            " --out {output.model:q} --training-log {output.metrics:q} 2> {log}"
