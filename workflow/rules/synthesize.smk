rule synthesize:
    output:
        taxonomy=f"{SYNTHETIC_ROOT}/taxonomy.json",
    log:
        f"{RESULTS}/logs/synthesize.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        root=lambda wildcards, output: os.path.dirname(output.taxonomy),
        per_class=config["synthetic"]["per_class"],
        seed=config["synthetic"]["seed"],
        classes=" ".join(config["synthetic"]["classes"]),
    shell:
        "python -m stages.synthesize --out {params.root} --per-class {params.per_class}"
        " --seed {params.seed} --classes {params.classes} 2> {log}"
