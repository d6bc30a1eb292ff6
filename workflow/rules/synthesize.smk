rule synthesize:
    output:
        taxonomy=f"{SYNTHETIC_ROOT}/taxonomy.json",
    params:
        root=SYNTHETIC_ROOT,
        per_class=config["synthetic"]["per_class"],
        seed=config["synthetic"]["seed"],
        classes=" ".join(config["synthetic"]["classes"]),
    log:
        f"{RESULTS}/logs/synthesize.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize.tsv"
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m stages.synthesize --out {params.root} --per-class {params.per_class}"
        " --seed {params.seed} --classes {params.classes} 2> {log}"
