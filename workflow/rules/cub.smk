# CUB-200-2011 for UMR: synthetic birds in CUB's layout with CMR's annotation cache and SCOPS
# part maps (cub.source: synthetic; stages/synthesize_birds.py), or the real CUB_200_2011 tree,
# cachedir and SCOPS maps named in cub.source -> results/cub/{train,val,test}.parquet and
# quarantine.parquet (stages/import_cub.py). The UMR family names these tables as its inputs.

CUB = config.get(
    "cub",
    {
        "source": "synthetic",
        "counts": {"train": 200, "val": 20, "test": 60},
        "size": 128,
        "seed": 0,
    },
)
CUB_SYNTHETIC = f"{DATA}/synthetic/birds"
CUB_SOURCE = (
    {
        "cub_root": f"{CUB_SYNTHETIC}/CUB_200_2011",
        "annotations": f"{CUB_SYNTHETIC}/cachedir",
        "parts": f"{CUB_SYNTHETIC}/scops",
    }
    if CUB["source"] == "synthetic"
    else CUB["source"]
)


rule synthesize_birds:
    output:
        directory(CUB_SYNTHETIC),
    log:
        f"{RESULTS}/logs/synthesize_birds.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize_birds.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    threads: 1
    resources:
        mem_mb=mem_for("synthesize_birds"),
    params:
        train=CUB["counts"]["train"],
        val=CUB["counts"]["val"],
        test=CUB["counts"]["test"],
        size=CUB["size"],
        seed=CUB["seed"],
    shell:
        "python -m stages.synthesize_birds --out {output:q} --train {params.train}"
        " --val {params.val} --test {params.test} --size {params.size}"
        " --seed {params.seed} --no-progress 2> {log}"


rule import_cub:
    input:
        [CUB_SYNTHETIC] if CUB["source"] == "synthetic" else [],
    output:
        train=f"{RESULTS}/cub/train.parquet",
        val=f"{RESULTS}/cub/val.parquet",
        test=f"{RESULTS}/cub/test.parquet",
        quarantine=f"{RESULTS}/cub/quarantine.parquet",
    log:
        f"{RESULTS}/logs/import_cub.log",
    benchmark:
        f"{RESULTS}/benchmarks/import_cub.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    threads: 1
    resources:
        mem_mb=mem_for("import_cub"),
    params:
        cub_root=CUB_SOURCE["cub_root"],
        annotations=CUB_SOURCE["annotations"],
        parts=(f"--parts '{CUB_SOURCE['parts']}'" if CUB_SOURCE.get("parts") else ""),
        out=lambda wc, output: str(Path(output.train).parent),
    shell:
        "python -m stages.import_cub --cub-root {params.cub_root:q}"
        " --annotations {params.annotations:q} {params.parts} --out {params.out:q}"
        " --no-progress 2> {log}"
