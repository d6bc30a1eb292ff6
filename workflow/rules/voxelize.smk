rule:
    name:
        "voxelize_cuda" if VOXELIZE_ON_GPU else "voxelize"
    input:
        scenes=f"{RESULTS}/scenes/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
        meshes=meshes_complete(),
    output:
        f"{RESULTS}/voxels/{{resolution}}/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/voxelize/{{resolution}}/{{dataset}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/voxelize/{{resolution}}/{{dataset}}/{{split}}/{{shard}}.tsv"
    conda:
        "../../envs/gpu.yaml" if VOXELIZE_ON_GPU else "../../envs/data.yaml"
    container:
        CUDA_IMAGE if VOXELIZE_ON_GPU else CPU_IMAGE
    threads: threads_for("voxelize")
    resources:
        mem_mb=mem_for("voxelize"),
        gpu=1 if VOXELIZE_ON_GPU else 0,
    params:
        meshes=MESH_SHARDS,
        backend=config["voxelize"]["backend"],
    shell:
        "python -m stages.voxelize scenes --scenes {input.scenes} --meshes {params.meshes}"
        " --resolution {wildcards.resolution} --backend {params.backend} --out {output}"
        " --threads {threads} --mem-mb {resources.mem_mb}"
        " 2> {log}"
