rule render:
    input:
        scenes=f"{RESULTS}/scenes/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
        meshes=meshes_complete(),
    output:
        f"{RESULTS}/renders/{{realism}}/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/render/{{realism}}/{{dataset}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render/{{realism}}/{{dataset}}/{{split}}/{{shard}}.tsv"
    wildcard_constraints:
        dataset=OWN_SCENES,
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    threads: threads_for("render")
    resources:
        mem_mb=mem_for("render"),
    params:
        meshes=MESH_SHARDS,
        size=config["render"]["size"],
    shell:
        "python -m stages.render --scenes {input.scenes} --meshes {params.meshes}"
        " --realism {wildcards.realism} --size {params.size} --out {output}"
        " --threads {threads} --mem-mb {resources.mem_mb}"
        " 2> {log}"
