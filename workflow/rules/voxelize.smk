rule voxelize:
    input:
        scenes=f"{RESULTS}/scenes/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
        meshes=mesh_shards(),
    output:
        f"{RESULTS}/voxels/{{resolution}}/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/voxelize/{{resolution}}/{{dataset}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/voxelize/{{resolution}}/{{dataset}}/{{split}}/{{shard}}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: threads_for("voxelize")
    resources:
        mem_mb=mem_for("voxelize"),
    params:
        backend=config["voxelize"]["backend"],
    shell:
        "python -m stages.voxelize scenes --scenes {input.scenes} --meshes {input.meshes}"
        " --resolution {wildcards.resolution} --backend {params.backend} --out {output}"
        " --threads {threads} --mem-mb {resources.mem_mb} 2> {log}"
