rule make_scenes:
    input:
        meshes=meshes_complete(),
    output:
        f"{RESULTS}/scenes/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/make_scenes/{{dataset}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/make_scenes/{{dataset}}/{{split}}/{{shard}}.tsv"
    wildcard_constraints:
        dataset=OWN_SCENES,
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    params:
        meshes=MESH_SHARDS,
        out=f"{RESULTS}/scenes/{{dataset}}",
        layout=scene_layout_args,
        shard_size=config["scenes"]["shard_size"],
        seed=config["scenes"]["seed"],
        train_fraction=config["splits"]["train_fraction"],
        val_fraction=config["splits"]["val_fraction"],
    shell:
        "python -m stages.make_scenes synthetic --meshes {params.meshes}"
        " --dataset {wildcards.dataset} {params.layout} --shard $((10#{wildcards.shard}))"
        " --shard-size {params.shard_size} --seed {params.seed}"
        " --train-fraction {params.train_fraction} --val-fraction {params.val_fraction}"
        " --out {params.out} 2> {log}"
