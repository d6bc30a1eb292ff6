rule synthesize:
    output:
        root=directory(SYNTHETIC_ROOT),
    log:
        f"{RESULTS}/logs/synthesize.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    params:
        per_class=config["synthetic"]["per_class"],
        seed=config["synthetic"]["seed"],
        classes=" ".join(config["synthetic"]["classes"]),
    shell:
        "python -m stages.synthesize --out {output.root} --per-class {params.per_class}"
        " --seed {params.seed} --classes {params.classes} 2> {log}"
