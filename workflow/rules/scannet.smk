# ScanNet-style scene data for the IOAR family: synthetic rooms (scannet.source: synthetic) or a
# real ScanNet v2 release exported with SensReader -> frames/scans tables -> ground-truth TSDF
# volumes at 4/8/16 cm (and the fused test meshes, the floor-plane baseline's source). See
# stages/synthesize_rooms.py, stages/convert_scannet.py, stages/fuse_tsdf.py; the shard lists
# come from scannet.scenes and scannet.shard_size (scannet_shards in common.smk).


rule synthesize_rooms:
    output:
        directory(SCANNET_SYNTHETIC),
    log:
        f"{RESULTS}/logs/synthesize_rooms.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize_rooms.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    params:
        scenes=" ".join(f"--scenes-{s} {n}" for s, n in config["scannet"]["scenes"].items()),
        frames=config["scannet"]["frames"],
        width=config["scannet"]["width"],
        height=config["scannet"]["height"],
        seed=config["scannet"]["seed"],
    shell:
        "python -m stages.synthesize_rooms --out {output:q} {params.scenes} --frames {params.frames}"
        " --width {params.width} --height {params.height} --seed {params.seed} --no-progress 2> {log}"


rule convert_scannet:
    input:
        scannet_root(),
    output:
        frames=[
            f"{SCANNET}/frames/{split}/shard-{shard:05d}.parquet"
            for split in ("train", "val", "test")
            for shard in scannet_shards(split)
        ],
        scans=f"{SCANNET}/scans.parquet",
        quarantine=f"{SCANNET}/quarantine.parquet",
    log:
        f"{RESULTS}/logs/convert_scannet.log",
    benchmark:
        f"{RESULTS}/benchmarks/convert_scannet.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    params:
        out=lambda wc, output: os.path.dirname(output.scans),
        shard_size=config["scannet"]["shard_size"],
    shell:
        "python -m stages.convert_scannet --root {input:q} --out {params.out:q}"
        " --shard-size {params.shard_size} --no-progress 2> {log}"


rule fuse_tsdf:
    input:
        f"{SCANNET}/frames/{{split}}/shard-{{shard}}.parquet",
    output:
        volumes=f"{SCANNET}/tsdf/volumes/{{split}}/shard-{{shard}}.parquet",
        quarantine=f"{SCANNET}/tsdf/quarantine/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/fuse_tsdf/{{split}}-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fuse_tsdf/{{split}}-{{shard}}.tsv"
    wildcard_constraints:
        split="train|val",
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    params:
        # .../scannet/frames/<split>/shard-N.parquet -> .../scannet; .../tsdf/volumes/<split>/shard-N -> .../tsdf
        frames=lambda wc, input: str(Path(input[0]).parents[2]),
        out=lambda wc, output: str(Path(output.volumes).parents[2]),
        shard=lambda wc: int(wc.shard),
    shell:
        "python -m stages.fuse_tsdf --frames {params.frames:q} --out {params.out:q}"
        " --split {wildcards.split} --shard {params.shard} 2> {log}"


rule fuse_tsdf_test:
    input:
        f"{SCANNET}/frames/test/shard-{{shard}}.parquet",
    output:
        volumes=f"{SCANNET}/tsdf/volumes/test/shard-{{shard}}.parquet",
        quarantine=f"{SCANNET}/tsdf/quarantine/test/shard-{{shard}}.parquet",
        meshes=directory(f"{SCANNET}/tsdf/meshes/test/shard-{{shard}}"),
    log:
        f"{RESULTS}/logs/fuse_tsdf/test-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fuse_tsdf/test-{{shard}}.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    params:
        # .../scannet/frames/<split>/shard-N.parquet -> .../scannet; .../tsdf/volumes/<split>/shard-N -> .../tsdf
        frames=lambda wc, input: str(Path(input[0]).parents[2]),
        out=lambda wc, output: str(Path(output.volumes).parents[2]),
        shard=lambda wc: int(wc.shard),
    shell:
        "mkdir -p {output.meshes:q} && python -m stages.fuse_tsdf --frames {params.frames:q}"
        " --out {params.out:q} --split test --shard {params.shard} --meshes {output.meshes:q} 2> {log}"
