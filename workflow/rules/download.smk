localrules:
    download,


rule download:
    output:
        stamp=f"{DATA}/downloads/{{name}}.done",
    log:
        f"{RESULTS}/logs/download/{{name}}.log",
    conda:
        "../../envs/data.yaml"
    container:
        CPU_IMAGE
    params:
        archive=lambda wildcards: config["download"]["archives"][wildcards.name],
        file=f"{DATA}/downloads/{{name}}.archive",
    shell:
        "python -m stages.download --source {params.archive[url]:q}"
        " --sha256 {params.archive[sha256]} --dest {params.file:q}"
        " --extract-to {params.archive[extract_to]:q}"
        " --strip-components {params.archive[strip_components]} 2> {log}"
        " && touch {output.stamp}"
