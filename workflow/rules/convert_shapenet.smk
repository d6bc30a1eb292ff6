rule convert_shapenet:
    input:
        shapenet_ready,
    output:
        meshes=f"{RESULTS}/meshes/shard-{{shard}}.parquet",
        quarantine=f"{RESULTS}/quarantine/shard-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/convert_shapenet/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convert_shapenet/{{shard}}.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    threads: threads_for("convert_shapenet")
    resources:
        mem_mb=mem_for("convert_shapenet"),
    params:
        root=shapenet_root(),
        out=lambda wildcards, output: os.path.dirname(os.path.dirname(output.meshes)),
        shards=config["meshes"]["shards"],
        partition_size=config["meshes"]["partition_size"],
    shell:
        "python -m stages.convert_shapenet --root {params.root:q} --out {params.out:q}"
        " --shard $((10#{wildcards.shard})) --num-shards {params.shards}"
        " --partition-size {params.partition_size}"
        " --threads {threads} --mem-mb {resources.mem_mb} 2> {log}"


# Every scene, render and voxel job reads the whole meshes table. Depending on this one stamp
# instead of on each mesh shard keeps the DAG at a few edges per job: at paper scale (40,000 jobs
# x 64 mesh shards) the direct edges made a dry run take minutes (README, "Scale on paper").
# A rule without a command runs in Snakemake itself, never as a cluster job.
rule meshes_complete:
    input:
        mesh_shards(),
    output:
        touch(meshes_complete()),
