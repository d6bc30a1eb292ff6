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
