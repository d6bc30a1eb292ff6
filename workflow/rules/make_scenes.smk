rule make_scenes:
    input:
        meshes=mesh_shards(),
    output:
        f"{RESULTS}/scenes/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/make_scenes/{{dataset}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/make_scenes/{{dataset}}/{{split}}/{{shard}}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        out=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        objects=lambda wc: config["scenes"]["datasets"][wc.dataset]["objects"],
        scene_count=lambda wc: config["scenes"]["datasets"][wc.dataset]["count"][wc.split],
        shard_size=config["scenes"]["shard_size"],
        seed=config["scenes"]["seed"],
        train_fraction=config["splits"]["train_fraction"],
        val_fraction=config["splits"]["val_fraction"],
    shell:
        "python -m stages.make_scenes synthetic --meshes {input.meshes}"
        " --dataset {wildcards.dataset} --objects {params.objects}"
        " --count {wildcards.split}={params.scene_count} --shard $((10#{wildcards.shard}))"
        " --shard-size {params.shard_size} --seed {params.seed}"
        " --train-fraction {params.train_fraction} --val-fraction {params.val_fraction}"
        " --out {params.out} 2> {log}"
