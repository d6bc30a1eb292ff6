# 3D-R2N2's data: ShapeNetRendering + ShapeNetVox32 folders (rendered from the meshes table, or
# the released archives) -> one view table. See stages/render_views.py and stages/r2n2_views.py;
# r2n2_roots, r2n2_inputs and r2n2_split_arguments live in common.smk.


rule render_views:
    input:
        f"{RESULTS}/meshes/shard-{{shard}}.parquet",
    output:
        rendering=directory(f"{RESULTS}/r2n2/ShapeNetRendering/shard-{{shard}}"),
        voxels=directory(f"{RESULTS}/r2n2/ShapeNetVox32/shard-{{shard}}"),
    log:
        f"{RESULTS}/logs/render_views/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render_views/{{shard}}.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    threads: threads_for("render_views")
    resources:
        mem_mb=mem_for("render_views"),
    params:
        views=config["r2n2"]["views"],
        size=config["r2n2"]["size"],
        seed=config["r2n2"]["seed"],
        backend=config["voxelize"]["backend"],
    shell:
        "python -m stages.render_views --meshes {input:q} --rendering-out {output.rendering:q}"
        " --voxels-out {output.voxels:q} --views {params.views} --size {params.size}"
        " --seed {params.seed} --backend {params.backend}"
        " --threads {threads} --mem-mb {resources.mem_mb} 2> {log}"


rule r2n2_views:
    input:
        r2n2_inputs,
    output:
        views=f"{RESULTS}/r2n2/views.parquet",
        quarantine=f"{RESULTS}/r2n2/views_quarantine.parquet",
    log:
        f"{RESULTS}/logs/r2n2_views.log",
    benchmark:
        f"{RESULTS}/benchmarks/r2n2_views.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    threads: threads_for("r2n2_views")
    resources:
        mem_mb=mem_for("r2n2_views"),
    params:
        rendering=r2n2_roots()[0],
        voxels=r2n2_roots()[1],
        split=r2n2_split_arguments,
        views=config["r2n2"]["views"],
        size=config["r2n2"]["size"],
    shell:
        "python -m stages.r2n2_views --rendering {params.rendering:q} --voxels {params.voxels:q}"
        " {params.split} --views {params.views} --size {params.size}"
        " --out {output.views:q} --quarantine {output.quarantine:q}"
        " --threads {threads} --mem-mb {resources.mem_mb} 2> {log}"
